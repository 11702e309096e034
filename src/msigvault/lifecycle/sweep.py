"""The sweep: planned online (no secrets), signed offline (after every check), broadcast online.

:func:`make_plan` batches the found coins into transactions that each stay under the standard
weight, one output each to the target vault's next receive addresses. Coins worth less than the
fee of spending them at the plan's fee rate ("uneconomical dust") are left out and listed, unless
``include_dust`` asks for them too; a batch whose output would itself be dust is refused.

:func:`sign_plan` trusts nothing in the plan: each input's previous transaction must hash to its
outpoint and pay a script the *source* rebuilds at the claimed place; every output must rebuild
byte for byte as a receive address of the registered vault within its index limit; the fee must
be within :class:`FeeLimits`. Signatures: legacy (P2PKH, P2SH multisig), BIP143 (P2WPKH,
P2SH-P2WPKH) and BIP341 key path (P2TR), SIGHASH_ALL / DEFAULT only.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence

from embit.hashes import hash160, tagged_hash
from embit.util import secp256k1 as _secp

from ..address import address_from_script
from ..script import compact_size, push_data
from ..standardness import MAX_STANDARD_TX_WEIGHT, dust_threshold
from .discover import VERSION, Spend, Watch, load_json, resolve
from .errors import IntakeFileError, PlanError, SweepRefused
from .scan import Found, FoundCoin
from .sources import ScriptKind, Source

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..vaultfile import VaultFile

PLAN_FORMAT = "msigvault-intake-plan"
SIGNED_FORMAT = "msigvault-intake-signed"
MAX_PLAN_BYTES = 256 * 1024 * 1024
SEQUENCE = 0xFFFFFFFD  # final locktime, opts in to replacement (a stuck sweep can be bumped)
TX_VERSION = 2
MAX_FEE_RATE = 10_000.0


@dataclass(frozen=True)
class FeeLimits:
    """The offline signer's fee ceiling, per transaction: all three must hold."""

    max_fee_rate: float = 500.0  # sat/vB
    max_fee_sats: int = 2_500_000
    max_fee_fraction: float = 0.05  # of the amount the transaction sweeps


# -- weights -----------------------------------------------------------------------------------


def _script_sig_len(coin_kind: str, redeem: Optional[bytes]) -> int:
    if coin_kind == ScriptKind.P2PKH.value:
        return 1 + 72 + 1 + 65  # worst case: an uncompressed key
    if coin_kind == ScriptKind.P2SH_P2WPKH.value:
        return 23
    if coin_kind == ScriptKind.P2SH_MULTI.value:
        assert redeem is not None
        m = redeem[0] - 0x50
        return 1 + m * 73 + len(push_data(redeem))
    return 0


def _witness_weight(coin_kind: str) -> int:
    if coin_kind in (ScriptKind.P2WPKH.value, ScriptKind.P2SH_P2WPKH.value):
        return 1 + 1 + 72 + 1 + 33
    if coin_kind == ScriptKind.P2TR.value:
        return 1 + 1 + 64
    return 0


def _is_segwit(coin_kind: str) -> bool:
    return _witness_weight(coin_kind) > 0


def input_weight(coin_kind: str, redeem: Optional[bytes] = None) -> int:
    """Upper bound of the weight one input of ``coin_kind`` adds (empty-witness byte included)."""
    ss = _script_sig_len(coin_kind, redeem)
    return 4 * (32 + 4 + len(compact_size(ss)) + ss + 4) + max(1, _witness_weight(coin_kind))


def tx_weight(kinds: "Sequence[tuple[str, Optional[bytes]]]", output_scripts: "Sequence[bytes]") -> int:
    """Upper bound of a sweep transaction's weight."""
    base = 4 + 4 + len(compact_size(len(kinds))) + len(compact_size(len(output_scripts)))
    base += sum(8 + len(compact_size(len(s))) + len(s) for s in output_scripts)
    segwit = any(_is_segwit(k) for k, _ in kinds)
    w = 4 * base + sum(input_weight(k, r) for k, r in kinds)
    return w + 2 if segwit else w - len(kinds)  # marker+flag; no empty-witness bytes without segwit


