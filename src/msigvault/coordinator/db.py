"""The coordinator database: SQLAlchemy 2 Core tables, SQLite (WAL) or PostgreSQL (psycopg 3).

One code path for both. Every change runs in one write transaction (:meth:`Database.write`):
on SQLite ``BEGIN IMMEDIATE`` (the whole database is locked for writing from the first
statement, so no two writers interleave), on PostgreSQL ``SELECT ... FOR UPDATE`` on the
session row and on the audit head row. Unique constraints back every "at most once": one
submission row per (session, PSBT hash), one cosigner state per (session, fingerprint), one
active session per coin, one audit entry per sequence number.

The schema is created and upgraded by the Alembic migrations shipped in
``msigvault/coordinator/migrations`` (:func:`upgrade`, :func:`downgrade`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, Optional

from .errors import DatabaseError

try:
    import sqlalchemy as sa
except ImportError as e:  # pragma: no cover - the online extra is missing
    raise DatabaseError(
        "the coordinator needs the online extra (SQLAlchemy, Alembic, psycopg): pip install 'msigvault[online]'"
    ) from e

metadata = sa.MetaData()

vaults = sa.Table(
    "vaults", metadata,
    sa.Column("policy_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("network", sa.String(16), nullable=False),
    sa.Column("vault_file", sa.Text, nullable=False),  # the registered vault file's JSON
    sa.Column("registered_at", sa.String(32), nullable=False),
)

identities = sa.Table(
    "cosigner_identities", metadata,
    sa.Column("policy_id", sa.String(64), sa.ForeignKey("vaults.policy_id"), primary_key=True),
    sa.Column("fingerprint", sa.String(8), primary_key=True),
    sa.Column("public_key", sa.String(64), nullable=False),
)

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("policy_id", sa.String(64), sa.ForeignKey("vaults.policy_id"), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("txid", sa.String(64), nullable=False),  # the unsigned transaction's txid
    sa.Column("psbt", sa.LargeBinary, nullable=False),
    sa.Column("psbt_sha256", sa.String(64), nullable=False),
    sa.Column("memo", sa.Text, nullable=False, default=""),
    sa.Column("proposed_by", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("expires_at", sa.String(32), nullable=True),
    sa.Column("summary", sa.Text, nullable=False),  # JSON: inputs, outputs, fee
    sa.Column("final_psbt", sa.LargeBinary, nullable=True),
    sa.Column("final_tx", sa.LargeBinary, nullable=True),
    sa.Column("final_txid", sa.String(64), nullable=True),
    sa.Column("broadcast_at", sa.String(32), nullable=True),
    sa.Column("confirmed_height", sa.Integer, nullable=True),
    sa.Column("confirmations", sa.Integer, nullable=False, default=0),
    sa.Column("replaces", sa.String(32), sa.ForeignKey("sessions.id"), nullable=True),
    sa.Column("replaced_by", sa.String(32), nullable=True),
    sa.Column("closed_reason", sa.Text, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("revision", sa.Integer, nullable=False, default=0),
)

session_coins = sa.Table(
    "session_coins", metadata,
    sa.Column("session_id", sa.String(32), sa.ForeignKey("sessions.id"), primary_key=True),
    sa.Column("outpoint", sa.String(80), primary_key=True),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Index("one_active_session_per_coin", "outpoint", unique=True,
             sqlite_where=sa.text("active"), postgresql_where=sa.text("active")),
)

cosigner_states = sa.Table(
    "cosigner_states", metadata,
    sa.Column("session_id", sa.String(32), sa.ForeignKey("sessions.id"), primary_key=True),
    sa.Column("fingerprint", sa.String(8), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("partial_psbt", sa.LargeBinary, nullable=True),
    sa.Column("partial_sha256", sa.String(64), nullable=True),
    sa.Column("updated_at", sa.String(32), nullable=False),
)

submissions = sa.Table(
    "submissions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("session_id", sa.String(32), sa.ForeignKey("sessions.id"), nullable=False),
    sa.Column("psbt_sha256", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),  # accepted, duplicate, refused
    sa.Column("signers", sa.Text, nullable=False, default=""),  # comma-separated fingerprints
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("received_at", sa.String(32), nullable=False),
    sa.UniqueConstraint("session_id", "psbt_sha256", name="one_submission_per_psbt"),
)

audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("session_id", sa.String(32), nullable=True, index=True),
    sa.Column("event", sa.String(48), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
    sa.Column("line", sa.LargeBinary, nullable=False),  # the entry's canonical JSON, signed
)

audit_head = sa.Table(
    "audit_head", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

config = sa.Table(
    "config", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# -- the coordinator service (msigvault.service; revision 0002) ---------------------------------

service_identities = sa.Table(
    "service_identities", metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # the identity id, hex
    sa.Column("role", sa.String(16), nullable=False),  # keyholder-site, auditor, operator
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("record", sa.LargeBinary, nullable=False),  # the identity record's bytes
    sa.Column("enrolled_at", sa.String(32), nullable=False),
)

service_nonces = sa.Table(
    "service_nonces", metadata,
    sa.Column("identity_id", sa.String(32), primary_key=True),
    sa.Column("nonce", sa.String(32), primary_key=True),  # (identity, nonce) unique: a replay fails to insert
    sa.Column("timestamp", sa.BigInteger, nullable=False, index=True),  # the request's; pruned after the window
)

envelope_sequences = sa.Table(
    "envelope_sequences", metadata,
    sa.Column("sender_id", sa.String(32), primary_key=True),
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("sequence", sa.String(20), primary_key=True),  # zero-padded decimal: text order is number order
)

# the reserve's daily valuation series (revision 0003; msigvault.reserves.valuation)
valuation_holdings = sa.Table(
    "valuation_holdings", metadata,
    sa.Column("day", sa.String(10), primary_key=True),  # YYYY-MM-DD
    sa.Column("policy_id", sa.String(64), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),  # the vault's place in that day's record
    sa.Column("vault_name", sa.Text, nullable=False),
    sa.Column("sats", sa.BigInteger, nullable=False),
    sa.Column("coins", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("block_hash", sa.String(64), nullable=False),
    sa.Column("block_time", sa.BigInteger, nullable=True),
    sa.Column("holdings_source", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.String(32), nullable=False),
)

valuation_prices = sa.Table(
    "valuation_prices", metadata,
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("pair", sa.String(16), primary_key=True),  # BTC/USD
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("close", sa.String(40), nullable=True),  # exact decimal text; NULL: no close that day
    sa.Column("source", sa.Text, nullable=True),
    sa.Column("observed_at", sa.String(40), nullable=True),
)

# key rotation: a migration to a successor vault and its batches' sessions (revision 0004;
# msigvault.lifecycle.migrate)
migrations = sa.Table(
    "migrations", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("old_policy_id", sa.String(64), sa.ForeignKey("vaults.policy_id"), nullable=False),
    sa.Column("successor_policy_id", sa.String(64), sa.ForeignKey("vaults.policy_id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # in-progress, completed
    sa.Column("plan_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("plan", sa.Text, nullable=False),  # the plan file's JSON
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("completed_at", sa.String(32), nullable=True),
)

migration_batches = sa.Table(
    "migration_batches", metadata,
    sa.Column("migration_id", sa.String(32), sa.ForeignKey("migrations.id"), primary_key=True),
    sa.Column("batch", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("session_id", sa.String(32), sa.ForeignKey("sessions.id"), nullable=False, unique=True),
    sa.Column("txid", sa.String(64), nullable=False),  # the unsigned transaction's
    sa.Column("amount_out", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # the session's, as last recorded
)

MIGRATIONS = Path(__file__).with_name("migrations")


def default_url(vault_path: "str | os.PathLike") -> str:
    """The default database next to a vault file: ``vault.json`` -> ``vault.sessions.sqlite``."""
    p = Path(vault_path)
    return "sqlite:///" + str(p.with_name(p.stem + ".sessions.sqlite").resolve())


def normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg 3; a bare path means a SQLite file."""
    if "://" not in url:
        return "sqlite:///" + str(Path(url).resolve())
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Database:
    """An engine on the coordinator database; ``Database.open(url)`` migrates it to the newest schema."""

    def __init__(self, engine: "sa.Engine"):
        self.engine = engine
        self.dialect = engine.dialect.name

    @classmethod
    def open(cls, url: str, *, migrate: bool = True, wal: bool = True) -> "Database":
        url = normalise_url(url)
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError:
            raise DatabaseError(f"{redact(url)} is not a database URL (sqlite:///FILE or postgresql://...)") from None
        if parsed.get_backend_name() == "sqlite":
            engine = _sqlite_engine(parsed, wal=wal)
        elif parsed.get_backend_name() == "postgresql":
            engine = sa.create_engine(parsed, pool_pre_ping=True)
        else:
            raise DatabaseError(f"the coordinator runs on SQLite or PostgreSQL, not {parsed.get_backend_name()}")
        db = cls(engine)
        if migrate:
            upgrade(db)
        return db

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def write(self) -> Iterator["sa.Connection"]:
        """One write transaction: committed at the end, rolled back on any exception."""
        with self._errors(), self.engine.connect() as conn:
            conn = conn.execution_options(msigvault_write=True)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator["sa.Connection"]:
        with self._errors(), self.engine.connect() as conn:
            with conn.begin():
                yield conn

    def lock(self, conn: "sa.Connection", table: "sa.Table", where) -> Optional["sa.Row"]:
        """The row ``where`` of ``table``, locked for this transaction (FOR UPDATE on PostgreSQL;
        SQLite's BEGIN IMMEDIATE already holds the database's write lock)."""
        q = sa.select(table).where(where)
        if self.dialect == "postgresql":
            q = q.with_for_update()
        return conn.execute(q).first()

    @contextlib.contextmanager
    def _errors(self):
        try:
            yield
        except sa.exc.OperationalError as e:
            raise DatabaseError(f"the coordinator database failed: {_short(e)}; check that it is reachable "
                                "and writable, then run the command again (nothing was applied)") from None


