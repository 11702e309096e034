"""Proof of reserves (BIP127) for vaults: the message, the proof PSBT, the proof file, the verifier.

The coordinator builds a proof PSBT from the vault's coins (a backend's scan or a UTXO
snapshot, as of a block) with :func:`create_proof`: the commitment input of a message binding
auditor, date, block and nonce, every coin, one OP_RETURN output of the total
(:mod:`msigvault.psbt.por` has the shape). Keyholders sign it with the normal offline signer,
which recognises it; :func:`combine` / :func:`finalize` run the vault roles' checks, and
:func:`encode` writes the proof file. :func:`verify` (the auditor) checks every signature and
script (descriptor-driven, and with libbitcoinkernel when installed) against the true coins of a
UTXO set at a block height, and that each is unspent there; it reports the proven amount.
"""

from __future__ import annotations

import datetime
import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Protocol, Sequence

from ..errors import ExtractError, InvalidPSBT, MsigvaultError
from ..policy.vault import Vault
from ..psbt import fields as F
from ..psbt import por as P
from ..psbt.display import escaped_lines
from ..psbt.extractor import verify_scripts
from ..psbt.psbt import Psbt
from ..psbt.satisfaction import witness_bytes
from ..psbt.sighash import TxOut
from ..psbt.updater import add_global_xpubs, update_input
from ..types import Utxo
from .errors import ProofError

if TYPE_CHECKING:
    from ..backends.base import Backend

KIND_PROOF = "msigvault-reserves-proof"
KIND_SNAPSHOT = "msigvault-utxo-snapshot"
MAX_FILE_BYTES = 50_000_000
FIND_GAP = 1_000  # how far a verifier looks for a coin's script among the vault's addresses
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class ReservesError(ProofError):
    """A proof of reserves cannot be built or checked as asked (bad input, file or UTXO set)."""

    code = "reserves.error"


class ReservesInvalid(ReservesError):
    """A proof of reserves does not prove what it claims (signature, commitment, amounts, coins)."""

    code = "reserves.invalid"


class CoinNotUnspent(ReservesInvalid):
    """A coin of the proof is spent (or unknown) at the height it is verified at."""

    code = "reserves.coin-spent"


# -- the message ------------------------------------------------------------------------------


def make_message(vault: Vault, *, auditor: str, date: "str | datetime.date", height: int, block_hash: str,
                 nonce: Optional[str] = None) -> str:
    """The commitment message: vault policy id, auditor, date, as-of block and a nonce (128 bits
    from the OS CSPRNG unless the auditor gives one), one per line."""
    day = date.isoformat() if isinstance(date, datetime.date) else date
    if not isinstance(day, str) or not _DATE.fullmatch(day):
        raise ReservesError(f"the date is YYYY-MM-DD, not {day!r}", field="date")
    try:
        datetime.date.fromisoformat(day)
    except ValueError:
        raise ReservesError(f"{day} is not a calendar date", field="date") from None
    nonce = secrets.token_hex(16) if nonce is None else nonce
    for name, value in (("auditor", auditor), ("nonce", nonce)):
        if not isinstance(value, str) or not value.strip() or "\n" in value or "\r" in value or len(value) > 200:
            raise ReservesError(f"the {name} is one line of 1 to 200 characters", field=name)
    if isinstance(height, bool) or not isinstance(height, int) or height < 0:
        raise ReservesError(f"the as-of height is a block height, not {height!r}", field="height")
    if not isinstance(block_hash, str) or not re.fullmatch(r"[0-9a-f]{64}", block_hash):
        raise ReservesError("the as-of block hash is 64 lowercase hex digits", field="block_hash")
    return (f"msigvault proof of reserves\nvault: {vault.policy_id}\nauditor: {auditor}\ndate: {day}\n"
            f"as of block: {height} {block_hash}\nnonce: {nonce}")


def stated_block(message: str) -> "Optional[tuple[int, str]]":
    """(height, block hash) a :func:`make_message` message names, or None for another message."""
    m = re.search(r"^as of block: (\d{1,9}) ([0-9a-f]{64})$", message, re.M)
    return (int(m.group(1)), m.group(2)) if m else None


# -- creating ---------------------------------------------------------------------------------


