"""console messages: what the console chat platform "sends" (paid alerts and replies)

Revision ID: 0002_console
Revises: 0001
Create Date: 2026-11-26 13:00:00

A running `paylinks chat` polls the rows of its address that were not shown yet and prints them, so an
alert that the outbox delivers to the console (from `paylinks serve` in another terminal) appears there.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.models

revision: str = "0002_console"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("edit_of", sa.Integer(), nullable=True),
        sa.Column("created_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("shown_at", core.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_console_message_unshown", "console_message", ["address", "shown_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_console_message_unshown", table_name="console_message")
    op.drop_table("console_message")