def fee_for(weight: int, rate: float) -> int:
    return math.ceil(rate * math.ceil(weight / 4))


# -- the plan ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedTx:
    unsigned_tx: bytes
    inputs: "tuple[FoundCoin, ...]"
    outputs: "tuple[tuple[int, bytes, int], ...]"  # (vault index, script, amount)
    fee: int
    weight: int


@dataclass(frozen=True)
class Plan:
    network: str
    watch_sha256: str
    found_sha256: str
    created: str
    vault_name: str
    policy_id: str
    fee_rate: float
    transactions: "tuple[PlannedTx, ...]"
    left_out: "tuple[dict[str, Any], ...]"
    redeem_scripts: "dict[str, str]"
    sha256: str = ""

    def to_bytes(self) -> bytes:
        from ..network import Network

        net = Network.from_name(self.network)
        doc = {"format": PLAN_FORMAT, "version": VERSION, "network": self.network,
               "watch_sha256": self.watch_sha256, "found_sha256": self.found_sha256, "created": self.created,
               "vault": {"name": self.vault_name, "policy_id": self.policy_id}, "fee_rate": self.fee_rate,
               "redeem_scripts": self.redeem_scripts,
               "transactions": [{"unsigned_tx": t.unsigned_tx.hex(), "fee": t.fee, "weight_estimate": t.weight,
                                 "inputs": [c.to_dict() for c in t.inputs],
                                 "outputs": [{"vault_index": i, "script_pubkey": s.hex(), "amount": a,
                                              "address": address_from_script(s, net)} for i, s, a in t.outputs]}
                                for t in self.transactions],
               "left_out": list(self.left_out)}
        return json.dumps(doc, indent=2).encode() + b"\n"


def make_plan(watch: Watch, found: Found, vault_file: "VaultFile", *, fee_rate: float, created: str,
              start_index: Optional[int] = None, min_conf: int = 1, include_dust: bool = False,
              max_weight: int = MAX_STANDARD_TX_WEIGHT) -> Plan:
    """The unsigned sweep of ``found`` into ``vault_file``'s receive addresses from ``start_index``."""
    vault = vault_file.vault
    if found.watch_sha256 != watch.sha256:
        raise IntakeFileError("the found file was not scanned from this watch file: give the watch file it names")
    if vault.network.name != watch.network.name or found.network != watch.network.name:
        raise PlanError(f"the vault is for {vault.network.name} but the source for {watch.network.name}")
    if not isinstance(fee_rate, (int, float)) or isinstance(fee_rate, bool) or not 1.0 <= fee_rate <= MAX_FEE_RATE:
        raise PlanError(f"the fee rate is from 1 to {MAX_FEE_RATE:,.0f} sat/vB")
    if not 4000 <= max_weight <= MAX_STANDARD_TX_WEIGHT:
        raise PlanError(f"the weight limit is from 4,000 to {MAX_STANDARD_TX_WEIGHT:,} weight units")
    redeem = {g.id: g.redeem_script for g in watch.groups if g.redeem_script is not None}
    chosen, left = _choose(found, watch, redeem, fee_rate, min_conf, include_dust)
    if not chosen:
        raise PlanError("nothing to sweep: no coin is confirmed enough and worth more than the fee to spend it "
                        f"({len(left)} left out; see the found file)")
    index = vault_file.next_receive_index if start_index is None else start_index
    vault_spk_len = len(vault.script_pubkey(0))
    batches = _batches(chosen, redeem, vault_spk_len, max_weight)
    limits = [r.index_limit for r in vault_file.registrations]
    if limits and index + len(batches) > min(limits):
        raise PlanError(f"the sweeps would pay vault receive indexes {index} to {index + len(batches) - 1}, but a "
                        f"keyholder registered the vault for indexes below {min(limits)}: the offline signer "
                        "refuses that; give a lower --start-index")
    txs = []
    for batch in batches:
        spk = vault.script_pubkey(index)
        weight = tx_weight([(c.kind, redeem.get(c.group)) for c in batch], [spk])
        total = sum(c.amount for c in batch)
        fee = fee_for(weight, fee_rate)
        amount = total - fee
        if amount < dust_threshold(spk):
            raise PlanError(f"a batch of {len(batch)} coin(s) holds {total} sats, which after a fee of {fee} sats "
                            "would be dust: lower the fee rate or sweep these coins later with others")
        from ..psbt import fields as F

        unsigned = F.serialize_tx(TX_VERSION, [(bytes.fromhex(c.txid)[::-1], c.vout, SEQUENCE) for c in batch],
                                  [(amount, spk)], 0)
        txs.append(PlannedTx(unsigned, tuple(batch), ((index, spk, amount),), fee, weight))
        index += 1
    return Plan(watch.network.name, watch.sha256, found.sha256, created, vault_file.name, vault.policy_id,
                float(fee_rate), tuple(txs), tuple(left), {k: v.hex() for k, v in redeem.items()})


