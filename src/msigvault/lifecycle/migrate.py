"""Key rotation by migration: move every coin of a vault to a registered successor vault.

Offline-safe half (plans, the signer's successor files): :func:`plan_migration` batches all the
old vault's coins under a weight limit, each batch an ordinary vault spend of the old vault that
pays everything but its fee to the successor's next receive address; :func:`load_successors`
gives the signer the successor vaults this keyholder registered. Online half (coordinator):
:func:`start_migration` opens one signing session per batch, linked to one migration record,
and :func:`migration_status` follows the sessions and the old vault on a backend until it is
empty, writing ``migration.*`` entries to the audit log. See docs/rotation.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..errors import MsigvaultError
from ..fileio import write_atomic
from ..policy.registration import RegisteredVault
from ..psbt.signer import SignerPolicy
from ..standardness import MAX_STANDARD_TX_WEIGHT
from ..types import Utxo
from ..vaultfile import VaultFile, load_vault_file

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..coordinator.sessions import Coordinator
    from ..psbt.psbt import Psbt

PLAN_FORMAT = "msigvault-migration-plan"
PLAN_VERSION = 1
MAX_PLAN_BYTES = 16 * 1024 * 1024
MAX_BATCHES = 1_000
#: the smallest weight limit a plan accepts (a handful of inputs)
MIN_WEIGHT = 4_000


class MigrationError(MsigvaultError):
    """A migration cannot be planned, started or followed (the message says why and what to do)."""

    code = "migration.error"


class MigrationFileError(MigrationError):
    """A migration plan file is malformed, too large, or does not match its PSBTs or vaults."""

    code = "migration.file"


# -- planning ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """One migration transaction: these coins of the old vault, all to one successor address."""

    number: int  # 1-based
    psbt: "Psbt" = field(repr=False)
    coins: "tuple[str, ...]"  # outpoints txid:vout
    amount_in: int
    amount_out: int
    fee: int
    successor_index: int
    address: str

    @property
    def txid(self) -> str:
        return self.psbt.txid().hex()


@dataclass(frozen=True)
class MigrationPlan:
    """Every coin of ``old`` moved to ``successor`` in ``batches``."""

    old: VaultFile = field(repr=False)
    successor: VaultFile = field(repr=False)
    batches: "tuple[Batch, ...]"
    fee_rate: float
    fee_budget: "int | None"
    max_weight: int

    @property
    def total_in(self) -> int:
        return sum(b.amount_in for b in self.batches)

    @property
    def total_fee(self) -> int:
        return sum(b.fee for b in self.batches)

    def to_dict(self, psbt_names: "Sequence[str] | None" = None) -> "dict[str, Any]":
        names = list(psbt_names) if psbt_names is not None else [batch_file_name(b.number) for b in self.batches]
        return {
            "format": PLAN_FORMAT, "version": PLAN_VERSION,
            "old": _vault_ref(self.old), "successor": _vault_ref(self.successor),
            "fee_rate": self.fee_rate, "fee_budget": self.fee_budget, "max_weight": self.max_weight,
            "total_in": self.total_in, "total_fee": self.total_fee, "total_out": self.total_in - self.total_fee,
            "batches": [{"batch": b.number, "psbt": name, "psbt_sha256": _sha(b.psbt.serialize()), "txid": b.txid,
                         "coins": list(b.coins), "amount_in": b.amount_in, "amount_out": b.amount_out, "fee": b.fee,
                         "successor_index": b.successor_index, "address": b.address}
                        for b, name in zip(self.batches, names)],
        }


def batch_file_name(number: int) -> str:
    return f"batch-{number:03d}.psbt"


def _vault_ref(vf: VaultFile) -> "dict[str, Any]":
    v = vf.vault
    return {"name": vf.name, "policy_id": v.policy_id, "threshold": v.m, "n": v.n, "script": v.script,
            "network": v.network.name, "registered_by": sorted(r.fingerprint.hex() for r in vf.registrations)}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def plan_migration(old: VaultFile, successor: VaultFile, utxos: "Sequence[Utxo]", *, fee_rate: float,
                   fee_budget: "int | None" = None, max_weight: int = MAX_STANDARD_TX_WEIGHT,
                   start_index: "int | None" = None, current_height: "int | None" = None,
                   fee_limits: "SignerPolicy | None" = SignerPolicy(), version: int = 0) -> MigrationPlan:
    """Batches moving every coin in ``utxos`` (the old vault's) to ``successor``'s receive addresses.

    The fewest batches whose transactions stay within ``max_weight`` (coins dealt round-robin
    from the largest, so every batch carries some value); batch ``k`` pays receive index
    ``start_index + k - 1`` (default: the successor file's next receive index). Each batch must pass
    ``fee_limits`` (the signers' own rule), and all fees together ``fee_budget`` sats.
    """
    from ..psbt.creator import create_sweep
    from ..psbt.weight import input_weight, tx_weight

    _check_pair(old, successor)
    if isinstance(max_weight, bool) or not isinstance(max_weight, int) or not MIN_WEIGHT <= max_weight <= MAX_STANDARD_TX_WEIGHT:
        raise MigrationError(f"the weight limit must be from {MIN_WEIGHT} to {MAX_STANDARD_TX_WEIGHT} WU, "
                             f"not {max_weight!r}", field="max_weight")
    if fee_budget is not None and (isinstance(fee_budget, bool) or not isinstance(fee_budget, int) or fee_budget < 0):
        raise MigrationError(f"the fee budget is a whole number of sats, 0 or more, not {fee_budget!r}",
                             field="fee_budget")
    coins = sorted(utxos, key=lambda u: (-u.amount, u.txid, u.vout))
    if not coins:
        raise MigrationError(f"the old vault {old.name!r} has no coins to migrate: it is empty already "
                             "(check with msigvault migrate status)")
    if len({u.outpoint for u in coins}) != len(coins):
        raise MigrationError("a coin is listed twice in the UTXOs given: give each once")
    v = old.vault
    one = tx_weight([input_weight(v.script, v.m, v.n)], [34])
    two = tx_weight([input_weight(v.script, v.m, v.n)] * 2, [34])
    per_input, base = two - one, 2 * one - two
    per_batch = (max_weight - base) // per_input
    if per_batch < 1:
        raise MigrationError(f"not even one input of this vault fits in {max_weight} WU: raise --max-weight")
    count = math.ceil(len(coins) / per_batch)
    if count > MAX_BATCHES:
        raise MigrationError(f"{len(coins)} coins need {count} batches, more than {MAX_BATCHES}: migrate in parts")
    start = successor.next_receive_index if start_index is None else start_index
    last = start + count - 1
    limits = [r.index_limit for r in successor.registrations]
    if limits and last >= min(limits):
        raise MigrationError(f"the batches would pay successor receive indexes {start} to {last}, but a keyholder "
                             f"registered the successor for indexes below {min(limits)}: their signer would show the "
                             "payment as PAY; give a lower --start-index", field="start_index")
    groups: "list[list[Utxo]]" = [[] for _ in range(count)]
    for i, u in enumerate(coins):
        groups[i % count].append(u)
    batches = []
    for k, group in enumerate(groups):
        index = start + k
        address = successor.vault.address(index)
        try:
            psbt = create_sweep(v, group, address, fee_rate=fee_rate, current_height=current_height,
                                max_weight=max_weight, fee_limits=fee_limits, version=version)
        except MsigvaultError as e:
            raise MigrationError(f"batch {k + 1} of {count} cannot be built: {e}") from None
        amount_in = sum(u.amount for u in group)
        amount_out = psbt.amount(0)
        batches.append(Batch(k + 1, psbt, tuple(sorted(u.outpoint for u in group)), amount_in, amount_out,
                             amount_in - amount_out, index, address))
    plan = MigrationPlan(old, successor, tuple(batches), float(fee_rate), fee_budget, max_weight)
    if fee_budget is not None and plan.total_fee > fee_budget:
        raise MigrationError(f"the {count} batch(es) pay {plan.total_fee} sats in fees, above the budget of "
                             f"{fee_budget} sats: lower the fee rate, or raise --fee-budget", field="fee_budget")
    return plan


def _check_pair(old: VaultFile, successor: VaultFile) -> None:
    if not isinstance(old, VaultFile) or not isinstance(successor, VaultFile):
        raise MigrationError("a migration takes the old and the successor vault files")
    if old.vault.policy_id == successor.vault.policy_id:
        raise MigrationError("the successor is the same vault as the old one (same policy id): nothing would rotate")
    if old.vault.network != successor.vault.network:
        raise MigrationError(f"the old vault is on {old.vault.network.name} and the successor on "
                             f"{successor.vault.network.name}: a successor is on the same network")


def write_plan(plan: MigrationPlan, directory: "str | os.PathLike[str]", *, overwrite: bool = False) -> Path:
    """Write ``directory``/migration.json and one PSBT per batch (binary); the plan file's path."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    target = d / "migration.json"
    if target.exists() and not overwrite:
        raise MigrationError(f"{target} exists already: choose another directory, or pass --force")
    for b in plan.batches:
        write_atomic(d / batch_file_name(b.number), b.psbt.serialize(), overwrite=overwrite)
    write_atomic(target, (json.dumps(plan.to_dict(), indent=2) + "\n").encode(), overwrite=overwrite)
    return target


# -- reading a plan back (coordinator) -----------------------------------------------------------


@dataclass(frozen=True)
class LoadedPlan:
    """A plan file checked against its PSBTs and the two vault files."""

    data: "Mapping[str, Any]" = field(repr=False)
    psbts: "tuple[Psbt, ...]" = field(repr=False)
    sha256: str


def load_plan(path: "str | os.PathLike[str]", old: VaultFile, successor: VaultFile) -> LoadedPlan:
    """The plan at ``path`` with its batch PSBTs (next to it), each checked: the hash the plan
    recorded, spends of ``old`` only, everything to ``successor``'s address at the recorded index."""
    from ..psbt.psbt import Psbt

    p = Path(path)
    raw = _read(p, MAX_PLAN_BYTES)
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # ValueError: not UTF-8, not JSON, an integer of > 4,300 digits
        raise MigrationFileError(f"{p} is not a migration plan (not JSON)") from None
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT or data.get("version") != PLAN_VERSION:
        raise MigrationFileError(f"{p} is not a msigvault migration plan (version {PLAN_VERSION})")
    _check_pair(old, successor)
    for key, vf in (("old", old), ("successor", successor)):
        ref = data.get(key)
        if not isinstance(ref, dict) or ref.get("policy_id") != vf.vault.policy_id:
            raise MigrationFileError(f"{p} was planned for another {key} vault than {vf.name!r} (policy id differs)")
    batches = data.get("batches")
    if not isinstance(batches, list) or not 1 <= len(batches) <= MAX_BATCHES:
        raise MigrationFileError(f"{p}: 'batches' must list 1 to {MAX_BATCHES} batches")
    psbts = []
    for n, b in enumerate(batches, 1):
        if not isinstance(b, dict) or b.get("batch") != n or not isinstance(b.get("psbt"), str):
            raise MigrationFileError(f"{p}: batch {n} is malformed")
        name = b["psbt"]
        if Path(name).name != name:
            raise MigrationFileError(f"{p}: batch {n} names its PSBT {name!r}: only a file next to the plan")
        data_psbt = _read(p.with_name(name), MAX_PLAN_BYTES)
        if _sha(data_psbt) != b.get("psbt_sha256"):
            raise MigrationFileError(f"{p.with_name(name)} is not the PSBT the plan recorded for batch {n} "
                                     "(its SHA-256 differs): plan the migration again")
        psbt = Psbt.parse(data_psbt)
        _check_batch(psbt, b, n, old, successor)
        psbts.append(psbt)
    return LoadedPlan(data, tuple(psbts), _sha(raw))


def _check_batch(psbt: "Psbt", b: "Mapping[str, Any]", n: int, old: VaultFile, successor: VaultFile) -> None:
    from ..psbt.analyzer import analyze

    index = b.get("successor_index")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 2**31:
        raise MigrationFileError(f"batch {n}: successor_index must be a vault index", field="successor_index")
    expected = successor.vault.derive_branch(0, index).script_pubkey
    if psbt.output_count != 1 or bytes(psbt.script(0)) != expected:
        raise MigrationFileError(f"batch {n} does not pay exactly the successor's receive address {index}: "
                                 "do not use this plan")
    a = analyze(psbt, old.vault)
    if not a["spends_from_vault"] or any(x["vault_index"] is None for x in a["inputs"]) or a["problems"]:
        raise MigrationFileError(f"batch {n} does not spend only coins of the old vault {old.name!r}")


def _read(p: Path, limit: int) -> bytes:
    from ..fileio import read_bounded

    return read_bounded(p, limit, MigrationFileError, "migration file")


# -- the signer's successors ---------------------------------------------------------------------


def load_successors(paths: "Sequence[str | os.PathLike[str]]",
                    fingerprint: bytes) -> "tuple[tuple[RegisteredVault, ...], tuple[str, ...]]":
    """(successor vaults registered by ``fingerprint``, a warning for each file that is not one).

    A file that does not load (altered, not a vault file) or holds no registration by this key is
    left out with a warning: the signer then shows its outputs as ordinary payments.
    """
    found: "list[RegisteredVault]" = []
    warnings: "list[str]" = []
    for path in paths:
        try:
            found.append(load_vault_file(path).registered(fingerprint))
        except MsigvaultError as e:
            warnings.append(f"successor {path} is not used ({e}): outputs to it are shown as PAY")
    return tuple(found), tuple(warnings)


# -- the coordinator: one migration, its sessions, its audit entries -----------------------------


@dataclass(frozen=True)
class BatchStatus:
    batch: int
    session_id: str
    status: str  # the session's: open, finalized, broadcast, confirmed, cancelled, ...
    txid: "str | None"
    amount_out: int

    def to_dict(self) -> "dict[str, Any]":
        return {"batch": self.batch, "session": self.session_id, "status": self.status, "txid": self.txid,
                "amount_out": self.amount_out}


@dataclass(frozen=True)
class MigrationStatus:
    """Where a migration stands: its batches' sessions and what the old vault still holds."""

    id: str
    status: str  # in-progress or completed
    old_name: str
    old_policy_id: str
    successor_name: str
    successor_policy_id: str
    batches: "tuple[BatchStatus, ...]"
    old_vault_coins: "int | None" = None  # None: not checked (no backend)
    old_vault_sats: "int | None" = None

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def to_dict(self) -> "dict[str, Any]":
        return {"migration": self.id, "status": self.status,
                "old": {"name": self.old_name, "policy_id": self.old_policy_id},
                "successor": {"name": self.successor_name, "policy_id": self.successor_policy_id},
                "batches": [b.to_dict() for b in self.batches], "old_vault_coins": self.old_vault_coins,
                "old_vault_sats": self.old_vault_sats}

    def text(self) -> str:
        from ..psbt.display import escaped  # names and ids come from the database: shown escaped

        lines = [f"migration {escaped(self.id)} [{self.status}]: {escaped(self.old_name)} "
                 f"({self.old_policy_id[:16]}...) -> successor {escaped(self.successor_name)} "
                 f"({self.successor_policy_id[:16]}...)"]
        for b in self.batches:
            lines.append(f"  batch {b.batch}: session {escaped(b.session_id)} {b.status:<10} {b.amount_out:>15,} sat"
                         + (f"  txid {b.txid}" if b.txid else ""))
        if self.old_vault_coins is not None:
            lines.append(f"  old vault holds {self.old_vault_coins} coin(s), {self.old_vault_sats:,} sat"
                         + (": EMPTY" if self.old_vault_coins == 0 else ""))
        return "\n".join(lines)


def start_migration(co: "Coordinator", plan: LoadedPlan, old: VaultFile, successor: VaultFile, *,
                    proposed_by: str = "", migration_id: "str | None" = None) -> MigrationStatus:
    """Register both vaults, open one session per batch and record the migration (``migration.started``)."""
    import sqlalchemy as sa

    from ..coordinator import db as D
    from ..coordinator.audit import now_text

    mid = migration_id or "mig-" + secrets.token_hex(6)
    with co.db.read() as conn:
        if conn.execute(sa.select(D.migrations.c.id).where(D.migrations.c.id == mid)).first() is not None:
            raise MigrationError(f"a migration with id {mid} exists already")
        dup = conn.execute(sa.select(D.migrations.c.id).where(D.migrations.c.plan_sha256 == plan.sha256)).scalar()
    if dup is not None:
        raise MigrationError(f"this plan was started already as migration {dup}: follow it with "
                             f"msigvault migrate status {dup}")
    co.register_vault(old)
    co.register_vault(successor)
    batches = list(plan.data["batches"])
    rows = []
    for b, psbt in zip(batches, plan.psbts):
        sid = f"{mid}-{b['batch']:03d}"
        s = _existing_session(co, sid, psbt)  # a start interrupted after this batch's session: reused
        if s is None:
            s = co.new_session(old.vault.policy_id, psbt, session_id=sid, proposed_by=proposed_by,
                               memo=f"migration {mid} batch {b['batch']} of {len(batches)}: every coin to successor "
                                    f"vault {successor.name} (policy id {successor.vault.policy_id})")
        rows.append({"migration_id": mid, "batch": b["batch"], "session_id": s.id, "txid": s.txid,
                     "amount_out": b["amount_out"], "status": "open"})

    def write(conn: Any) -> None:
        conn.execute(sa.insert(D.migrations).values(
            id=mid, old_policy_id=old.vault.policy_id, successor_policy_id=successor.vault.policy_id,
            status="in-progress", plan_sha256=plan.sha256, plan=json.dumps(plan.data, sort_keys=True),
            created_at=now_text(), completed_at=None))
        for r in rows:
            conn.execute(sa.insert(D.migration_batches).values(**r))

    co.record_migration("migration.started", {
        "migration": mid, "old": plan.data["old"], "successor": plan.data["successor"],
        "plan_sha256": plan.sha256, "fee_rate": plan.data.get("fee_rate"), "total_in": plan.data.get("total_in"),
        "total_fee": plan.data.get("total_fee"),
        "batches": [{"batch": b["batch"], "session": r["session_id"], "txid": r["txid"], "coins": b["coins"],
                     "amount_out": b["amount_out"], "fee": b["fee"], "successor_index": b["successor_index"],
                     "address": b["address"]} for b, r in zip(batches, rows)]}, write=write)
    return migration_status(co, mid)


def _existing_session(co: "Coordinator", sid: str, psbt: "Psbt") -> Any:
    """The session ``sid`` if it exists for exactly ``psbt``; MigrationError if it is another's."""
    from ..coordinator.errors import SessionNotFound

    try:
        s = co.get(sid)
    except SessionNotFound:
        return None
    if s.id != sid or s.psbt_sha256 != _sha(psbt.serialize()):
        raise MigrationError(f"session {sid} exists already for another PSBT: give another --id")
    return s


def migration_status(co: "Coordinator", migration_id: str, *,
                     backend: "Backend | None" = None) -> MigrationStatus:
    """Follow ``migration_id``: advance its sessions (with the coordinator's backend), record each
    batch broadcast and confirmed, and, with ``backend``, check the old vault: once every batch is
    confirmed and the old vault holds nothing, record ``migration.completed``."""
    import sqlalchemy as sa

    from ..coordinator import db as D
    from ..coordinator.audit import now_text

    row, batch_rows = _migration_rows(co, migration_id)
    old_vf, succ_vf = co.vault_file(row.old_policy_id), co.vault_file(row.successor_policy_id)
    order = ("open", "finalized", "broadcast", "confirmed")
    for b in batch_rows:
        session = co.advance(b.session_id, quiet=True) if co.backend is not None and co.identity is not None \
            else co.get(b.session_id)
        new, cur = session.status.value, b.status if b.status in order else "open"
        if new not in order:  # cancelled, expired, replaced: shown as such, nothing recorded here
            if new != b.status:
                _set_batch(co, migration_id, b.batch, new)
            continue
        for step in order[order.index(cur) + 1:order.index(new) + 1]:
            if step in ("broadcast", "confirmed"):
                _record_batch(co, migration_id, b.batch, step, session)
            else:
                _set_batch(co, migration_id, b.batch, step)
    coins = sats = None
    if backend is not None:
        from ..backends.scan import scan_vault

        result = scan_vault(old_vf.vault, backend, fetch_prev_txs=False)
        coins, sats = len(result.utxos), sum(r.utxo.amount for r in result.utxos)
    row, batch_rows = _migration_rows(co, migration_id)
    if (row.status != "completed" and coins == 0 and sats == 0 and co.identity is not None
            and all(b.status == "confirmed" for b in batch_rows)):
        done_at = now_text()

        def write(conn: Any) -> None:
            conn.execute(sa.update(D.migrations).where(D.migrations.c.id == migration_id)
                         .values(status="completed", completed_at=done_at))

        co.record_migration("migration.completed", {
            "migration": migration_id, "old_policy_id": row.old_policy_id,
            "successor_policy_id": row.successor_policy_id, "old_vault_coins": 0,
            "batches": [{"batch": b.batch, "txid": _final_txid(co, b.session_id)} for b in batch_rows],
            "moved": sum(b.amount_out for b in batch_rows)}, write=write)
        row, batch_rows = _migration_rows(co, migration_id)
    return MigrationStatus(
        migration_id, row.status, old_vf.name, row.old_policy_id, succ_vf.name, row.successor_policy_id,
        tuple(BatchStatus(b.batch, b.session_id, b.status, _final_txid(co, b.session_id), b.amount_out)
              for b in batch_rows), coins, sats)


def _final_txid(co: "Coordinator", session_id: str) -> "str | None":
    return co.get(session_id).final_txid


def _migration_rows(co: "Coordinator", migration_id: str) -> "tuple[Any, list[Any]]":
    import sqlalchemy as sa

    from ..coordinator import db as D

    with co.db.read() as conn:
        row = conn.execute(sa.select(D.migrations).where(D.migrations.c.id == str(migration_id))).first()
        if row is None:
            raise MigrationError(f"no migration {str(migration_id)[:40]!r} in this coordinator database: "
                                 "give the id msigvault migrate start printed")
        batches = list(conn.execute(sa.select(D.migration_batches).where(
            D.migration_batches.c.migration_id == row.id).order_by(D.migration_batches.c.batch)))
    return row, batches


def _update_batch(conn: Any, migration_id: str, batch: int, status: str) -> None:
    import sqlalchemy as sa

    from ..coordinator import db as D

    conn.execute(sa.update(D.migration_batches).where(
        D.migration_batches.c.migration_id == migration_id, D.migration_batches.c.batch == batch)
        .values(status=status))


def _set_batch(co: "Coordinator", migration_id: str, batch: int, status: str) -> None:
    with co.db.write() as conn:
        _update_batch(conn, migration_id, batch, status)


def _record_batch(co: "Coordinator", migration_id: str, batch: int, step: str, session: Any) -> None:
    """``migration.batch-broadcast`` or ``-confirmed``, and the batch's status, in one transaction."""
    co.record_migration(f"migration.batch-{step}", {
        "migration": migration_id, "batch": batch, "session": session.id, "txid": session.final_txid,
        **({"height": session.confirmed_height} if step == "confirmed" else {})},
        write=lambda conn: _update_batch(conn, migration_id, batch, step))
