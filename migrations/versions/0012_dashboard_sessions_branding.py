"""The seller's dashboard: sign-in links, sessions, the audit log, branding and logos

Revision ID: 0012_dashboard_sessions_branding
Revises: 0010_refunds_timeline (file 0011_refunds_timeline.py)
Create Date: 2026-12-01 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.models import UTCDateTime

revision: str = "0012_dashboard_sessions_branding"
down_revision: str | Sequence[str] | None = "0010_refunds_timeline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("merchant", schema=None) as batch_op:
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("support_email", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("support_phone", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("logo_version", sa.String(length=16), nullable=True))
    op.create_table(
        "merchant_logo",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("png", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("merchant_id"),
    )
    op.create_table(
        "dashboard_signin",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"]),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_table(
        "dashboard_session",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"]),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    op.create_index("ix_dashboard_session_merchant_id", "dashboard_session", ["merchant_id"], unique=False)
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("platform", sa.String(length=20), nullable=True),
        sa.Column("address", sa.String(length=200), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_event_merchant_at", "audit_event", ["merchant_id", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_audit_event_merchant_at", table_name="audit_event")
    op.drop_table("audit_event")
    op.drop_index("ix_dashboard_session_merchant_id", table_name="dashboard_session")
    op.drop_table("dashboard_session")
    op.drop_table("dashboard_signin")
    op.drop_table("merchant_logo")
    with op.batch_alter_table("merchant", schema=None) as batch_op:
        batch_op.drop_column("logo_version")
        batch_op.drop_column("support_phone")
        batch_op.drop_column("support_email")
        batch_op.drop_column("timezone")
