"""Signer (BIP174): the keyholder's last line of defence.

``check`` inspects a PSBT against the registered vault and returns what signing it would do
(payments, change, fee); it raises :class:`SignerRefusal` for anything the vault did not
authorise. ``sign`` runs the same checks, then adds this keyholder's signature to every vault
input. See docs/psbt.md for each refusal and the attack it stops.
"""

from __future__ import annotations

import hmac
from dataclasses import asdict, dataclass, field, replace

from embit.util import secp256k1 as _secp

from ..errors import SignerRefusal
from ..keys.bip32 import SECP256K1_N, ExtendedKey
from ..keys.cosigner import Cosigner
from ..policy.vault import DerivedScript, Vault
from . import fields as F
from .common import (
    OutputLine,
    classify_output,
    ecdsa_sign,
    ecdsa_verify,
    pubkey_of,
    resolve_input,
    schnorr_sign,
    schnorr_verify,
    unsigned_tx,
)
from .psbt import Psbt
from .sighash import SIGHASH_ALL, SIGHASH_DEFAULT, SIGHASH_NAMES, SighashCache, TxOut
from .weight import input_weight, tx_weight, vsize


@dataclass(frozen=True)
class SignerPolicy:
    """What a signer accepts. The defaults are conservative; loosen them explicitly.

    Fee limits follow Caravan (2,500,000 sats, 1,000 sat/vB) and Coldcard (10 % of the amount
    sent out of the vault).
    """

    max_fee_sats: int = 2_500_000
    max_fee_rate: float = 1_000.0
    max_fee_fraction: float = 0.10
    allowed_sighashes: frozenset = frozenset()  # beyond ALL (and DEFAULT for taproot)
    allow_witness_utxo_only: bool = False  # segwit v0 inputs without their previous transaction
    change_gap: int = 1_000  # change index at most this far above the highest input index


@dataclass(frozen=True)
class SigningSummary:
    """What the keyholder is asked to approve."""

    fingerprint: str
    inputs: int
    input_total: int
    outputs: "tuple[OutputLine, ...]"
    fee: int
    vsize: int
    fee_rate: float
    signed_inputs: int = 0
    notes: "tuple[str, ...]" = field(default=())

    @property
    def payments(self) -> "list[OutputLine]":
        return [o for o in self.outputs if o.kind == "payment"]

    @property
    def sent_out(self) -> int:
        return sum(o.amount for o in self.payments)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["outputs"] = [asdict(o) for o in self.outputs]
        d["sent_out"] = self.sent_out
        return d

    def text(self) -> str:
        lines = [f"Signing as {self.fingerprint}: spending {self.inputs} vault input(s) worth "
                 f"{_btc(self.input_total)}"]
        for o in self.outputs:
            label = {"payment": "PAY", "change": "change back to vault", "vault-receive": "to vault (receive)"}[o.kind]
            where = f" (vault index {o.vault_index})" if o.vault_index is not None else ""
            lines.append(f"  output {o.index}: {label:<22} {_btc(o.amount):>20}  {o.address}{where}")
        lines.append(f"  fee: {_btc(self.fee)} = {self.fee_rate:.2f} sat/vB for about {self.vsize} vB")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def _btc(sats: int) -> str:
    return f"{sats / 1e8:,.8f} BTC"


@dataclass
class _Input:
    derived: DerivedScript
    spent: TxOut
    sighash: int


