"""inbound deliveries: one row per handled chat delivery, so a redelivered message makes nothing twice

Revision ID: 0004_inbound_deliveries
Revises: 0003_merge
Create Date: 2026-12-01 09:00:00

Telegram update ids (per bot), Slack request and event ids and Twilio MessageSids are recorded in the
transaction of what the message caused (core/deliveries.py); the received_at index serves the sweeper.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.models

revision: str = "0004_inbound_deliveries"
down_revision: str | Sequence[str] | None = "0003_merge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbound_deliveries",
        sa.Column("platform", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("delivery_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("received_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("platform", "delivery_id"),
    )
    op.create_index("ix_inbound_deliveries_received_at", "inbound_deliveries", ["received_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_inbound_deliveries_received_at", table_name="inbound_deliveries")
    op.drop_table("inbound_deliveries")
