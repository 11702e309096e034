"""The coordinator's first schema: vaults, identities, sessions, coins, cosigner states,
submissions, the audit log and its head, configuration.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vaults",
        sa.Column("policy_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("network", sa.String(16), nullable=False),
        sa.Column("vault_file", sa.Text, nullable=False),
        sa.Column("registered_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "cosigner_identities",
        sa.Column("policy_id", sa.String(64), sa.ForeignKey("vaults.policy_id"), primary_key=True),
        sa.Column("fingerprint", sa.String(8), primary_key=True),
        sa.Column("public_key", sa.String(64), nullable=False),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("policy_id", sa.String(64), sa.ForeignKey("vaults.policy_id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("txid", sa.String(64), nullable=False),
        sa.Column("psbt", sa.LargeBinary, nullable=False),
        sa.Column("psbt_sha256", sa.String(64), nullable=False),
        sa.Column("memo", sa.Text, nullable=False),
        sa.Column("proposed_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=True),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("final_psbt", sa.LargeBinary, nullable=True),
        sa.Column("final_tx", sa.LargeBinary, nullable=True),
        sa.Column("final_txid", sa.String(64), nullable=True),
        sa.Column("broadcast_at", sa.String(32), nullable=True),
        sa.Column("confirmed_height", sa.Integer, nullable=True),
        sa.Column("confirmations", sa.Integer, nullable=False),
        sa.Column("replaces", sa.String(32), sa.ForeignKey("sessions.id"), nullable=True),
        sa.Column("replaced_by", sa.String(32), nullable=True),
        sa.Column("closed_reason", sa.Text, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("revision", sa.Integer, nullable=False),
    )
    op.create_index("ix_sessions_policy_id", "sessions", ["policy_id"])
    op.create_index("ix_sessions_status", "sessions", ["status"])
    op.create_table(
        "session_coins",
        sa.Column("session_id", sa.String(32), sa.ForeignKey("sessions.id"), primary_key=True),
        sa.Column("outpoint", sa.String(80), primary_key=True),
        sa.Column("active", sa.Boolean, nullable=False),
    )
    op.create_index("one_active_session_per_coin", "session_coins", ["outpoint"], unique=True,
                    sqlite_where=sa.text("active"), postgresql_where=sa.text("active"))
    op.create_table(
        "cosigner_states",
        sa.Column("session_id", sa.String(32), sa.ForeignKey("sessions.id"), primary_key=True),
        sa.Column("fingerprint", sa.String(8), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("partial_psbt", sa.LargeBinary, nullable=True),
        sa.Column("partial_sha256", sa.String(64), nullable=True),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "submissions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(32), sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("psbt_sha256", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("signers", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("received_at", sa.String(32), nullable=False),
        sa.UniqueConstraint("session_id", "psbt_sha256", name="one_submission_per_psbt"),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("session_id", sa.String(32), nullable=True),
        sa.Column("event", sa.String(48), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("line", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_audit_log_session_id", "audit_log", ["session_id"])
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "config",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for name in ("config", "audit_head", "audit_log", "submissions", "cosigner_states", "session_coins",
                 "sessions", "cosigner_identities", "vaults"):
        op.drop_table(name)
