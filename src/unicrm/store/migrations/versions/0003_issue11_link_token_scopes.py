"""Link tokens may carry OAuth scopes (Truto's `scopes`), asked instead of the declared ones (issue 11).

Revision ID: 0003_issue11
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_issue11"
down_revision = "0002_issue11"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("link_tokens") as batch:
        batch.add_column(sa.Column("scopes", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("link_tokens") as batch:
        batch.drop_column("scopes")