def create_proof(vault: Vault, utxos: Sequence[Utxo], message: str) -> Psbt:
    """The unsigned proof PSBT: the commitment input of ``message``, then every coin in ``utxos``
    (vault coins, each with its previous transaction for segwit v0 and legacy), one OP_RETURN
    output of their total; the vault's derivations so the normal offline signer can sign it."""
    if not isinstance(vault, Vault):
        raise ReservesError(f"vault must be a msigvault Vault, not {type(vault).__name__}", field="vault")
    P.check_no_recovery(vault, ReservesError)
    P.check_message(message, ReservesError)
    coins = list(utxos)
    if not coins or any(not isinstance(u, Utxo) for u in coins):
        raise ReservesError("give the vault's coins to prove (a non-empty list of Utxo records)")
    if len(coins) > P.MAX_COINS:
        raise ReservesError(f"a proof here proves at most {P.MAX_COINS} coins; split the reserves into "
                            "several proofs", limit=P.MAX_COINS)
    if len({u.outpoint for u in coins}) != len(coins):
        raise ReservesError("a coin is listed twice: each coin is proven once")
    vin = [(P.commitment_txid(message), 0, 0xFFFFFFFF)]
    vin += [(bytes.fromhex(u.txid)[::-1], u.vout, 0xFFFFFFFF) for u in coins]
    total = sum(u.amount for u in coins)
    psbt = Psbt.from_unsigned_tx(F.serialize_tx(2, vin, [(total, P.OUTPUT_SCRIPT)], 0))
    add_global_xpubs(psbt, vault)
    psbt.inputs[0].set(F.PSBT_IN_POR_COMMITMENT, b"", message.encode("utf-8"))
    psbt.inputs[0].set(F.PSBT_IN_WITNESS_UTXO, b"", P.COMMITMENT_WITNESS_UTXO)
    for i, u in enumerate(coins, 1):
        try:
            update_input(psbt, i, vault, u)
        except MsigvaultError as e:
            raise ReservesError(f"coin {u.outpoint}: {e}") from None
    psbt.canonicalize()
    return psbt


def combine(copies: Iterable[Psbt], vault: Vault) -> Psbt:
    """Combine signed copies of a proof, every signature verified first (:func:`msigvault.psbt.por.combine`)."""
    return P.combine(copies, vault)


def finalize(psbt: Psbt, vault: Vault) -> Psbt:
    """Finalize a combined proof with exactly m signatures per coin (:func:`msigvault.psbt.por.finalize`)."""
    return P.finalize(psbt, vault)


# -- the proof file ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProofFile:
    """A finalized proof of reserves as the auditor receives it (BIP127's FinalProof, as JSON)."""

    network: str
    policy_id: str
    message: str
    height: Optional[int]
    block_hash: Optional[str]
    total: int
    coins: "tuple[str, ...]"  # outpoints
    tx: bytes  # the signed proof transaction
    psbt: str  # the finalized proof PSBT (base64)

    def to_dict(self) -> "dict[str, Any]":
        return {"kind": KIND_PROOF, "version": 1, "network": self.network, "policy_id": self.policy_id,
                "message": self.message, "height": self.height, "block_hash": self.block_hash,
                "total": self.total, "coins": list(self.coins), "tx": self.tx.hex(), "psbt": self.psbt}

    @classmethod
    def from_dict(cls, d: object) -> "ProofFile":
        if not isinstance(d, dict) or d.get("kind") != KIND_PROOF or d.get("version") != 1:
            raise ReservesError(f"not a proof-of-reserves file ({KIND_PROOF}, version 1)")
        try:
            tx = bytes.fromhex(str(d["tx"]))
            height = d.get("height")
            if height is not None and (isinstance(height, bool) or not isinstance(height, int)):
                raise ValueError("height is a whole number")
            coins = d["coins"]
            if not isinstance(coins, list) or not all(isinstance(c, str) for c in coins):
                raise ValueError("coins is a list of outpoints")
            total = d["total"]
            if isinstance(total, bool) or not isinstance(total, int):
                raise ValueError("total is a whole number of sats")
            return cls(str(d["network"]), str(d["policy_id"]), str(d["message"]), height,
                       None if d.get("block_hash") is None else str(d["block_hash"]), total, tuple(coins), tx,
                       str(d.get("psbt", "")))
        except (KeyError, TypeError, ValueError) as e:
            raise ReservesError(f"the proof-of-reserves file is malformed ({e})") from None


