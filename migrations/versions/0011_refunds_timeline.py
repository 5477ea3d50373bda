"""refunds: refunded amounts on payments, the refund table, and link_events for the timeline

Revision ID: 0010_refunds_timeline
Revises: 0010_shopkeys_provider_accounts
Create Date: 2026-12-01 13:30:00

Payments made before this revision have nothing refunded (0) and no provider payment id (asked of the
provider when first refunded).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.models

revision: str = "0010_refunds_timeline"
down_revision: str | Sequence[str] | None = "0010_shopkeys_provider_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("amount_refunded_minor", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("payment_ref", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.add_column(sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True))
    op.create_table(
        "refund",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("payment_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("link_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("merchant_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("requested_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("requested_by_name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("provider_ref", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("failure_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("idempotency_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("request_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("created_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", core.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["link_id"], ["payment_link.id"]),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.ForeignKeyConstraint(["payment_id"], ["payment.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("merchant_id", "idempotency_key"),
    )
    op.create_index("ix_refund_payment_id", "refund", ["payment_id"], unique=False)
    op.create_index("ix_refund_link_id", "refund", ["link_id"], unique=False)
    op.create_index("ix_refund_provider_ref", "refund", ["provider_ref"], unique=False)
    op.create_table(
        "link_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("link_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("dedupe_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.ForeignKeyConstraint(["link_id"], ["payment_link.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key"),
    )
    op.create_index("ix_link_events_link_at", "link_events", ["link_id", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_link_events_link_at", table_name="link_events")
    op.drop_table("link_events")
    op.drop_index("ix_refund_provider_ref", table_name="refund")
    op.drop_index("ix_refund_link_id", table_name="refund")
    op.drop_index("ix_refund_payment_id", table_name="refund")
    op.drop_table("refund")
    with op.batch_alter_table("payment", schema=None) as batch_op:
        batch_op.drop_column("channel")
        batch_op.drop_column("payment_ref")
        batch_op.drop_column("amount_refunded_minor")
