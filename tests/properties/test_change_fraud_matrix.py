"""Coldcard's change-fraud matrix as one property: every script type, every cosigner slot, every
way to tamper with a change output's claims (key bytes, path, fingerprint, and the metadata-only
edits: redeem/witness script, taproot internal key, tap tree, leaf hashes), any m-of-n.

Each tampered PSBT must be refused by the signer, and the untampered PSBT must be signed with
its change shown as change (so the property cannot pass by refusing everything).
"""

from hypothesis import given
from hypothesis import strategies as st

import pytest

from msigvault import Vault
from msigvault.errors import SignerRefusal
from msigvault.network import Network
from msigvault.psbt import fields as F
from msigvault.psbt.signer import sign
from msigvault.script import compact_size
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo

NET = Network.REGTEST
EXTERNAL = bytes.fromhex("0014") + bytes(range(20))
HOLDERS = [TestKeyholder.from_label(f"matrix-{i}") for i in range(5)]
_VAULTS: dict = {}

KEY_EDITS = ("flip-key-byte", "flip-last-path-bit", "flip-fingerprint", "drop-one-key", "hardened-index")
META_EDITS = {
    "sh": ("redeem-script",),
    "sh-wsh": ("redeem-script", "witness-script"),
    "wsh": ("witness-script", "redeem-script"),
    "tr": ("internal-key", "tap-tree", "leaf-hash", "witness-script"),
}


def _vault(script, m, n):
    key = (script, m, n)
    if key not in _VAULTS:
        v = Vault.multisig(m, [h.cosigner(script) for h in HOLDERS[:n]], script=script, network=NET)
        utxo = synthetic_utxo(v, 400_000, index=2, seed=f"matrix-{script}-{m}-{n}")
        psbt = v.create_psbt([utxo], [(EXTERNAL, 150_000)], fee_rate=2.0, change_index=3)
        _VAULTS[key] = (v, psbt)
    v, psbt = _VAULTS[key]
    return v, psbt.copy()


def _change(psbt):
    for o, m in enumerate(psbt.outputs):
        if m.items_of_type(F.PSBT_OUT_BIP32_DERIVATION) or m.items_of_type(F.PSBT_OUT_TAP_BIP32_DERIVATION):
            return o
    raise AssertionError("no change output")


def _tamper(psbt, o, script, edit, slot):
    m = psbt.outputs[o]
    t = F.PSBT_OUT_TAP_BIP32_DERIVATION if script == "tr" else F.PSBT_OUT_BIP32_DERIVATION
    entries = m.items_of_type(t)
    keydata, value = entries[slot % len(entries)]
    if edit == "flip-key-byte":
        m.delete(t, keydata)
        m.set(t, keydata[:-1] + bytes([keydata[-1] ^ 1]), value)
    elif edit == "flip-last-path-bit":
        m.set(t, keydata, value[:-1] + bytes([value[-1] ^ 1]))
    elif edit == "flip-fingerprint":
        pos = 33 if script == "tr" else 0  # taproot: after the count and the one leaf hash
        m.set(t, keydata, value[:pos] + bytes([value[pos] ^ 0x80]) + value[pos + 1:])
    elif edit == "drop-one-key":
        m.delete(t, keydata)
    elif edit == "hardened-index":
        m.set(t, keydata, value[:-1] + bytes([value[-1] | 0x80]))
    elif edit == "redeem-script":
        m.set(F.PSBT_OUT_REDEEM_SCRIPT, b"", b"\x00\x20" + bytes(32))
    elif edit == "witness-script":
        m.set(F.PSBT_OUT_WITNESS_SCRIPT, b"", b"\x51")
    elif edit == "internal-key":
        m.set(F.PSBT_OUT_TAP_INTERNAL_KEY, b"", bytes.fromhex(
            "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"))
    elif edit == "tap-tree":
        m.set(F.PSBT_OUT_TAP_TREE, b"", bytes([0, 0xC0, 1, 0x51]))
    elif edit == "leaf-hash":
        m.set(t, keydata, compact_size(1) + bytes(32) + value[33:])
    else:  # pragma: no cover
        raise AssertionError(edit)


@st.composite
def cases(draw):
    script = draw(st.sampled_from(sorted(META_EDITS)))
    n = draw(st.integers(1, 5))
    m = draw(st.integers(1, n))
    edit = draw(st.sampled_from(KEY_EDITS + META_EDITS[script]))
    slot = draw(st.integers(0, n - 1))
    signer = draw(st.integers(0, n - 1))
    return script, m, n, edit, slot, signer


@given(cases())
def test_every_change_tampering_is_refused(case):
    script, m, n, edit, slot, signer = case
    vault, psbt = _vault(script, m, n)
    root = HOLDERS[signer].root
    _, summary = sign(psbt, vault, root)  # the honest PSBT is signed, change shown as change
    assert [o.kind for o in summary.outputs].count("change") == 1
    o = _change(psbt)
    _tamper(psbt, o, script, edit, slot)
    if edit == "drop-one-key" and n == 1:
        # no claim is left to be false: the output is shown for what its script is, the vault's
        # change at index 3, found by script
        _, summary = sign(psbt, vault, root)
        line = summary.outputs[o]
        assert (line.kind, line.vault_index, line.proven_by) == ("change", 3, "script")
        return
    with pytest.raises(SignerRefusal):
        sign(psbt, vault, root)


@pytest.mark.parametrize("script", sorted(META_EDITS))
def test_matrix_covers_every_slot_and_edit(script):
    """The exhaustive corner of the property for 2-of-3: all slots x all edits."""
    for edit in KEY_EDITS + META_EDITS[script]:
        for slot in range(3):
            vault, psbt = _vault(script, 2, 3)
            _tamper(psbt, _change(psbt), script, edit, slot)
            with pytest.raises(SignerRefusal):
                sign(psbt, vault, HOLDERS[0].root)
