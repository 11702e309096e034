"""Seized sources: each format parses, bad input is a SourceError that names the line and never the
secret, sizes are bounded, buffers and files are wiped; the parsers (and the intake files') are
fuzzed: anything either parses or raises an IntakeError, nothing else."""

from __future__ import annotations

import json
import os

import pytest
from embit import base58
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msigvault.keys.bip32 import root_from_seed
from msigvault.keys.paths import HARDENED
from msigvault.lifecycle.custody import verify_record
from msigvault.lifecycle.discover import parse_watch, watch_document, watch_groups
from msigvault.lifecycle.errors import CustodyError, IntakeError, IntakeFileError, SourceError
from msigvault.lifecycle.scan import parse_found
from msigvault.lifecycle.secrets import Secret, read_secret_file, wipe_file
from msigvault.lifecycle.sources import SourceKind, parse_private_descriptor, parse_source
from msigvault.lifecycle.sweep import parse_plan, parse_signed
from msigvault.network import Network
from msigvault.policy.checksum import descriptor_checksum

from .conftest import MNEMONIC, NET, secret_key, wif

K1, K2 = secret_key("src-1"), secret_key("src-2")


def _parse(text: str, **kw):
    return parse_source(Secret(text.encode()), kw.pop("network", NET), **kw)


def _pubhex(key: bytes) -> str:
    from embit.util import secp256k1 as s

    return s.ec_pubkey_serialize(s.ec_pubkey_create(key)).hex()


def test_each_format_is_detected():
    assert _parse(f"# keys\n{wif(K1)}\n\n{wif(K2, False)}  # old\n").kind == SourceKind.WIF
    assert _parse(MNEMONIC).kind == SourceKind.MNEMONIC
    root = root_from_seed(K1, NET)
    assert _parse(root.to_base58()).kind == SourceKind.XPRV
    assert _parse(f"wpkh({wif(K1)})\npkh({wif(K2, False)})").kind == SourceKind.DESCRIPTOR


def test_watch_groups_of_each_kind():
    with _parse(f"{wif(K1)}\n{wif(K2, False)}") as s:
        assert [g.id for g in watch_groups(s)] == ["wif0/p2pkh", "wif0/p2sh-p2wpkh", "wif0/p2wpkh", "wif0/p2tr",
                                                   "wif1/p2pkh"]
    with _parse(MNEMONIC) as s:
        ids = [g.id for g in watch_groups(s, accounts=2)]
        assert ids == [f"bip{p}/{a}" for p in (44, 49, 84, 86) for a in (0, 1)]
    root = root_from_seed(K1, NET)
    account = root.derive((84 + HARDENED, 1 + HARDENED, HARDENED))
    with _parse(account.to_base58()) as s:
        groups = watch_groups(s)
        assert len(groups) == 4 and all(g.xpub == account.neuter(NET).to_base58() for g in groups)
    zprv = account.to_base58(NET.slip132_prv["vprv"])
    with _parse(zprv) as s:
        assert [g.id for g in watch_groups(s)] == ["account/p2wpkh"]


def test_bip39_passphrase_changes_the_keys_and_belongs_to_mnemonics_only():
    with _parse(MNEMONIC) as a, _parse(MNEMONIC, passphrase="x") as b:
        assert watch_groups(a)[0].xpub != watch_groups(b)[0].xpub
    with pytest.raises(SourceError, match="passphrase"):
        _parse(wif(K1), passphrase="x")


@pytest.mark.parametrize("text,why", [
    (wif(K1).replace(wif(K1)[10], "1" if wif(K1)[10] != "1" else "2"), "checksum"),
    (base58.encode_check(b"\x80" + K1 + b"\x01"), "mainnet"),
    (base58.encode_check(b"\xef" + K1 + b"\x02"), "bytes"),
    (base58.encode_check(b"\xef" + b"\x00" * 32 + b"\x01"), "range"),
    (f"{wif(K1)} {wif(K2)}", "one WIF key per line"),
])
def test_bad_wif_keys_are_refused_without_showing_them(text, why):
    with pytest.raises(SourceError) as e:
        _parse(f"{wif(K2)}\n{text}\n")
    msg = str(e.value)
    assert why in msg and e.value.line == 2
    for token in text.split():
        assert token not in msg and token[:12] not in msg
    assert wif(K2) not in msg


