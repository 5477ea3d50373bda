"""languages: a member's chosen language and the language of each chat alerts are sent to

Revision ID: 0018_i18n
Revises: 0014_reusable_links
Create Date: 2026-12-01 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_i18n"
down_revision: str | Sequence[str] | None = "0014_reusable_links"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("member") as batch:
        batch.add_column(sa.Column("language", sa.String(length=16), nullable=True))
    with op.batch_alter_table("chat_target") as batch:
        batch.add_column(sa.Column("language", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chat_target") as batch:
        batch.drop_column("language")
    with op.batch_alter_table("member") as batch:
        batch.drop_column("language")