def encode(final: Psbt, vault: Vault, *, height: Optional[int] = None, block_hash: Optional[str] = None) -> ProofFile:
    """The proof file of a finalized proof PSBT: its transaction, checked as the vault's
    satisfaction against the PSBT's own UTXO fields (the auditor checks it against the chain)."""
    try:
        message = P.check_shape(final)
    except MsigvaultError as e:
        raise ReservesError(f"not a proof of reserves: {e}") from None
    from ..psbt.common import spent_output

    spent = [spent_output(final, i, ReservesError, require_full_tx=False) for i in range(1, final.input_count)]
    P.check_total(final, sum(s.amount for s in spent))
    P.verify_finals(final, vault, spent, ReservesInvalid)
    tx = _transaction(final)
    if height is None and (stated := stated_block(message)) is not None:
        height, block_hash = stated
    coins = tuple(f"{bytes(final.prevout(i)[0])[::-1].hex()}:{final.prevout(i)[1]}" for i in range(1, final.input_count))
    return ProofFile(vault.network.name, vault.policy_id, message, height, block_hash, final.amount(0), coins, tx,
                     final.to_base64())


def _transaction(final: Psbt) -> bytes:
    """The network serialization of a finalized proof (the extractor's, with no relay limits)."""
    from ..psbt.extractor import extract

    try:
        return extract(final, max_fee_sats=None, max_weight=None, min_fee_rate=None, verify=False).raw
    except ExtractError as e:
        raise ReservesError(f"the proof is not finalized: {e}") from None


def read_json(path: "str | Path", what: str) -> object:
    """A JSON file of at most :data:`MAX_FILE_BYTES`."""
    from ..fileio import read_bounded

    p = Path(path)
    data = read_bounded(p, MAX_FILE_BYTES, ReservesError, what)
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:  # also a huge integer, absurdly deep nesting
        raise ReservesError(f"the {what} {p} is not JSON ({e})") from None


# -- UTXO sets --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoinState:
    """What a UTXO set says of one coin at a height: its output (None: unknown) and whether it
    is unspent there; ``note`` says why not, or that it was spent after that height."""

    output: Optional[TxOut]
    unspent: bool
    note: str = ""


class CoinSource(Protocol):
    """A UTXO set the verifier asks about coins at a height."""

    where: str

    def tip(self) -> "tuple[int, Optional[str]]":
        """(height, block hash) of the set's best block (the default height)."""

    def coins(self, outpoints: "Sequence[tuple[str, int]]", height: int) -> "dict[tuple[str, int], CoinState]":
        """The state of each outpoint (display txid, vout) at ``height``."""


@dataclass(frozen=True)
class Snapshot:
    """An exported UTXO set of a vault at one block: the coins unspent there."""

    network: str
    height: Optional[int]
    block_hash: Optional[str]
    utxos: "tuple[Utxo, ...]"
    heights: "tuple[Optional[int], ...]" = ()  # the block each coin confirmed in, where known
    where: str = "UTXO snapshot"

    def to_dict(self) -> "dict[str, Any]":
        heights = self.heights or (None,) * len(self.utxos)
        return {"kind": KIND_SNAPSHOT, "network": self.network, "height": self.height, "block_hash": self.block_hash,
                "utxos": [{**u.to_dict(), "height": h} for u, h in zip(self.utxos, heights)]}

    @classmethod
    def from_data(cls, data: object, where: str = "UTXO snapshot") -> "Snapshot":
        """A snapshot file, or a plain JSON list of UTXO records (as ``psbt create --utxos`` reads)."""
        if isinstance(data, list):
            data = {"kind": KIND_SNAPSHOT, "network": None, "height": None, "block_hash": None, "utxos": data}
        if not isinstance(data, dict) or not isinstance(data.get("utxos"), list):
            raise ReservesError(f"{where} is neither a UTXO snapshot ({KIND_SNAPSHOT}) nor a list of UTXO records")
        height = data.get("height")
        if height is not None and (isinstance(height, bool) or not isinstance(height, int) or height < 0):
            raise ReservesError(f"{where}: height is a block height, not {height!r}", field="height")
        try:
            utxos = tuple(Utxo.from_dict(r) for r in data["utxos"])
        except MsigvaultError as e:
            raise ReservesError(f"{where}: {e}") from None
        heights = tuple(r.get("height") if isinstance(r.get("height"), int) else None for r in data["utxos"])
        return cls(str(data.get("network")), height, data.get("block_hash"), utxos, heights, where)

    def tip(self) -> "tuple[int, Optional[str]]":
        if self.height is None:
            raise ReservesError(f"{self.where} names no block height: give the height it is as of")
        return self.height, self.block_hash

    def coins(self, outpoints: "Sequence[tuple[str, int]]", height: int) -> "dict[tuple[str, int], CoinState]":
        if self.height is not None and height != self.height:
            raise ReservesError(f"{self.where} is the UTXO set at height {self.height}, not {height}", field="height")
        have = {(u.txid, u.vout): (u, h) for u, h in zip(self.utxos, self.heights or (None,) * len(self.utxos))}
        out = {}
        for op in outpoints:
            found = have.get(op)
            if found is None:
                out[op] = CoinState(None, False, f"not in {self.where}: spent, or never a coin")
            elif found[1] is not None and found[1] > height:
                out[op] = CoinState(TxOut(found[0].amount, found[0].script_pubkey), False,
                                    f"confirmed only at height {found[1]}")
            else:
                out[op] = CoinState(TxOut(found[0].amount, found[0].script_pubkey), True)
        return out