def _short(e: Exception) -> str:
    text = str(getattr(e, "orig", e)).strip().splitlines()
    return text[0] if text else type(e).__name__


def redact(url: str) -> str:
    from ..backends.base import redact as _redact

    return _redact(url)


def _sqlite_engine(url: "sa.URL", *, wal: bool) -> "sa.Engine":
    path = url.database
    if path and path != ":memory:":
        parent = Path(path).parent
        if not parent.is_dir():
            raise DatabaseError(f"cannot create the database {path}: the directory {parent} does not exist")
    engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # the transactions below are ours, not pysqlite's
        cur = dbapi_conn.cursor()
        if wal:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("msigvault_write") else "BEGIN")

    return engine


# -- migrations ---------------------------------------------------------------------------------


def _alembic_config(db: Database, conn):
    try:
        from alembic.config import Config
    except ImportError:  # pragma: no cover
        raise DatabaseError("the coordinator needs Alembic (the online extra): pip install 'msigvault[online]'") from None
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    """Migrate the schema up to ``revision`` (idempotent)."""
    from alembic import command

    with db.write() as conn:
        command.upgrade(_alembic_config(db, conn), revision)


def downgrade(db: Database, revision: str = "base") -> None:
    from alembic import command

    with db.write() as conn:
        command.downgrade(_alembic_config(db, conn), revision)


def current_revision(db: Database) -> Optional[str]:
    from alembic.runtime.migration import MigrationContext

    with db.read() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    """The newest schema revision this version of msigvault ships (what :func:`upgrade` reaches)."""
    from alembic.script import ScriptDirectory

    cfg = _alembic_config(None, None)  # type: ignore[arg-type]
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head