def _choose(found: Found, watch: Watch, redeem: "dict[str, bytes]", rate: float, min_conf: int,
            include_dust: bool) -> "tuple[list[FoundCoin], list[dict[str, Any]]]":
    chosen, left = [], []
    group_ids = {g.id for g in watch.groups}
    for c in found.coins:
        if c.group not in group_ids:
            raise IntakeFileError(f"coin {c.outpoint} names a group the watch file does not have")
        confirmations = 0 if c.height is None else found.tip_height - c.height + 1
        cost = fee_for(input_weight(c.kind, redeem.get(c.group)), rate)
        reason = None
        if confirmations < min_conf:
            reason = f"{confirmations} confirmation(s), fewer than {min_conf}"
        elif c.amount <= cost and not include_dust:
            reason = f"uneconomical: spending it costs {cost} sats at {rate:g} sat/vB"
        if reason is None:
            chosen.append(c)
        else:
            left.append({"txid": c.txid, "vout": c.vout, "amount": c.amount, "address": c.address, "reason": reason})
    return chosen, left


def _batches(coins: "list[FoundCoin]", redeem: "dict[str, bytes]", spk_len: int,
             max_weight: int) -> "list[list[FoundCoin]]":
    out: "list[list[FoundCoin]]" = [[]]
    dummy = b"\x00" * spk_len
    for c in coins:
        trial = out[-1] + [c]
        if out[-1] and tx_weight([(x.kind, redeem.get(x.group)) for x in trial], [dummy]) > max_weight:
            out.append([c])
        else:
            out[-1] = trial
        if tx_weight([(c.kind, redeem.get(c.group))], [dummy]) > max_weight:
            raise PlanError(f"coin {c.outpoint} alone is heavier than the weight limit")
    return out


def parse_plan(data: bytes) -> Plan:
    """A plan file (structure only: :func:`sign_plan` checks everything that matters itself)."""
    from .scan import parse_found

    obj = load_json(data, PLAN_FORMAT, "plan file", MAX_PLAN_BYTES)
    try:
        txs = []
        for t in obj["transactions"]:
            coins = json.loads(json.dumps({"format": "msigvault-intake-found", "version": VERSION,
                                           "network": obj["network"], "watch_sha256": "", "scanned_at": "",
                                           "tip_height": 0, "gap_limit": 1, "coins": t["inputs"]}))
            found = parse_found(json.dumps(coins).encode())
            outs = tuple((int(o["vault_index"]), bytes.fromhex(o["script_pubkey"]), int(o["amount"]))
                         for o in t["outputs"])
            txs.append(PlannedTx(bytes.fromhex(t["unsigned_tx"]), found.coins, outs, int(t["fee"]),
                                 int(t["weight_estimate"])))
        vault = obj["vault"]
        return Plan(str(obj["network"]), str(obj["watch_sha256"]), str(obj["found_sha256"]), str(obj["created"]),
                    str(vault["name"]), str(vault["policy_id"]), float(obj["fee_rate"]), tuple(txs),
                    tuple(obj.get("left_out", [])), dict(obj.get("redeem_scripts", {})),
                    hashlib.sha256(data).hexdigest())
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError):
        raise IntakeFileError("the plan file is malformed: make it again with 'msigvault intake plan'") from None