def snapshot(vault: Vault, backend: "Backend", *, min_conf: int = 1) -> Snapshot:
    """The vault's confirmed coins on ``backend`` (scanned, previous transactions checked) at its tip."""
    from ..backends.scan import scan_vault

    r = scan_vault(vault, backend)
    found = [u for u in r.utxos if u.confirmations >= min_conf]
    return Snapshot(vault.network.name, r.tip.height, r.tip.hash, tuple(u.utxo for u in found),
                    tuple(u.height for u in found), f"snapshot of {backend.where}")


class BackendSource:
    """A chain backend as the UTXO set: each coin's output is read from its own transaction
    (txid checked), unspent-ness from the backend's UTXO list and, for a past height, its history."""

    def __init__(self, backend: "Backend") -> None:
        self.backend = backend
        self.where = backend.where

    def tip(self) -> "tuple[int, Optional[str]]":
        t = self.backend.tip()
        return t.height, t.hash

    def coins(self, outpoints: "Sequence[tuple[str, int]]", height: int) -> "dict[tuple[str, int], CoinState]":
        from ..backends.base import BackendError

        tip, _ = self.tip()
        if height > tip:
            raise ReservesError(f"{self.where} is at height {tip}, below {height}: verify at a height it has",
                                field="height")
        outputs: "dict[tuple[str, int], TxOut]" = {}
        out: "dict[tuple[str, int], CoinState]" = {}
        for txid, vout in outpoints:
            try:
                raw = self.backend.get_tx(txid)
            except BackendError:
                out[(txid, vout)] = CoinState(None, False, f"{self.where} knows no transaction {txid}")
                continue
            vouts = F.parse_tx(raw, "coin's transaction").vout
            if vout >= len(vouts):
                out[(txid, vout)] = CoinState(None, False, f"transaction {txid} has no output {vout}")
                continue
            outputs[(txid, vout)] = TxOut(vouts[vout][0], bytes(vouts[vout][1]))
        scripts = list(dict.fromkeys(o.script_pubkey for o in outputs.values()))
        unspent = {(u.txid, u.vout): u.height for u in self.backend.utxos(scripts)} if scripts else {}
        history = self.backend.history(scripts) if scripts and self.backend.has_history else None
        for op, txout in outputs.items():
            out[op] = self._state(op, txout, height, tip, unspent, history)
        return out

    def _state(self, op: "tuple[str, int]", txout: TxOut, height: int, tip: int,
               unspent: "dict[tuple[str, int], Optional[int]]", history: "Optional[Mapping[bytes, Any]]") -> CoinState:
        if op in unspent:
            confirmed = unspent[op]
            if confirmed is None or confirmed > height:
                return CoinState(txout, False, "unconfirmed" if confirmed is None else f"confirmed only at height {confirmed}")
            return CoinState(txout, True)
        if history is None:
            return CoinState(txout, False, f"spent (not unspent at the tip, {tip}; this backend has no history to "
                                           f"tell whether that was after height {height})")
        items = history.get(txout.script_pubkey, ())
        created = next((h.height for h in items if h.txid == op[0]), None)
        if created is None or created > height:
            return CoinState(txout, False, "not confirmed at that height")
        for h in items:
            if h.txid == op[0]:
                continue
            vin = F.parse_tx(self.backend.get_tx(h.txid), "spending transaction").vin
            if any((bytes(t)[::-1].hex(), v) == op for t, v, *_ in vin):
                if h.height is not None and h.height <= height:
                    return CoinState(txout, False, f"spent by {h.txid} in block {h.height}")
                return CoinState(txout, True, f"spent later by {h.txid}"
                                 + (f" in block {h.height}" if h.height is not None else " (unconfirmed)"))
        return CoinState(txout, False, "spent (no spending transaction found in its history)")


