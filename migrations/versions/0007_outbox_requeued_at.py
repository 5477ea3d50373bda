"""outbox requeued_at: `paylinks outbox retry` keeps a row's created_at and restarts its age here

Revision ID: 0007_outbox_requeued_at
Revises: 0006_api_key_management
Create Date: 2026-12-01 09:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.models

revision: str = "0007_outbox_requeued_at"
down_revision: str | Sequence[str] | None = "0006_api_key_management"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requeued_at", core.models.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_column("requeued_at")