def check(psbt: Psbt, vault: Vault, *, fingerprint: bytes, policy: SignerPolicy = SignerPolicy()):
    """Verify ``psbt`` against the registered vault; return (SigningSummary, per-input details)."""
    if not isinstance(psbt, Psbt):
        raise SignerRefusal("expected a parsed PSBT")
    if psbt.input_count == 0:
        raise SignerRefusal("the PSBT has no inputs")
    final = [m.get(F.PSBT_IN_FINAL_SCRIPTSIG) is not None or m.get(F.PSBT_IN_FINAL_SCRIPTWITNESS) is not None
             for m in psbt.inputs]
    if all(final):
        raise SignerRefusal("this PSBT is already finalized: there is nothing left to sign; broadcast it")
    if any(final):
        raise SignerRefusal(
            f"input {final.index(True)} is already finalized but others are not: a finalized input can no "
            "longer be checked against the vault; ask the coordinator for the unfinalized PSBT"
        )
    _check_global_xpubs(psbt, vault)
    inputs = [_check_input(psbt, i, vault, policy) for i in range(psbt.input_count)]
    outpoints = {psbt.prevout(i) for i in range(psbt.input_count)}
    if len(outpoints) != psbt.input_count:
        raise SignerRefusal("the PSBT spends the same coin twice")
    max_index = max(x.derived.index for x in inputs)
    outputs = tuple(_check_output(psbt, o, vault, policy, max_index) for o in range(psbt.output_count))
    input_total = sum(x.spent.amount for x in inputs)
    output_total = sum(o.amount for o in outputs)
    fee = input_total - output_total
    if fee < 0:
        raise SignerRefusal(f"the outputs ({output_total} sats) exceed the inputs ({input_total} sats)")
    size = vsize(tx_weight([input_weight(vault.script, vault.m, vault.n)] * len(inputs),
                           [len(psbt.script(o)) for o in range(psbt.output_count)]))
    rate = fee / size
    sent = sum(o.amount for o in outputs if o.kind == "payment")
    if fee > policy.max_fee_sats:
        raise SignerRefusal(f"fee {fee} sats is above this signer's limit of {policy.max_fee_sats} sats")
    if rate > policy.max_fee_rate:
        raise SignerRefusal(f"fee rate {rate:.1f} sat/vB is above this signer's limit of {policy.max_fee_rate} sat/vB")
    if sent and fee > policy.max_fee_fraction * sent:
        raise SignerRefusal(
            f"fee {fee} sats is more than {policy.max_fee_fraction:.0%} of the {sent} sats being sent"
        )
    notes = []
    if not sent:
        notes.append("no payment leaves the vault (consolidation or self-transfer)")
    locktime = psbt.locktime
    if locktime >= 500_000_000:
        notes.append(f"cannot be mined before unix time {locktime} (nLockTime)")
    elif locktime > 0:
        notes.append(f"cannot be mined before block {locktime} (nLockTime; normally the current height)")
    summary = SigningSummary(fingerprint.hex(), len(inputs), input_total, outputs, fee, size, round(rate, 3),
                             notes=tuple(notes))
    return summary, inputs


def sign(psbt: Psbt, vault: Vault, root: ExtendedKey, *, policy: SignerPolicy = SignerPolicy()):
    """Check ``psbt`` and sign every vault input with ``root``; return (new PSBT, SigningSummary)."""
    me, account = find_cosigner(vault, root)
    summary, inputs = check(psbt, vault, fingerprint=me.fingerprint, policy=policy)
    out = psbt.copy()
    tx = unsigned_tx(out)
    is_tr = vault.script == "tr"
    cache = SighashCache(tx, [x.spent for x in inputs] if is_tr else None)
    me_pos = vault.cosigners.index(me)
    branches = {}
    signed = 0
    for i, x in enumerate(inputs):
        m = out.inputs[i]
        d = x.derived
        if d.branch not in branches:
            branches[d.branch] = _LeafSigner(account.child(d.branch))
        secret = branches[d.branch].secret(d.index)
        pub = d.pubkeys[d.signers.index(me_pos)]
        if pubkey_of(secret) != pub:  # cannot happen unless the vault record is corrupt
            raise SignerRefusal(f"input {i}: this key does not derive the vault key it should")
        if is_tr:
            msg = cache.taproot(i, x.sighash, leaf_hash=d.leaf_hash)
            key = pub[1:] + d.leaf_hash
            existing = m.get(F.PSBT_IN_TAP_SCRIPT_SIG, key)
            if existing is not None and schnorr_verify(pub[1:], existing[:64], msg):
                signed += 1
                continue
            sig = schnorr_sign(secret, msg)
            m.set(F.PSBT_IN_TAP_SCRIPT_SIG, key, sig if x.sighash == SIGHASH_DEFAULT else sig + bytes([x.sighash]))
        else:
            if d.script_type == "sh":
                msg = cache.legacy(i, d.redeem_script, x.sighash)
            else:
                msg = cache.segwit_v0(i, d.witness_script, x.spent.amount, x.sighash)
            existing = m.get(F.PSBT_IN_PARTIAL_SIG, pub)
            if existing is not None and ecdsa_verify(pub, existing[:-1], msg):
                signed += 1
                continue
            m.set(F.PSBT_IN_PARTIAL_SIG, pub, ecdsa_sign(secret, msg) + bytes([x.sighash]))
        signed += 1
    out.canonicalize()
    return out, replace(summary, signed_inputs=signed)


