"""Join the console and Slack branches so later revisions have one parent.

Revision ID: 0003_merge
Revises: 0002_console, 0002_slack
Create Date: 2026-11-26 12:40:00
"""

from collections.abc import Sequence

revision: str = "0003_merge"
down_revision: str | Sequence[str] | None = ("0002_console", "0002_slack")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
