"""Updater (BIP174): add to each input and change output what signers and finalizers need.

Inputs get witness_utxo and, whenever the previous transaction is known, non_witness_utxo;
BIP32 derivations for all n cosigners; redeem/witness scripts; for ``tr`` the taproot fields.
Change outputs get the same derivation data so signers can rebuild them from the vault.
Global xpubs name every cosigner's account key.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import PolicyError
from ..policy.vault import NUMS_H, DerivedScript, Vault
from ..script import compact_size
from ..types import Utxo
from . import fields as F
from ..keys.cosigner import Cosigner
from .common import encode_origin, have, legacy_txid
from .psbt import Psbt, PsbtMap


def add_global_xpubs(psbt: Psbt, vault: Vault) -> None:
    for c in vault.cosigners:
        if len(c.path) != c.key.depth:
            # an imported record whose origin does not fit its xpub (Cosigner.origin_issues): BIP174
            # requires the global xpub's path to have the key's depth, so it is left out
            continue
        psbt.globals.set(F.PSBT_GLOBAL_XPUB, c.key.serialize(), encode_origin(c.fingerprint, c.path))


def _derivations(vault: Vault, d: DerivedScript) -> "list[tuple[bytes, Cosigner]]":
    """(pubkey, cosigner) in script order."""
    return [(d.pubkeys[pos], vault.cosigners[ci]) for pos, ci in enumerate(d.signers)]


def update_input(psbt: Psbt, i: int, vault: Vault, utxo: Utxo) -> None:
    """Fill input ``i`` (which spends ``utxo``) from the vault."""
    branch, index = utxo.branch, utxo.index
    if branch is None or index is None:
        found = vault.find(utxo.script_pubkey)
        if found is None:
            raise PolicyError(
                f"UTXO {utxo.outpoint} pays a script that is not among the vault's first 1,000 receive "
                "or change addresses: give its branch and index, or it is not a vault coin"
            )
        branch, index = found
        utxo = replace(utxo, branch=branch, index=index)
    d = vault.derive_branch(branch, index)
    if d.script_pubkey != utxo.script_pubkey:
        raise PolicyError(
            f"UTXO {utxo.outpoint} pays {utxo.script_pubkey.hex()[:20]}..., which is not the vault's "
            f"script at branch {utxo.branch} index {utxo.index}: it is not a coin of this vault"
        )
    m = psbt.inputs[i]
    txout = utxo.amount.to_bytes(8, "little") + compact_size(len(utxo.script_pubkey)) + utxo.script_pubkey
    if utxo.prev_tx is not None:
        raw = F.parse_tx(utxo.prev_tx, f"UTXO {utxo.outpoint} previous transaction")
        if legacy_txid(raw)[::-1].hex() != utxo.txid or utxo.vout >= len(raw.vout) \
                or (raw.vout[utxo.vout][0], bytes(raw.vout[utxo.vout][1])) != (utxo.amount, utxo.script_pubkey):
            raise PolicyError(f"UTXO {utxo.outpoint}: the previous transaction given does not match it")
    if d.script_type == "sh":
        if utxo.prev_tx is None:
            raise PolicyError(
                f"UTXO {utxo.outpoint}: legacy sh inputs need the full previous transaction (prev_tx)"
            )
        m.set(F.PSBT_IN_NON_WITNESS_UTXO, b"", utxo.prev_tx)
    else:
        if utxo.prev_tx is not None and d.script_type != "tr":
            m.set(F.PSBT_IN_NON_WITNESS_UTXO, b"", utxo.prev_tx)
        m.set(F.PSBT_IN_WITNESS_UTXO, b"", txout)
    _add_script_data(m, vault, d, is_input=True)


def update_output(psbt: Psbt, o: int, vault: Vault, branch: int, index: int) -> None:
    """Mark output ``o`` as the vault's own (change) output at (branch, index)."""
    d = vault.derive_branch(branch, index)
    if bytes(psbt.script(o)) != d.script_pubkey:
        raise PolicyError(f"output {o} does not pay the vault's script at branch {branch} index {index}")
    _add_script_data(psbt.outputs[o], vault, d, is_input=False)