# -- signing (offline) -------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedTx:
    txid: str
    raw: bytes
    fee: int
    vsize: int
    amount_in: int
    outputs: "tuple[tuple[int, str, int], ...]"  # (vault index, address, amount)


@dataclass(frozen=True)
class Signed:
    network: str
    plan_sha256: str
    policy_id: str
    signed_at: str
    transactions: "tuple[SignedTx, ...]"
    verified_by_kernel: bool
    sha256: str = ""

    def to_bytes(self) -> bytes:
        doc = {"format": SIGNED_FORMAT, "version": VERSION, "network": self.network, "plan_sha256": self.plan_sha256,
               "policy_id": self.policy_id, "signed_at": self.signed_at, "verified_by_kernel": self.verified_by_kernel,
               "transactions": [{"txid": t.txid, "raw": t.raw.hex(), "fee": t.fee, "vsize": t.vsize,
                                 "amount_in": t.amount_in,
                                 "outputs": [{"vault_index": i, "address": a, "amount": v} for i, a, v in t.outputs]}
                                for t in self.transactions]}
        return json.dumps(doc, indent=2).encode() + b"\n"


def sign_plan(plan: Plan, source: Source, vault_file: "VaultFile", *, signed_at: str, policy_id: str,
              limits: FeeLimits = FeeLimits()) -> Signed:
    """Check ``plan`` against ``source`` and the registered vault, then sign every transaction.

    ``policy_id`` is the receiving vault's policy id as given to the operator out of band: it is
    the only anchor here (a vault file's registrations are checked against the keys in that same
    file, so whoever writes the file can make a vault of their own keys that "carries
    registrations"; the seized keys have no registration of their own)."""
    vault = vault_file.vault
    if not isinstance(policy_id, str) or not policy_id.strip():
        raise SweepRefused("give the receiving vault's policy id as it was given to you out of band (on paper): "
                           "it is what tells your vault file from a substituted one", field="policy_id")
    if not vault_file.registrations:
        raise SweepRefused("the vault file carries no keyholder's registration: sweep only into a vault its "
                           "keyholders verified and registered (msigvault vault verify)")
    if plan.policy_id != vault.policy_id:
        raise SweepRefused(f"the plan sweeps into policy id {plan.policy_id[:16]}..., not this vault's "
                           f"({vault.policy_id[:16]}...)")
    if policy_id.strip().lower() != vault.policy_id:
        raise SweepRefused("the vault file's policy id is not the one you were given out of band: stop")
    if plan.network != source.network.name or vault.network.name != source.network.name:
        raise SweepRefused(f"the plan is for {plan.network}, the source for {source.network.name}, the vault for "
                           f"{vault.network.name}: they must agree")
    if not plan.transactions:
        raise SweepRefused("the plan holds no transaction")
    outpoints = [c.outpoint for t in plan.transactions for c in t.inputs]
    if len(set(outpoints)) != len(outpoints):
        raise SweepRefused("the plan spends a coin twice: make the plan again")
    index_limit = min(r.index_limit for r in vault_file.registrations)
    signed = []
    kernel = True
    for n, t in enumerate(plan.transactions):
        tx, ok = _sign_tx(n, t, plan, source, vault_file, index_limit, limits)
        signed.append(tx)
        kernel = kernel and ok
    return Signed(plan.network, plan.sha256, vault.policy_id, signed_at, tuple(signed), kernel)


