"""shops' own provider accounts; which account each checkout and payment used; wider Slack token columns

Revision ID: 0010_shopkeys_provider_accounts
Revises: 0009_livemode
Create Date: 2026-12-01 13:40:00

Existing checkouts and payments were made on the deployment's account (account NULL). Slack token
columns widen to hold Fernet ciphertext; tokens stored in plaintext before stay readable and are
encrypted by `paylinks rotate-secrets` or when the workspace is saved again (core/secrets.py): a
migration has no key to encrypt them with.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import core.models

revision: str = "0010_shopkeys_provider_accounts"
down_revision: str | Sequence[str] | None = "0009_livemode"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TOKENS = {"slack_installations": ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token"),
           "slack_bots": ("bot_token", "bot_refresh_token")}


def upgrade() -> None:
    op.create_table(
        "provider_account",
        sa.Column("merchant_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("environment", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("country_code", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
        sa.Column("secrets", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchant.id"]),
        sa.PrimaryKeyConstraint("merchant_id"),
    )
    for table_name in ("checkout_attempt", "payment"):
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            batch_op.add_column(sa.Column("account", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))
    for table_name, columns in _TOKENS.items():
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            for column in columns:
                batch_op.alter_column(column, existing_type=sa.String(length=200), type_=sa.String(length=1000),
                                      existing_nullable=True)


def downgrade() -> None:
    for table_name, columns in _TOKENS.items():
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            for column in columns:
                batch_op.alter_column(column, existing_type=sa.String(length=1000), type_=sa.String(length=200),
                                      existing_nullable=True)
    for table_name in ("payment", "checkout_attempt"):
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            batch_op.drop_column("account")
    op.drop_table("provider_account")