def _add_script_data(m: PsbtMap, vault: Vault, d: DerivedScript, *, is_input: bool) -> None:
    if is_input:
        t_redeem, t_witness, t_bip32 = F.PSBT_IN_REDEEM_SCRIPT, F.PSBT_IN_WITNESS_SCRIPT, F.PSBT_IN_BIP32_DERIVATION
    else:
        t_redeem, t_witness, t_bip32 = F.PSBT_OUT_REDEEM_SCRIPT, F.PSBT_OUT_WITNESS_SCRIPT, F.PSBT_OUT_BIP32_DERIVATION
    if d.script_type == "tr":
        _add_taproot_data(m, vault, d, is_input=is_input)
        return
    if d.redeem_script is not None:
        m.set(t_redeem, b"", d.redeem_script)
    if d.witness_script is not None:
        m.set(t_witness, b"", d.witness_script)
    for pk, c in sorted(_derivations(vault, d), key=lambda x: x[0]):  # keys are distinct
        m.set(t_bip32, pk, encode_origin(c.fingerprint, c.path + (d.branch, d.index)))


def _add_taproot_data(m: PsbtMap, vault: Vault, d: DerivedScript, *, is_input: bool) -> None:
    if d.leaves:
        _add_taproot_leaves(m, vault, d, is_input=is_input)
        return
    leaf_hash, leaf_script = have(d.leaf_hash), have(d.leaf_script)
    origins = {}
    for pk, c in _derivations(vault, d):
        origins[pk[1:]] = compact_size(1) + leaf_hash + encode_origin(c.fingerprint, c.path + (d.branch, d.index))
    if is_input:
        m.set(F.PSBT_IN_TAP_LEAF_SCRIPT, have(d.control_block), leaf_script + bytes([0xC0]))
        for xonly in sorted(origins):
            m.set(F.PSBT_IN_TAP_BIP32_DERIVATION, xonly, origins[xonly])
        m.set(F.PSBT_IN_TAP_INTERNAL_KEY, b"", NUMS_H)
        m.set(F.PSBT_IN_TAP_MERKLE_ROOT, b"", leaf_hash)
    else:
        m.set(F.PSBT_OUT_TAP_INTERNAL_KEY, b"", NUMS_H)
        m.set(F.PSBT_OUT_TAP_TREE, b"", bytes([0, 0xC0]) + compact_size(len(leaf_script)) + leaf_script)
        for xonly in sorted(origins):
            m.set(F.PSBT_OUT_TAP_BIP32_DERIVATION, xonly, origins[xonly])


def _add_taproot_leaves(m: PsbtMap, vault: Vault, d: DerivedScript, *, is_input: bool) -> None:
    """A tr vault with recovery paths: every leaf, and each key with the leaves it is on."""
    origins = {}
    for pos, c in _derivations(vault, d):
        hashes = d.tap_leaf_hashes(pos[1:])
        origins[pos[1:]] = (compact_size(len(hashes)) + b"".join(hashes)
                            + encode_origin(c.fingerprint, c.path + (d.branch, d.index)))
    internal, tree, bip32 = ((F.PSBT_IN_TAP_INTERNAL_KEY, None, F.PSBT_IN_TAP_BIP32_DERIVATION) if is_input
                             else (F.PSBT_OUT_TAP_INTERNAL_KEY, F.PSBT_OUT_TAP_TREE, F.PSBT_OUT_TAP_BIP32_DERIVATION))
    if is_input:
        for control, script in sorted(d.tap_leaf_entries):
            m.set(F.PSBT_IN_TAP_LEAF_SCRIPT, control, script)
        m.set(F.PSBT_IN_TAP_MERKLE_ROOT, b"", have(d.merkle_root))
    elif tree is not None:
        m.set(tree, b"", have(d.tap_tree))
    for xonly in sorted(origins):
        m.set(bip32, xonly, origins[xonly])
    m.set(internal, b"", NUMS_H)