def test_mnemonic_and_extended_key_errors():
    words = MNEMONIC.split()
    with pytest.raises(SourceError, match="checksum|word"):
        _parse(" ".join(words[:-1] + ["zoo" if words[-1] != "zoo" else "abandon"]))
    root = root_from_seed(K1, NET)
    with pytest.raises(SourceError, match="public"):
        _parse(root.neuter(NET).to_base58(), kind="xprv")
    with pytest.raises(SourceError, match="mainnet"):
        _parse(root_from_seed(K1, Network.MAINNET).to_base58())


def test_descriptors():
    body = f"sh(multi(2,{wif(K1)},{_pubhex(secret_key('src-3'))},{wif(K2)}))"
    entry = parse_private_descriptor(f"{body}#{descriptor_checksum(body)}", NET)
    assert entry.multi is not None and entry.multi.m == 2
    sorted_entry = parse_private_descriptor(f"sh(sortedmulti(1,[d34db33f/48h/1h/0h]{wif(K1)},{_pubhex(K2)}))", NET)
    assert sorted_entry.multi is not None and sorted_entry.multi.pubkeys() == sorted(sorted_entry.multi.pubkeys())
    tr = parse_private_descriptor(f"tr({wif(K1)})", NET)
    assert tr.key is not None


@pytest.mark.parametrize("text,why", [
    ("sh(multi(2,{w1},{p2}))#aaaaaaaa", "checksum"),
    ("sh(multi(2,{w1},{p2}))", "only 1"),
    ("sh(multi(2,{w1},{w1}))", "same key twice"),
    ("sh(multi(3,{w1},{w2}))", "threshold"),
    ("wpkh({u1})", "compressed"),
    ("tr({p1})", "public key"),
    ("wsh(multi(1,{w1}))", "intake reads"),
    ("pkh({w1},{w2})", "one key"),
    ("pkh({w1}", "closed"),
    ("sh(multi(1,{x1}))", "extended keys"),
    ("pkh([zz/1]{w1})", "origin"),
])
def test_bad_descriptors_are_refused_without_showing_keys(text, why):
    keys = {"w1": wif(K1), "w2": wif(K2), "u1": wif(K1, False), "p1": _pubhex(K1), "p2": _pubhex(K2),
            "x1": root_from_seed(K1, NET).to_base58()}
    line = text.format(**keys)
    with pytest.raises(SourceError) as e:
        _parse(line, kind="descriptor")
    assert why in str(e.value)
    for k in ("w1", "w2", "u1", "x1"):
        assert keys[k] not in str(e.value)


def test_sizes_are_bounded(tmp_path):
    big = tmp_path / "big"
    big.write_bytes(b"#" * (64 * 1024 + 1))
    with pytest.raises(SourceError) as e:
        read_secret_file(big)
    assert e.value.limit == 64 * 1024
    with pytest.raises(SourceError, match="longer"):
        _parse("x" * 4001)
    with pytest.raises(SourceError, match="at most 1000"):
        _parse("\n".join([wif(K1)] * 1001))
    with pytest.raises(SourceError, match="no keys"):
        _parse("# nothing\n\n")
    with pytest.raises(SourceError, match="UTF-8"):
        parse_source(Secret(b"\xff\xfe"), NET)


def test_buffers_are_wiped_and_reprs_show_nothing():
    src = _parse(f"{wif(K1)}\n{wif(K2)}")
    assert wif(K1) not in repr(src) and K1.hex() not in repr(src.keys[0]) + repr(src.keys[0].secret)
    src.wipe()
    assert all(k.secret.wiped for k in src.keys)
    with pytest.raises(SourceError, match="wiped"):
        src.keys[0].secret.reveal()


