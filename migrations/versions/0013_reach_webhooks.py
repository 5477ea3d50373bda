"""merchant webhooks (endpoints, delivery attempts), customer contacts (unsubscribe tokens, opt-outs) and
links' reminder times

Revision ID: 0013_reach_webhooks
Revises: 0012_dashboard_sessions_branding
Create Date: 2026-12-01 13:30:00

Deliveries themselves are outbox_message rows (platform "webhook"); webhook_attempt keeps each HTTP try.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.models import UTCDateTime

revision: str = "0013_reach_webhooks"
down_revision: str | Sequence[str] | None = "0012_dashboard_sessions_branding"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_endpoint",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("secret_sealed", sa.String(length=400), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("failing_since", UTCDateTime(), nullable=True),
        sa.Column("disabled_at", UTCDateTime(), nullable=True),
        sa.Column("disabled_reason", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_endpoint_merchant_id", "webhook_endpoint", ["merchant_id"], unique=False)
    op.create_table(
        "webhook_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.String(length=40), nullable=False),
        sa.Column("attempted_at", UTCDateTime(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_attempt_delivery", "webhook_attempt", ["delivery_id", "id"], unique=False)
    op.create_table(
        "customer_contact",
        sa.Column("token", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("opted_out_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("token"),
        sa.UniqueConstraint("merchant_id", "channel", "address"),
    )

    with op.batch_alter_table("payment_link", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reminded_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("auto_reminded_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payment_link", schema=None) as batch_op:
        batch_op.drop_column("auto_reminded_at")
        batch_op.drop_column("reminded_at")
    op.drop_table("customer_contact")
    op.drop_index("ix_webhook_attempt_delivery", table_name="webhook_attempt")
    op.drop_table("webhook_attempt")
    op.drop_index("ix_webhook_endpoint_merchant_id", table_name="webhook_endpoint")
    op.drop_table("webhook_endpoint")
