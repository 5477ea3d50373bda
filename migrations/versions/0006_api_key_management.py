"""api key management: each key's prefix (pl_test_ / pl_live_) and when it was last used

Revision ID: 0006_api_key_management
Revises: 0005_chat_question
Create Date: 2026-12-01 09:00:00

`paylinks apikey list` shows both. Keys made before this revision were all `pl_live_` keys.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.models

revision: str = "0006_api_key_management"
down_revision: str | Sequence[str] | None = "0005_chat_question"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prefix", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False,
                                      server_default="pl_live_"))
        batch_op.add_column(sa.Column("last_used_at", core.models.UTCDateTime(timezone=True), nullable=True))
    # The default only filled the existing rows; new keys always name their prefix.
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.alter_column("prefix", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("prefix")
