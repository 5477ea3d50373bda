"""checkout attempts: the provider checkout opened by each press of Pay, closed when the link closes

Revision ID: 0008_checkout_attempts
Revises: 0007_outbox_requeued_at
Create Date: 2026-12-01 10:00:00

A Stripe Checkout Session (or PortOne payment link) stays payable at the provider after our link is
cancelled or expires unless we close it; this table remembers which ones to close.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.models

revision: str = "0008_checkout_attempts"
down_revision: str | Sequence[str] | None = "0007_outbox_requeued_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "checkout_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("link_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("provider_ref", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", core.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_check_at", core.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("checks", sa.Integer(), nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(["link_id"], ["payment_link.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider", "provider_ref"),
    )
    op.create_index("ix_checkout_attempt_link_id", "checkout_attempt", ["link_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_checkout_attempt_link_id", table_name="checkout_attempt")
    op.drop_table("checkout_attempt")