def _sign_tx(n: int, t: PlannedTx, plan: Plan, source: Source, vault_file: "VaultFile", index_limit: int,
             limits: FeeLimits) -> "tuple[SignedTx, bool]":
    from ..psbt import fields as F
    from ..psbt.sighash import SighashCache, TxIn, TxOut, UnsignedTx

    where = f"transaction {n}"
    raw = F.parse_tx(t.unsigned_tx, "unsigned sweep transaction", allow_witness=False)
    if any(ss for _, _, ss, _ in raw.vin):
        raise SweepRefused(f"{where} already carries scriptSigs: sign only an unsigned plan")
    _check_final(where, raw)
    if len(raw.vin) != len(t.inputs) or len(raw.vin) == 0:
        raise SweepRefused(f"{where}: the plan's input list does not match the transaction")
    spent, spends = [], []
    try:
        for i, ((txid, vout, _, _), coin) in enumerate(zip(raw.vin, t.inputs)):
            spent.append(_check_input(where, i, bytes(txid), vout, coin))
            spend = resolve(source, coin.group, coin.branch, coin.index)
            spends.append(spend)
            if spend.script_pubkey != spent[-1].script_pubkey:
                raise SweepRefused(f"{where} input {i} ({coin.outpoint}) pays a script the source does not derive at "
                                   f"{coin.group} {coin.branch}/{coin.index}: it is not a seized coin; nothing "
                                   "was signed", input_index=i)
        outputs = _check_outputs(where, raw.vout, t.outputs, vault_file, index_limit)
        amount_in = sum(o.amount for o in spent)
        fee = amount_in - sum(a for _, _, a in outputs)
        utx = UnsignedTx(raw.version, raw.locktime, tuple(TxIn(bytes(a), b, s) for a, b, _, s in raw.vin),
                         tuple(TxOut(a, bytes(s)) for a, s in raw.vout))
        cache = SighashCache(utx, spent)
        script_sigs, witnesses = zip(*(_sign_input(cache, i, sp, o.amount) for i, (sp, o) in
                                       enumerate(zip(spends, spent))))
    finally:
        for sp in spends:
            sp.wipe()
    final = _serialize(utx, script_sigs, witnesses)
    weight = _weight(utx, script_sigs, witnesses)
    vsize = math.ceil(weight / 4)
    _check_fee(where, fee, vsize, amount_in, limits)
    from ..psbt.extractor import verify_scripts

    try:
        kernel = verify_scripts(final, spent)
    except Exception as e:  # ExtractError: our own signature would not verify (a bug, or a bad source)
        raise SweepRefused(f"{where}: Bitcoin Core's script check rejects the signed sweep ({e})") from None
    final_txid = F.parse_tx(final, "signed sweep transaction").txid()[::-1].hex()
    return SignedTx(final_txid, final, fee, vsize, amount_in, tuple(outputs)), kernel


#: sequences a sweep input may carry: no relative timelock (BIP68), replaceable or final
_SEQUENCES = (SEQUENCE, 0xFFFFFFFE, 0xFFFFFFFF)


def _check_final(where: str, raw: "Any") -> None:
    """A sweep is minable at once: version 2, locktime 0, no relative timelock. A plan with a far
    nLockTime or nSequence lock would sign a sweep nobody can mine for years while whoever still
    holds copies of the seized keys moves the coins."""
    if raw.version != TX_VERSION:
        raise SweepRefused(f"{where} is a version {raw.version} transaction, not version {TX_VERSION} as "
                           "'msigvault intake plan' makes: plan again", field="version")
    if raw.locktime != 0:
        raise SweepRefused(f"{where} has nLockTime {raw.locktime}: it could not be mined until then; a sweep "
                           "has locktime 0 (a tampered plan?): plan again", field="locktime")
    for i, (_, _, _, seq) in enumerate(raw.vin):
        if seq not in _SEQUENCES:
            raise SweepRefused(f"{where} input {i} has nSequence {seq:#010x}, a relative timelock or an unusual "
                               f"value; a sweep uses {SEQUENCE:#010x} (a tampered plan?): plan again",
                               input_index=i, field="sequence")


def _check_input(where: str, i: int, txid: bytes, vout: int, coin: FoundCoin) -> "Any":
    from ..psbt import fields as F
    from ..psbt.sighash import TxOut

    prev = F.parse_tx(coin.prev_tx, "previous transaction")
    if prev.txid() != txid or coin.txid != txid[::-1].hex():
        raise SweepRefused(f"{where} input {i}: the previous transaction given does not hash to the outpoint "
                           "(a tampered plan)", input_index=i)
    if vout >= len(prev.vout):
        raise SweepRefused(f"{where} input {i}: the previous transaction has no output {vout}", input_index=i)
    amount, spk = prev.vout[vout]
    return TxOut(amount, bytes(spk))


