"""Schema for the reserve's daily valuation series (issue 17): holdings per day and vault, the
close of each pair per day (NULL when the price source had none). See msigvault.reserves.valuation.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "valuation_holdings",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("policy_id", sa.String(64), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("vault_name", sa.Text, nullable=False),
        sa.Column("sats", sa.BigInteger, nullable=False),
        sa.Column("coins", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("block_hash", sa.String(64), nullable=False),
        sa.Column("block_time", sa.BigInteger, nullable=True),
        sa.Column("holdings_source", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "valuation_prices",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("pair", sa.String(16), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("close", sa.String(40), nullable=True),
        sa.Column("source", sa.Text, nullable=True),
        sa.Column("observed_at", sa.String(40), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("valuation_prices")
    op.drop_table("valuation_holdings")
