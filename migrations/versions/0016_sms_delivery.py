"""outbox rows keep the platform's id for what they sent (Twilio's MessageSid), so delivery status
callbacks (POST /twilio/status) find the row they are about

Revision ID: 0016_sms_delivery
Revises: 0013_reach_webhooks
Create Date: 2026-12-01 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_sms_delivery"
down_revision: str | Sequence[str] | None = "0013_reach_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_message") as batch:
        batch.add_column(sa.Column("external_id", sa.String(length=100), nullable=True))
        batch.create_index("ix_outbox_external", ["platform", "external_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox_message") as batch:
        batch.drop_index("ix_outbox_external")
        batch.drop_column("external_id")
