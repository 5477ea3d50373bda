"""reusable links (limits, quantity, customer-chosen amounts, split bills, counters), checkout
reservations and promo codes

Revision ID: 0014_reusable_links
Revises: 0015_invoices_series
Create Date: 2026-12-01 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.models import UTCDateTime

revision: str = "0014_reusable_links"
down_revision: str | Sequence[str] | None = "0015_invoices_series"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LINK_COLUMNS = (
    ("reusable", sa.Boolean(), False, sa.false()),
    ("max_payments", sa.Integer(), True, None),
    ("stock", sa.Integer(), True, None),
    ("max_total_minor", sa.BigInteger(), True, None),
    ("quantity_min", sa.Integer(), True, None),
    ("quantity_max", sa.Integer(), True, None),
    ("amount_mode", sa.String(length=20), False, "fixed"),
    ("min_amount_minor", sa.BigInteger(), True, None),
    ("max_amount_minor", sa.BigInteger(), True, None),
    ("suggested_amounts", sa.JSON(), True, None),
    ("split_ways", sa.Integer(), True, None),
    ("payments_count", sa.Integer(), False, "0"),
    ("units_sold", sa.Integer(), False, "0"),
    ("amount_collected_minor", sa.BigInteger(), False, "0"),
    ("payments_reserved", sa.Integer(), False, "0"),
    ("units_reserved", sa.Integer(), False, "0"),
    ("amount_reserved_minor", sa.BigInteger(), False, "0"),
)


def upgrade() -> None:
    with op.batch_alter_table("payment_link") as batch:
        for name, type_, nullable, default in _LINK_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=nullable, server_default=default))
    op.create_table(
        "link_reservation",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("link_id", sa.String(length=40), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("discount_minor", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("promo_code", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=True),
        sa.Column("checkout_ref", sa.String(length=200), nullable=True),
        sa.Column("account", sa.String(length=40), nullable=True),
        sa.Column("payment_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(["link_id"], ["payment_link.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_link_reservation_link_status", "link_reservation", ["link_id", "status"], unique=False)
    op.create_index("ix_link_reservation_expires_at", "link_reservation", ["expires_at"], unique=False)
    op.create_index("ix_link_reservation_checkout_ref", "link_reservation", ["checkout_ref"], unique=False)
    op.create_table(
        "promo_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("percent_off_bp", sa.Integer(), nullable=True),
        sa.Column("amount_off_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("max_redemptions", sa.Integer(), nullable=True),
        sa.Column("times_redeemed", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("redemptions_held", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("link_ids", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("merchant_id", "code"),
    )


def downgrade() -> None:
    op.drop_table("promo_code")
    op.drop_index("ix_link_reservation_checkout_ref", table_name="link_reservation")
    op.drop_index("ix_link_reservation_expires_at", table_name="link_reservation")
    op.drop_index("ix_link_reservation_link_status", table_name="link_reservation")
    op.drop_table("link_reservation")
    with op.batch_alter_table("payment_link") as batch:
        for name, *_ in reversed(_LINK_COLUMNS):
            batch.drop_column(name)