# -- verifying --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoinResult:
    outpoint: str
    amount: Optional[int]
    ok: bool
    note: str = ""


@dataclass(frozen=True)
class ReservesReport:
    """What a verification found: ``valid`` only if every coin is proven and unspent at ``height``."""

    message: str
    policy_id: str
    height: int
    block_hash: Optional[str]
    where: str
    proven_amount: int
    coins: "tuple[CoinResult, ...]"
    verified_by_kernel: bool
    stated_block: "Optional[tuple[int, str]]" = None
    failing: "tuple[CoinResult, ...]" = field(default=())

    @property
    def valid(self) -> bool:
        return not self.failing

    def to_dict(self) -> "dict[str, Any]":
        return {"kind": "msigvault-reserves-verification", "valid": self.valid, "message": self.message,
                "policy_id": self.policy_id, "height": self.height, "block_hash": self.block_hash,
                "utxo_set": self.where, "proven_amount": self.proven_amount, "coin_count": len(self.coins),
                "proven_coins": sum(c.ok for c in self.coins), "verified_by_kernel": self.verified_by_kernel,
                "stated_block": list(self.stated_block) if self.stated_block else None,
                "coins": [c.__dict__ for c in self.coins], "failing": [c.__dict__ for c in self.failing]}

    def text(self) -> str:
        from ..amounts import format_amount

        head = "VALID" if self.valid else "NOT VALID"
        lines = [f"{head} proof of reserves: {format_amount(self.proven_amount)} in "
                 f"{sum(c.ok for c in self.coins)} of {len(self.coins)} coin(s), unspent at height {self.height}"
                 f" ({self.where})" + (", scripts verified by libbitcoinkernel" if self.verified_by_kernel else ""),
                 "  message (each line escaped: JSON escapes, and every character that does not print as itself):"]
        lines += [f"    {line}" for line in escaped_lines(self.message)]
        if self.stated_block is not None and self.stated_block[0] != self.height:
            lines.append(f"  note: the message names block {self.stated_block[0]}; checked at {self.height}")
        lines += [f"  FAILS {c.outpoint}: {c.note}" for c in self.failing]
        lines += [f"  note {c.outpoint}: {c.note}" for c in self.coins if c.ok and c.note]
        return "\n".join(lines)


def check(proof: "ProofFile | bytes", vault: Vault, source: CoinSource, *, message: Optional[str] = None,
          height: Optional[int] = None) -> ReservesReport:
    """Verify a proof against ``source`` at ``height`` (default: its tip) and report; raises
    ReservesInvalid when the proof itself is bad (commitment, signatures, total), but reports
    (``failing``) coins that are spent or unknown there. ``message``: the auditor's own."""
    raw = proof.tx if isinstance(proof, ProofFile) else proof
    if isinstance(proof, ProofFile) and (proof.network, proof.policy_id) != (vault.network.name, vault.policy_id):
        raise ReservesInvalid(f"the proof file is of vault {proof.policy_id[:16]}... on {proof.network}, not of this "
                              f"vault ({vault.policy_id[:16]}... on {vault.network.name}): check which vault it proves")
    text = message if message is not None else (proof.message if isinstance(proof, ProofFile) else None)
    if text is None:
        raise ReservesError("give the message the proof commits to")
    P.check_message(text, ReservesError)
    tx = _parse(raw)
    if not tx.vin or (bytes(tx.vin[0][0]), tx.vin[0][1]) != (P.commitment_txid(text), 0):
        raise ReservesInvalid("the proof's first input is not the commitment of this message (SHA-256(\"Proof-of-"
                              "Reserves: \" + message):0): it proves nothing for this message, or could be valid")
    if len(tx.vin) < 2 or len(tx.vout) != 1:
        raise ReservesInvalid(f"a proof of reserves has a commitment, at least one coin and one output; this one has "
                              f"{len(tx.vin)} input(s) and {len(tx.vout)} output(s)")
    outpoints = [(bytes(t)[::-1].hex(), v) for t, v, *_ in tx.vin[1:]]
    if len(set(outpoints)) != len(outpoints):
        raise ReservesInvalid("the proof spends a coin twice")
    at, block = source.tip()
    if height is not None:
        if height != at:
            block = None
        at = height
    states = source.coins(outpoints, at)
    unknown = [f"{op[0]}:{op[1]} ({states[op].note})" for op in outpoints if states[op].output is None]
    if unknown:
        raise CoinNotUnspent(f"{len(unknown)} coin(s) of the proof are not in {source.where} at height {at}, so "
                             f"neither they nor the proof's signatures can be checked: {'; '.join(unknown)}")
    results, spent, total_true = [], [], 0
    for op in outpoints:
        s = states[op]
        name = f"{op[0]}:{op[1]}"
        assert s.output is not None
        if vault.find(s.output.script_pubkey, gap=FIND_GAP) is None:
            raise ReservesInvalid(f"coin {name} does not pay one of the vault's first {FIND_GAP} addresses of a "
                                  "branch: it is not a coin of this vault")
        spent.append(s.output)
        total_true += s.output.amount
        results.append(CoinResult(name, s.output.amount, s.unspent, s.note))
    if tx.vout[0][0] != total_true:
        raise ReservesInvalid(f"the proof's output holds {tx.vout[0][0]} sats but its coins hold {total_true} on the "
                              "chain: BIP127 requires the exact sum")
    P.verify_finals(_as_psbt(tx, spent), vault, spent, ReservesInvalid)
    try:
        kernel = verify_scripts(raw, P.spent_outputs(spent))
    except ExtractError as e:
        raise ReservesInvalid(f"libbitcoinkernel rejects the proof's scripts: {e}") from None
    failing = tuple(c for c in results if not c.ok)
    return ReservesReport(text, vault.policy_id, at, block, source.where, sum(c.amount or 0 for c in results if c.ok),
                          tuple(results), kernel, stated_block(text), failing)