def _check_outputs(where: str, vout: "Sequence[tuple[int, bytes]]", claimed: "Sequence[tuple[int, bytes, int]]",
                   vault_file: "VaultFile", index_limit: int) -> "list[tuple[int, str, int]]":
    """Every output rebuilds as the vault receive address at the index the plan claims (within the limit)."""
    vault = vault_file.vault
    if len(claimed) != len(vout):
        raise SweepRefused(f"{where}: the plan's output list does not match the transaction")
    out = []
    for o, ((amount, spk), (index, _, _)) in enumerate(zip(vout, claimed)):
        spk = bytes(spk)
        if not 0 <= index < index_limit or vault.script_pubkey(index) != spk:
            try:
                shown = address_from_script(spk, vault.network)
            except Exception:
                shown = spk.hex()[:40]
            raise SweepRefused(f"{where} output {o} pays {shown}, which is not the registered vault "
                               f"{vault_file.name!r}'s receive address {index} (below the index limit "
                               f"{index_limit} its keyholders registered): nothing was signed", output_index=o)
        out.append((index, address_from_script(spk, vault.network), amount))
    if not out:
        raise SweepRefused(f"{where} has no output: everything would go to fees")
    return out


def _check_fee(where: str, fee: int, vsize: int, amount_in: int, limits: FeeLimits) -> None:
    from ..errors import FeeLimitExceeded

    if fee <= 0:
        raise SweepRefused(f"{where} pays out more than its inputs hold")
    rate = fee / vsize
    if rate > limits.max_fee_rate:
        raise FeeLimitExceeded(f"{where}: fee rate {rate:.1f} sat/vB is above the limit of {limits.max_fee_rate:g}",
                               limit=limits.max_fee_rate)
    if fee > limits.max_fee_sats:
        raise FeeLimitExceeded(f"{where}: fee {fee} sats is above the limit of {limits.max_fee_sats} sats",
                               limit=limits.max_fee_sats)
    if fee > limits.max_fee_fraction * amount_in:
        raise FeeLimitExceeded(f"{where}: fee {fee} sats is more than {limits.max_fee_fraction:.0%} of the "
                               f"{amount_in} sats swept", limit=limits.max_fee_fraction)


def _ecdsa(secret: bytes, msg: bytes) -> bytes:
    sig = _secp.ecdsa_sign(msg, secret)
    counter = 1
    der = _secp.ecdsa_signature_serialize_der(sig)
    while len(der) > 70 and counter < 256:  # low R, as Bitcoin Core grinds
        sig = _secp.ecdsa_sign(msg, secret, None, counter.to_bytes(32, "little"))
        der = _secp.ecdsa_signature_serialize_der(sig)
        counter += 1
    return der + b"\x01"  # SIGHASH_ALL


def _sign_input(cache: "Any", i: int, sp: Spend, amount: int) -> "tuple[bytes, list[bytes]]":
    kind = sp.kind
    if kind == ScriptKind.P2SH_MULTI:
        assert sp.redeem_script is not None
        msg = cache.legacy(i, sp.redeem_script)
        sigs = [_ecdsa(sp.keys[pk].reveal(), msg) for pk in sp.pubkeys if pk in sp.keys][:sp.m]
        return b"\x00" + b"".join(push_data(s) for s in sigs) + push_data(sp.redeem_script), []
    (pub, secret), = sp.keys.items()
    if kind == ScriptKind.P2PKH:
        return push_data(_ecdsa(secret.reveal(), cache.legacy(i, sp.script_pubkey))) + push_data(pub), []
    if kind == ScriptKind.P2TR:
        return b"", [_schnorr_keypath(secret.reveal(), pub, cache.taproot(i))]
    code = b"\x76\xa9\x14" + hash160(pub) + b"\x88\xac"
    sig = _ecdsa(secret.reveal(), cache.segwit_v0(i, code, amount))
    script_sig = push_data(b"\x00\x14" + hash160(pub)) if kind == ScriptKind.P2SH_P2WPKH else b""
    return script_sig, [sig, pub]


