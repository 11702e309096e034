"""Schema for the coordinator service: request nonces, identities' roles (issue 16). Empty until that work lands.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