def test_wipe_file_overwrites_before_unlinking(tmp_path):
    source = tmp_path / "seized.txt"
    source.write_text(wif(K1) + "\n")
    witness = tmp_path / "same-inode"
    os.link(source, witness)  # a second name for the same blocks: what the overwrite leaves there
    wipe_file(source)
    assert not source.exists()
    assert witness.read_bytes() == b"\x00" * (len(wif(K1)) + 1)


def test_wipe_file_refuses_a_link_and_a_fifo(tmp_path):
    """A source given as a symlink (a USB stick can carry one) would zero the file it points to, and
    keep the link; a FIFO would block. Both are refused and the target is left as it was."""
    target = tmp_path / "other-case.txt"
    target.write_text(wif(K1) + "\n")
    link = tmp_path / "seized.txt"
    link.symlink_to(target)
    with pytest.raises(SourceError, match="a link"):
        wipe_file(link)
    assert target.read_text() == wif(K1) + "\n" and link.is_symlink()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(SourceError, match="not a plain file"):
        wipe_file(fifo)


def test_a_watch_file_never_loads_with_a_private_key():
    with _parse(MNEMONIC) as s:
        doc = json.loads(watch_document(s, watch_groups(s), created="t"))
    doc["groups"][0]["xpub"] = root_from_seed(K1, NET).to_base58()
    with pytest.raises(IntakeFileError, match="private key"):
        parse_watch(json.dumps(doc).encode())


# -- fuzzing ------------------------------------------------------------------------------------

_DESC_ALPHABET = "pkhwsrmultiod(),#[]/'0123456789abcdefABCDEF" + wif(K1)[:12]
_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(st.binary(max_size=300))
def test_fuzz_any_bytes_parse_or_raise_a_source_error(data):
    try:
        parse_source(Secret(data), NET).wipe()
    except SourceError:
        pass


@_FUZZ
@given(st.text(alphabet=_DESC_ALPHABET, max_size=120))
def test_fuzz_descriptor_like_text(text):
    try:
        parse_source(Secret(("sh(" + text).encode()), NET, kind="descriptor").wipe()
    except SourceError:
        pass


@_FUZZ
@given(st.lists(st.sampled_from([wif(K1), wif(K2, False), _pubhex(K2), "2", "1", ",", "(", ")", "multi(",
                                 "sh(", "wpkh(", "sortedmulti(", "tr(", "pkh(", "#", "[d34db33f/1h]"]),
                max_size=12))
def test_fuzz_descriptor_token_soup(tokens):
    text = "".join(tokens)
    try:
        parse_private_descriptor(text, NET)
    except SourceError as e:
        assert wif(K1) not in str(e) and wif(K2, False) not in str(e)


_JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                        max_leaves=12)


@_FUZZ
@given(st.binary(max_size=200) | _JSONISH.map(lambda v: json.dumps(v).encode()),
       st.sampled_from(["msigvault-intake-watch", "msigvault-intake-found", "msigvault-intake-plan",
                        "msigvault-intake-signed", "msigvault-custody-record"]), _JSONISH)
def test_fuzz_intake_files_raise_intake_errors_only(data, fmt, body):
    shaped = json.dumps({"format": fmt, "version": 1, "network": "regtest",
                         **(body if isinstance(body, dict) else {"x": body})}).encode()
    for blob in (data, shaped):
        for parse in (parse_watch, parse_found, parse_plan, parse_signed, verify_record):
            try:
                parse(blob)
            except (IntakeError, CustodyError):
                pass
            except Exception as e:  # pragma: no cover - the failure message says which parser
                from msigvault.errors import MsigvaultError

                assert isinstance(e, MsigvaultError), (parse.__name__, blob[:80], e)


@pytest.mark.parametrize("blob", [b"[" * 200_000, b'{"a":' * 100_000, b'{"keystore":' + b"[" * 200_000])
def test_absurdly_deep_json_is_an_intake_error_not_a_recursion_error(blob):
    for parse in (parse_watch, parse_found, parse_plan, parse_signed, verify_record):
        with pytest.raises(IntakeError):
            parse(blob)
    with pytest.raises(SourceError):
        parse_source(Secret(blob), NET)