def _schnorr_keypath(secret: bytes, pub: bytes, msg: bytes) -> bytes:
    import os

    from ..keys.bip32 import SECP256K1_N

    d = (SECP256K1_N - int.from_bytes(secret, "big")).to_bytes(32, "big") if pub[0] == 3 else secret
    tweaked = _secp.ec_privkey_add(d, tagged_hash("TapTweak", pub[1:33]))
    return bytes(_secp.schnorrsig_sign(msg, _secp.keypair_create(tweaked), None, os.urandom(32)))


def _serialize(tx: "Any", script_sigs: "Sequence[bytes]", witnesses: "Sequence[list[bytes]]") -> bytes:
    segwit = any(witnesses)
    parts = [tx.version.to_bytes(4, "little", signed=True)]
    if segwit:
        parts.append(b"\x00\x01")
    parts.append(compact_size(len(tx.inputs)))
    for txin, ss in zip(tx.inputs, script_sigs):
        parts += [txin.outpoint, compact_size(len(ss)), ss, txin.sequence.to_bytes(4, "little")]
    parts.append(compact_size(len(tx.outputs)))
    parts.extend(o.serialize() for o in tx.outputs)
    if segwit:
        for stack in witnesses:
            parts.append(compact_size(len(stack)) + b"".join(compact_size(len(x)) + x for x in stack))
    parts.append(tx.locktime.to_bytes(4, "little"))
    return b"".join(parts)


def _weight(tx: "Any", script_sigs: "Sequence[bytes]", witnesses: "Sequence[list[bytes]]") -> int:
    full = len(_serialize(tx, script_sigs, witnesses))
    stripped = len(_serialize(tx, script_sigs, [[] for _ in witnesses]))
    return stripped * 3 + full


def parse_signed(data: bytes) -> Signed:
    """A signed-sweep file; each transaction's txid is recomputed from its bytes."""
    from ..psbt import fields as F

    obj = load_json(data, SIGNED_FORMAT, "signed sweep file", MAX_PLAN_BYTES)
    try:
        txs = []
        for t in obj["transactions"]:
            raw = bytes.fromhex(t["raw"])
            if F.parse_tx(raw, "signed sweep transaction").txid()[::-1].hex() != t["txid"]:
                raise IntakeFileError("a signed sweep transaction does not hash to its txid: the file was altered")
            outs = tuple((int(o["vault_index"]), str(o["address"]), int(o["amount"])) for o in t["outputs"])
            txs.append(SignedTx(str(t["txid"]), raw, int(t["fee"]), int(t["vsize"]), int(t["amount_in"]), outs))
        return Signed(str(obj["network"]), str(obj["plan_sha256"]), str(obj["policy_id"]), str(obj["signed_at"]),
                      tuple(txs), bool(obj.get("verified_by_kernel")), hashlib.sha256(data).hexdigest())
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError):
        raise IntakeFileError("the signed sweep file is malformed") from None


# -- online: broadcast and confirmation --------------------------------------------------------


def broadcast(signed: Signed, backend: "Backend") -> "list[str]":
    """Test each sweep for mempool acceptance, then broadcast it; the txids."""
    from ..backends.base import BroadcastRejected, TxNotFound

    txids = []
    for t in signed.transactions:
        try:
            backend.get_tx(t.txid)  # broadcast before (this command was run again): nothing to do
            txids.append(t.txid)
            continue
        except TxNotFound:
            pass
        check = backend.test_accept(t.raw)
        if not check.allowed and "already" not in check.reason and "known" not in check.reason:
            raise BroadcastRejected(check.reason, where=backend.where, txid=t.txid)
        txids.append(backend.broadcast(t.raw))
    return txids


def confirmation_heights(signed: Signed, backend: "Backend") -> "dict[str, Optional[int]]":
    """Each sweep's confirmation height as the backend sees it (None: not confirmed yet)."""
    from ..network import Network
    from ..address import script_from_address

    net = Network.from_name(signed.network)
    out: "dict[str, Optional[int]]" = {}
    for t in signed.transactions:
        spk = script_from_address(t.outputs[0][1], net)
        height = None
        if backend.has_history:
            for item in backend.history([spk]).get(spk, ()):
                if item.txid == t.txid:
                    height = item.height
        else:
            for u in backend.utxos([spk]):
                if u.txid == t.txid:
                    height = u.height
        out[t.txid] = height
    return out