class _LeafSigner:
    """Private child derivation below one branch key: one HMAC and one scalar add per index."""

    def __init__(self, branch: ExtendedKey):
        self._secret = branch.key[1:]
        self._pub = branch.public_key
        self._chain = branch.chain_code

    def secret(self, index: int) -> bytes:
        digest = hmac.digest(self._chain, self._pub + index.to_bytes(4, "big"), "sha512")
        if int.from_bytes(digest[:32], "big") >= SECP256K1_N:
            raise SignerRefusal(f"BIP32 derivation at index {index} is invalid")
        return _secp.ec_privkey_add(self._secret, digest[:32])


def find_cosigner(vault: Vault, root: ExtendedKey) -> "tuple[Cosigner, ExtendedKey]":
    if not isinstance(root, ExtendedKey) or not root.is_private:
        raise SignerRefusal("signing needs this keyholder's private master key")
    fp = root.fingerprint
    for c in vault.cosigners:
        if c.fingerprint != fp:
            continue
        account = root.derive(c.path)
        if account.public_key == c.public_key and account.chain_code == c.key.chain_code:
            return c, account
        raise SignerRefusal(
            f"the vault lists fingerprint {fp.hex()} at {c.origin()} with a different xpub than this "
            "key derives: the vault record was altered (cosigner key substitution); do not use it"
        )
    raise SignerRefusal(
        f"this key (fingerprint {fp.hex()}) is not a cosigner of the vault: check you loaded the right "
        "key and the right vault"
    )


def _check_global_xpubs(psbt: Psbt, vault: Vault) -> None:
    ours = {c.key.serialize()[4:] for c in vault.cosigners}  # without version bytes
    for xkey, _origin in psbt.globals.items_of_type(F.PSBT_GLOBAL_XPUB):
        key = ExtendedKey.from_bytes(bytes(xkey)) if len(xkey) == 78 else None
        if key is None:
            raise SignerRefusal("a global xpub in the PSBT is malformed")
        if key.is_mainnet != vault.network.is_mainnet:
            raise SignerRefusal(f"the PSBT's global xpubs are for another network than this {vault.network.name} vault")
        if bytes(xkey)[4:] not in ours:
            raise SignerRefusal(
                "the PSBT names a cosigner xpub that is not in the registered vault: it was made for a "
                "different vault (or a cosigner key was substituted)"
            )


def _check_input(psbt: Psbt, i: int, vault: Vault, policy: SignerPolicy) -> _Input:
    segwit_v0 = vault.script in ("wsh", "sh-wsh")
    d, spent = resolve_input(psbt, i, vault, SignerRefusal,
                             require_full_tx=vault.script == "sh" or (segwit_v0 and not policy.allow_witness_utxo_only))
    raw = psbt.inputs[i].get(F.PSBT_IN_SIGHASH_TYPE)
    default = SIGHASH_DEFAULT if vault.script == "tr" else SIGHASH_ALL
    sighash = default if raw is None else int.from_bytes(raw, "little")
    allowed = {SIGHASH_ALL, default} | set(policy.allowed_sighashes)
    if sighash not in allowed:
        name = SIGHASH_NAMES.get(sighash, hex(sighash))
        raise SignerRefusal(
            f"input {i} asks for sighash {name}, which would let others change the transaction after "
            "you sign; only ALL is accepted unless explicitly allowed"
        )
    return _Input(d, spent, sighash)


def _check_output(psbt: Psbt, o: int, vault: Vault, policy: SignerPolicy, max_input_index: int) -> OutputLine:
    line, problem = classify_output(psbt, o, vault, max_index=max_input_index + policy.change_gap)
    if problem:
        raise SignerRefusal(problem)
    return line
