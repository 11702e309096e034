"""Schema for vault migrations (issue 19, key rotation): one row per migration to a successor
vault, one per batch linking it to its signing session. See msigvault.lifecycle.migrate.
(Intake's custody records live in the audit log itself and need no table.)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "migrations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("old_policy_id", sa.String(64), sa.ForeignKey("vaults.policy_id"), nullable=False),
        sa.Column("successor_policy_id", sa.String(64), sa.ForeignKey("vaults.policy_id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("plan_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("plan", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("completed_at", sa.String(32), nullable=True),
    )
    op.create_table(
        "migration_batches",
        sa.Column("migration_id", sa.String(32), sa.ForeignKey("migrations.id"), primary_key=True),
        sa.Column("batch", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("session_id", sa.String(32), sa.ForeignKey("sessions.id"), nullable=False, unique=True),
        sa.Column("txid", sa.String(64), nullable=False),
        sa.Column("amount_out", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("migration_batches")
    op.drop_table("migrations")
