"""invoices (numbers, line items, totals), per-shop invoice settings, recurring payment series

Revision ID: 0015_invoices_series
Revises: 0016_sms_delivery
Create Date: 2026-12-01 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.models import UTCDateTime

revision: str = "0015_invoices_series"
down_revision: str | Sequence[str] | None = "0016_sms_delivery"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "invoice",
        sa.Column("link_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("line_items", sa.JSON(), nullable=True),
        sa.Column("subtotal_minor", sa.BigInteger(), nullable=False),
        sa.Column("discount_minor", sa.BigInteger(), nullable=False),
        sa.Column("tax_minor", sa.BigInteger(), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["link_id"], ["payment_link.id"]),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("link_id"),
        sa.UniqueConstraint("merchant_id", "number"),
    )
    op.create_table(
        "invoice_counter",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("merchant_id", "year"),
    )
    op.create_table(
        "invoice_settings",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("prefix", sa.String(length=12), nullable=False),
        sa.Column("address", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("merchant_id"),
    )
    op.create_table(
        "payment_series",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("every", sa.String(length=5), nullable=False),
        sa.Column("interval", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=True),
        sa.Column("until", sa.String(length=10), nullable=True),
        sa.Column("start_at", UTCDateTime(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("template", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("made", sa.Integer(), nullable=False),
        sa.Column("next_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("cancelled_at", UTCDateTime(), nullable=True),
        sa.Column("origin_platform", sa.String(length=20), nullable=True),
        sa.Column("origin_address", sa.String(length=200), nullable=True),
        sa.Column("created_by_member_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["created_by_member_id"], ["member.id"]),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_payment_series_merchant_id", "payment_series", ["merchant_id"], unique=False)
    op.create_index("ix_payment_series_status_next", "payment_series", ["status", "next_at"], unique=False)
    op.create_table(
        "series_link",
        sa.Column("series_id", sa.String(length=40), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.String(length=40), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["link_id"], ["payment_link.id"]),
        sa.ForeignKeyConstraint(["series_id"], ["payment_series.id"]),
        sa.PrimaryKeyConstraint("series_id", "period"),
    )


def downgrade() -> None:
    op.drop_table("series_link")
    op.drop_index("ix_payment_series_status_next", table_name="payment_series")
    op.drop_index("ix_payment_series_merchant_id", table_name="payment_series")
    op.drop_table("payment_series")
    op.drop_table("invoice_settings")
    op.drop_table("invoice_counter")
    op.drop_table("invoice")
