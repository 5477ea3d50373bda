"""livemode on links and payments: test and live money never mix

Revision ID: 0009_livemode
Revises: 0008_checkout_attempts
Create Date: 2026-12-01 10:25:00

Rows made before this revision were made with the sandbox (the only provider there was): false.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_livemode"
down_revision: str | Sequence[str] | None = "0008_checkout_attempts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table_name in ("payment_link", "payment"):
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            batch_op.add_column(sa.Column("livemode", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    for table_name in ("payment", "payment_link"):
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            batch_op.drop_column("livemode")