def verify(proof: "ProofFile | bytes", vault: Vault, source: CoinSource, *, message: Optional[str] = None,
           height: Optional[int] = None) -> ReservesReport:
    """:func:`check`, raising :class:`CoinNotUnspent` (naming every such coin) unless all are unspent."""
    report = check(proof, vault, source, message=message, height=height)
    if report.failing:
        named = "; ".join(f"{c.outpoint} ({c.note})" for c in report.failing)
        raise CoinNotUnspent(f"{len(report.failing)} coin(s) of the proof are not unspent at height {report.height} "
                             f"in {report.where}: {named}")
    return report


def _parse(raw: bytes) -> "F.RawTx":
    try:
        return F.parse_tx(bytes(raw), "proof-of-reserves transaction", max_inputs=P.MAX_COINS + 1, max_outputs=10)
    except (InvalidPSBT, MsigvaultError) as e:
        raise ReservesInvalid(f"the proof is not a transaction ({e})") from None


def _as_psbt(tx: "F.RawTx", spent: "list[TxOut]") -> Psbt:
    """The proof transaction as a finalized PSBT (the true outputs as witness_utxo), so the vault
    roles' own satisfaction check can read it."""
    unsigned = F.serialize_tx(tx.version, [(bytes(t), v, seq) for t, v, _ss, seq in tx.vin], tx.vout, tx.locktime)
    psbt = Psbt.from_unsigned_tx(unsigned)
    for i, (_t, _v, script_sig, _seq) in enumerate(tx.vin):
        m = psbt.inputs[i]
        stack = tx.witnesses[i] if tx.witnesses else []
        if i == 0:
            if script_sig or stack:
                raise ReservesInvalid("the commitment input's scriptSig and witness must be empty")
            continue
        out = spent[i - 1]
        m.set(F.PSBT_IN_WITNESS_UTXO, b"", out.amount.to_bytes(8, "little") + F.compact_size(len(out.script_pubkey))
              + out.script_pubkey)
        m.set(F.PSBT_IN_FINAL_SCRIPTSIG, b"", bytes(script_sig))
        if stack:
            m.set(F.PSBT_IN_FINAL_SCRIPTWITNESS, b"", witness_bytes([bytes(x) for x in stack]))
    return psbt


def load_proof(path: "str | Path") -> ProofFile:
    return ProofFile.from_dict(read_json(path, "proof-of-reserves file"))


def load_snapshot(path: "str | Path") -> Snapshot:
    """A UTXO snapshot file, read as the valuation reads it (:func:`.valuation.load_snapshot`):
    a list of UTXO records or ``{"height", "block_hash", "utxos"}``, records with a ``height``."""
    from .valuation import load_snapshot as read

    utxos, height, block_hash, heights = read(path)
    return Snapshot("", height, block_hash, tuple(utxos), tuple(heights.get(u.outpoint) for u in utxos),
                    f"snapshot {Path(path).name}")
