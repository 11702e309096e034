"""Hostile descriptors are refused before any expensive work; maximal vaults still parse.

Each hostile input is big enough that the code before the limits took seconds on it (timings in
docs/performance.md, "Hostile input"); the tests assert only the refusal, never a time.
"""

from __future__ import annotations

import hashlib

import pytest
from embit.util import secp256k1 as _secp

from msigvault import Vault
from msigvault.errors import InvalidDescriptor, InvalidKey, MsigvaultError
from msigvault.formats import import_vault
from msigvault.keys.bip32 import ExtendedKey
from msigvault.keys.keyexpr import MAX_KEY_EXPRESSION_LENGTH, MAX_PATH_STEPS, parse_key_expression
from msigvault.network import Network
from msigvault.policy import checksum as checksum_module
from msigvault.policy.checksum import (
    CHECKSUM_CHARSET, MAX_DESCRIPTOR_LENGTH, add_checksum, descriptor_checksum, split_checksum,
)
from msigvault.policy.descriptor import (
    MAX_EXPANDED_LENGTH, MAX_MULTIPATH_ARITY, expand_multipath, parse_structure,
)
from msigvault.policy.vault import NUMS_H

NET = Network.REGTEST
H = 0x80000000


def account_keys(n: int, seed: bytes = b"limits") -> "list[str]":
    """n distinct ``[fp/48h/1h/0h/2h]tpub.../<0;1>/*`` keys, cheaply (no hardened derivation)."""
    out = []
    for i in range(n):
        secret = hashlib.sha256(seed + i.to_bytes(4, "big")).digest()
        pub = _secp.ec_pubkey_serialize(_secp.ec_pubkey_create(secret))
        xpub = ExtendedKey(NET.xpub_version, 4, b"\1\2\3\4", 2 + H, hashlib.sha256(secret).digest(), pub)
        fingerprint = hashlib.sha256(b"fp" + secret).digest()[:4].hex()
        out.append(f"[{fingerprint}/48h/1h/0h/2h]{xpub.to_base58()}/<0;1>/*")
    return out


KEYS = account_keys(1000)
XPUB = KEYS[0].split("]")[1].split("/")[0]


def tr(keys) -> str:
    return f"tr({NUMS_H.hex()},sortedmulti_a({len(keys)},{','.join(keys)}))"


def wsh(keys) -> str:
    return f"wsh(sortedmulti({len(keys)},{','.join(keys)}))"


def reference_checksum(desc: str) -> str:
    """BIP380's checksum without the length limit (to build valid over-long descriptors)."""
    gen = (0xF5DEE51989, 0xA9FDCA3312, 0x1BAB10E32D, 0x3706B1677A, 0x644D626FFD)

    def polymod(c, val):
        c0 = c >> 35
        c = ((c & 0x7FFFFFFFF) << 5) ^ val
        for i in range(5):
            if (c0 >> i) & 1:
                c ^= gen[i]
        return c

    c, cls, count = 1, 0, 0
    for ch in desc:
        pos = checksum_module.INPUT_CHARSET.index(ch)
        c = polymod(c, pos & 31)
        cls, count = cls * 3 + (pos >> 5), count + 1
        if count == 3:
            c, cls, count = polymod(c, cls), 0, 0
    if count:
        c = polymod(c, cls)
    for _ in range(8):
        c = polymod(c, 0)
    c ^= 1
    return desc + "#" + "".join(CHECKSUM_CHARSET[(c >> (5 * (7 - j))) & 31] for j in range(8))


def multipath_list(arity: int) -> str:
    return "<" + ";".join(str(i) for i in range(arity)) + ">"


# -- maximal valid vaults still parse ------------------------------------------------------------


def test_999_key_taproot_vault_with_origins_parses():
    desc = add_checksum(tr(KEYS[:999]))
    assert len(desc) < MAX_DESCRIPTOR_LENGTH
    vault = Vault.from_descriptor(desc, network=NET)
    assert vault.n == 999 and vault.script == "tr"
    assert vault.descriptor() == Vault.from_descriptor(vault.descriptor(), network=NET).descriptor()
    assert import_vault(desc, network="regtest").vault == vault


def test_20_key_wsh_vault_with_origins_parses():
    desc = add_checksum(wsh(KEYS[:20]))
    vault = Vault.from_descriptor(desc, network=NET)
    assert vault.n == 20 and vault.m == 20
    assert import_vault(desc, network="regtest").vault == vault


def test_limit_leaves_room_for_999_keys_with_long_origins():
    long_origin = [k.replace("/48h/1h/0h/2h]", "/2147483647h/2147483647h/2147483647h/2147483647h]")
                   for k in KEYS[:999]]
    assert len(add_checksum(tr(long_origin))) < MAX_DESCRIPTOR_LENGTH


