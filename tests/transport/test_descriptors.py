"""Vault descriptors through ur:crypto-output, and the cosigner records of ur:crypto-account."""

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from msigvault import Network, Vault
from msigvault.errors import InvalidDescriptor, InvalidKey, MsigvaultError
from msigvault.keys.cosigner import Cosigner
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.strategies import vaults
from msigvault.transport import TransportError
from msigvault.transport.registry import descriptor_to_cbor
from msigvault.transport.ur import (
    account_to_ur, decode_ur, descriptor_to_ur, encode_ur, ur_to_account, ur_to_descriptor,
)

HOLDERS = [TestKeyholder.from_label(x) for x in "abc"]


def _vault(script="wsh", sorted=True, network=Network.REGTEST):
    holders = [TestKeyholder.from_label(x, network) for x in "abc"]
    return Vault.multisig(2, [h.cosigner(script) for h in holders], script=script, sorted=sorted,
                          network=network)


@given(vaults(script_types=("sh", "sh-wsh", "wsh"), max_n=4), st.sampled_from([None, 0, 1]))
def test_vault_descriptor_round_trip(vault, branch):
    desc = vault.descriptor(branch)
    ur = descriptor_to_ur(desc)
    assert ur.startswith("ur:crypto-output/")
    back = ur_to_descriptor(ur)
    assert back == desc  # byte-identical text, checksum included
    assert Vault.from_descriptor(back, network=vault.network).same_policy(vault)


def test_multipath_is_the_pair_component_and_testnet_is_use_info():
    vault = _vault()
    top = cbor2.loads(descriptor_to_cbor(vault.descriptor()))
    assert top.tag == 401 and top.value.tag == 407  # wsh(sortedmulti(...))
    key = top.value.value[2][0]
    assert key.tag == 303
    assert key.value[5].tag == 305 and dict(key.value[5].value) == {2: 1}  # testnet key
    origin = key.value[6]
    assert origin.tag == 304
    assert list(origin.value[1]) == [48, True, 1, True, 0, True, 2, True]
    assert origin.value[2] == int.from_bytes(HOLDERS[0].fingerprint, "big")
    assert 3 not in origin.value  # depth 4 is implied by the four-step origin
    children = key.value[7].value[1]
    assert [list(children[0]), list(children[1]), children[2]] == [[0, False, 1, False], [], False]


def test_mainnet_sh_wsh_multi_round_trip():
    vault = _vault("sh-wsh", sorted=False, network=Network.MAINNET)
    desc = vault.descriptor()
    assert ur_to_descriptor(descriptor_to_ur(desc)) == desc
    key = cbor2.loads(descriptor_to_cbor(desc)).value.value.value[2][0]
    assert 5 not in key.value  # mainnet: no use-info
    assert desc.startswith("sh(wsh(multi(2,")


def test_descriptor_without_checksum_and_with_apostrophes_is_accepted():
    vault = _vault()
    desc = vault.descriptor(checksum=False).replace("h/", "'/").replace("h]", "']")
    assert ur_to_descriptor(descriptor_to_ur(desc)) == vault.descriptor()


def test_multi_part_crypto_output():
    """A long descriptor can travel as an animated QR too."""
    from msigvault.transport.ur import UREncoder

    vault = _vault()
    payload = descriptor_to_cbor(vault.descriptor())
    frames = UREncoder("crypto-output", payload, 60).parts(30)
    assert ur_to_descriptor(frames[::-1]) == vault.descriptor()


def test_taproot_vault_is_refused_with_a_reason():
    vault = _vault("tr")
    with pytest.raises(InvalidDescriptor, match="cannot be carried"):
        descriptor_to_ur(vault.descriptor())


def test_private_keys_never_go_into_a_qr_code():
    xprv = HOLDERS[0].root.to_base58()
    with pytest.raises(InvalidKey, match="private key"):
        descriptor_to_ur(f"wsh(multi(1,{xprv}/0/*))")
    with pytest.raises(InvalidKey, match="private key"):
        descriptor_to_ur("pkh(cVt4o7BGAig1UXywgGSmARhxMdzP5qvQsxKkSsc1XEkw3tDTQFpy)")


def test_wrong_checksum_is_refused():
    desc = _vault().descriptor()
    bad = desc[:-1] + ("q" if desc[-1] != "q" else "p")
    with pytest.raises(MsigvaultError, match="checksum"):
        descriptor_to_ur(bad)


@pytest.mark.parametrize("desc", [
    "", "wsh(", "wsh()", "foo(1,2)", "wsh(multi(3,02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5))",
    "wsh(wpkh(02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5))",
    "sh(sh(pk(02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5)))",
    "tr(02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5,pk(02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5))",
    "wsh(multi(1,[d34db33f/1]02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5))",
    "wsh(multi(1,tpubD6NzVbkrYhZ4X/<0;1;2>/*))",
    12,
])
def test_bad_descriptors_raise_msigvault_errors(desc):
    with pytest.raises(MsigvaultError):
        descriptor_to_ur(desc)


@pytest.mark.parametrize("payload", [
    cbor2.dumps(1), cbor2.dumps([1, 2]), cbor2.dumps(cbor2.CBORTag(401, 5)),
    cbor2.dumps(cbor2.CBORTag(307, {})), cbor2.dumps(cbor2.CBORTag(406, {1: 2, 2: []})),
    cbor2.dumps(cbor2.CBORTag(403, cbor2.CBORTag(303, {3: b"\x02" + bytes(32), 4: bytes(32)}))),
    cbor2.dumps(cbor2.CBORTag(403, cbor2.CBORTag(306, {3: b"x"}))),
    cbor2.dumps(cbor2.CBORTag(403, cbor2.CBORTag(303, {2: True, 3: b"\x00" + bytes(32)}))),
    cbor2.dumps(cbor2.CBORTag(403, cbor2.CBORTag(303, {3: bytes.fromhex(
        "02d2b36900396c9282fa14628566582f206a5dd0bcc8d5e892611806cafb0301f0"), 4: bytes(32),
        7: cbor2.CBORTag(304, {1: [[1, 5], False]})}))),
    b"\xff\xff",
])
def test_malformed_crypto_output_raises_transport_error(payload):
    with pytest.raises(TransportError):
        ur_to_descriptor(encode_ur("crypto-output", payload))


def test_ur_of_another_type_is_named():
    with pytest.raises(TransportError, match="ur:crypto-psbt, not a descriptor"):
        ur_to_descriptor(encode_ur("crypto-psbt", cbor2.dumps(b"psbt\xff")))


def test_account_round_trip_gives_cosigner_records():
    """A keyholder device exports its account keys as ur:crypto-account; the coordinator reads the
    wsh entry back as the same Cosigner record."""
    holder = HOLDERS[1]
    wsh, shwsh = holder.cosigner("wsh"), holder.cosigner("sh-wsh")
    ur = account_to_ur(holder.fingerprint, [f"wsh({wsh})", f"sh(wsh({shwsh}))"])
    fp, entries = ur_to_account(ur)
    assert fp == holder.fingerprint
    assert entries == [f"wsh({wsh})", f"sh(wsh({shwsh}))"]
    assert Cosigner.parse(entries[0][4:-1], network=Network.REGTEST) == wsh
    assert decode_ur(ur)[0] == "crypto-account"
