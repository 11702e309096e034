"""Schema for the coordinator service (issue 16): enrolled identities and their roles, request nonces,
accepted envelope sequence numbers.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_identities",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("record", sa.LargeBinary, nullable=False),
        sa.Column("enrolled_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "service_nonces",
        sa.Column("identity_id", sa.String(32), primary_key=True),
        sa.Column("nonce", sa.String(32), primary_key=True),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_service_nonces_timestamp", "service_nonces", ["timestamp"])
    op.create_table(
        "envelope_sequences",
        sa.Column("sender_id", sa.String(32), primary_key=True),
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("sequence", sa.String(20), primary_key=True),
    )


def downgrade() -> None:
    for name in ("envelope_sequences", "service_nonces", "service_identities"):
        op.drop_table(name)