# -- refusals, before the expensive work -----------------------------------------------------------


def test_overlong_descriptor_is_refused_before_its_checksum_is_computed(monkeypatch):
    # 60,000 keys, about 8.6 MB: took about 40 s before the limit (the n-limit came last); with a
    # wrong checksum, the checksum alone took about 12 s
    desc = tr([KEYS[0]] * 60_000)
    calls = []
    monkeypatch.setattr(checksum_module, "_polymod", lambda *a: calls.append(a))
    for parse in (lambda: Vault.from_descriptor(desc, network=NET, require_checksum=False),
                  lambda: Vault.from_descriptor(desc + "#qqqqqqqq", network=NET),
                  lambda: split_checksum(desc + "#qqqqqqqq"),
                  lambda: expand_multipath(desc),
                  lambda: parse_structure(desc)):
        with pytest.raises(InvalidDescriptor, match=f"more than the {MAX_DESCRIPTOR_LENGTH}"):
            parse()
    assert calls == []
    with pytest.raises(MsigvaultError):
        import_vault(desc, network="regtest")


def test_just_over_the_length_limit_is_refused():
    desc = "x" * (MAX_DESCRIPTOR_LENGTH + 1)
    with pytest.raises(InvalidDescriptor, match="characters, more than"):
        descriptor_checksum(desc)
    with pytest.raises(InvalidDescriptor, match="characters, more than"):
        split_checksum(desc + "#qqqqqqqq")
    with pytest.raises(InvalidDescriptor, match="characters, more than"):
        parse_structure(desc)


def test_long_multipath_list_is_refused():
    # two keys with a 12,000-index <0;1;...> list, 117 KB: took about 6 s (quadratic expansion)
    key = f"{XPUB}/{multipath_list(12_000)}/*"
    desc = reference_checksum(f"wsh(multi(1,{key},{key}))")
    assert len(desc) < MAX_DESCRIPTOR_LENGTH
    with pytest.raises(InvalidDescriptor, match="only multipath msigvault accepts is /<0;1>/"):
        Vault.from_descriptor(desc, network=NET)
    with pytest.raises(InvalidDescriptor, match="only multipath msigvault accepts"):
        import_vault(desc, network="regtest")
    with pytest.raises(InvalidDescriptor, match=f"more than {MAX_MULTIPATH_ARITY} indexes"):
        expand_multipath(desc.split("#")[0])


def test_refusal_does_not_copy_a_huge_specifier_into_the_message():
    key = f"{XPUB}/{multipath_list(12_000)}/*"
    with pytest.raises(InvalidDescriptor) as info:
        import_vault(reference_checksum(f"wsh(multi(1,{key},{key}))"), network="regtest")
    assert len(str(info.value)) < 300


def test_multipath_arity_bound_is_exact():
    ok = f"pk({XPUB}/{multipath_list(MAX_MULTIPATH_ARITY)}/*)"
    assert len(expand_multipath(ok)) == MAX_MULTIPATH_ARITY
    with pytest.raises(InvalidDescriptor, match="indexes"):
        expand_multipath(f"pk({XPUB}/{multipath_list(MAX_MULTIPATH_ARITY + 1)}/*)")


def test_expansions_may_not_blow_up():
    # 256 copies of a 200 KB descriptor would be 51 MB of output from 200 KB of input
    padding = ",".join([f"pk({XPUB}/0)"] * 1700)
    desc = f"sh(multi(1,{XPUB}/{multipath_list(256)}/*,{padding}))"
    assert len(desc) < MAX_DESCRIPTOR_LENGTH
    with pytest.raises(InvalidDescriptor, match=f"longer than {MAX_EXPANDED_LENGTH} characters"):
        expand_multipath(desc)


def test_many_multipath_groups_on_one_key_are_refused():
    # 40,000 <0;1> on one key: guards the one-pass placement check (refused at the second one)
    desc = f"wsh(multi(1,{XPUB}" + "/<0;1>" * 40_000 + "/*))"
    with pytest.raises(InvalidDescriptor, match="only one multipath specifier"):
        expand_multipath(desc)
    with pytest.raises(InvalidDescriptor, match="only one multipath specifier"):
        Vault.from_descriptor(desc, network=NET, require_checksum=False)


@pytest.mark.parametrize("n", [1000, 1700])
def test_more_keys_than_any_vault_are_refused_before_keys_are_parsed(monkeypatch, n):
    keys = (KEYS * 2)[:n]
    desc = add_checksum(tr(keys))
    assert len(desc) < MAX_DESCRIPTOR_LENGTH
    import msigvault.keys.cosigner as cosigner_module
    monkeypatch.setattr(cosigner_module.ExtendedKey, "parse",
                        classmethod(lambda cls, text: pytest.fail("a key was parsed")))
    with pytest.raises(InvalidDescriptor, match="more than 999 keys"):
        Vault.from_descriptor(desc, network=NET)


@pytest.mark.parametrize("script,limit", [("wsh", 20), ("sh-wsh", 20), ("sh", 15)])
def test_script_key_limit_is_checked_before_keys_are_parsed(script, limit):
    keys = [KEYS[0]] * (limit + 1) + ["not-a-key"]  # an unparsable key after the limit
    inner = f"sortedmulti(1,{','.join(keys)})"
    desc = {"wsh": f"wsh({inner})", "sh-wsh": f"sh(wsh({inner}))", "sh": f"sh({inner})"}[script]
    with pytest.raises(InvalidDescriptor, match=f"at most {limit} keys, not {limit + 2}"):
        Vault.from_descriptor(desc, network=NET, require_checksum=False)


def test_key_expression_limits():
    with pytest.raises(InvalidKey, match=f"at most {MAX_KEY_EXPRESSION_LENGTH}"):
        parse_key_expression(XPUB + "/0" * 3000)
    with pytest.raises(InvalidKey, match=f"more than {MAX_PATH_STEPS} derivation steps"):
        parse_key_expression(XPUB + "/0" * (MAX_PATH_STEPS + 1))
    deep = parse_key_expression(XPUB + "/0" * (MAX_PATH_STEPS - 1) + "/*")
    assert len(deep.steps) == MAX_PATH_STEPS - 1 and deep.wildcard == "*"


def test_fast_checksum_matches_the_reference():
    for desc in (tr(KEYS[:3]), wsh(KEYS[:20]), "raw(deadbeef)", "pk(" + "'h" * 50 + ")", ""):
        assert add_checksum(desc) == reference_checksum(desc)


# -- the formats' and the UR registry's own descriptor parsers -----------------------------------


def test_format_import_refuses_other_multipaths_before_expanding(monkeypatch):
    import msigvault.formats._common as common

    monkeypatch.setattr(common, "expand_multipath", lambda d: pytest.fail("expanded"))
    key = f"{XPUB}/{multipath_list(3)}/*"
    with pytest.raises(InvalidDescriptor, match=r"found <0;1;2>"):
        import_vault(f"wsh(multi(1,{key},{key}))", network="regtest")


def test_ur_registry_refuses_more_than_20_multi_keys_before_parsing_them(monkeypatch):
    from msigvault.transport import registry

    plain = [k.split("/<")[0] + "/0/*" for k in KEYS[:21]]
    assert registry.descriptor_to_cbor(f"wsh(sortedmulti(2,{','.join(plain[:20])}))")
    monkeypatch.setattr(registry, "_parse_key", lambda text: pytest.fail("a key was parsed"))
    with pytest.raises(InvalidDescriptor, match="at most 20 keys, not 21"):
        registry.descriptor_to_cbor(f"wsh(sortedmulti(2,{','.join(plain)}))")


def test_ur_registry_refuses_overlong_descriptors():
    from msigvault.transport import registry

    with pytest.raises(InvalidDescriptor, match=f"more than the {MAX_DESCRIPTOR_LENGTH}"):
        registry.descriptor_to_cbor(tr([KEYS[0]] * 2000))


def test_ur_registry_decoder_refuses_more_than_20_multi_keys():
    from msigvault.transport import TransportError, _cbor, registry

    key = _cbor.tag(registry.TAG_ECKEY, {3: bytes.fromhex("02" + "11" * 32)})
    payload = _cbor.dumps(_cbor.tag(registry.SCRIPT_TAGS["wsh"], _cbor.tag(
        registry.SCRIPT_TAGS["multi"], {1: 1, 2: [key] * 21})))
    with pytest.raises(TransportError, match="21 keys, more than the 20"):
        registry.cbor_to_descriptor(payload)


def test_ur_crypto_account_has_a_descriptor_count_limit():
    from msigvault.transport import TransportError, _cbor, registry

    with pytest.raises(InvalidDescriptor, match="at most 64 output descriptors"):
        registry.account_to_cbor("01020304", ["wpkh([01020304/84h/1h/0h]tpub)"] * 65)
    payload = _cbor.dumps({1: 0x01020304, 2: [0] * 65})
    with pytest.raises(TransportError, match="65 output descriptors"):
        registry.cbor_to_account(payload)
