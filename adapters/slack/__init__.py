"""Slack: slash commands, link messages, paid alerts, App Home and unfurls on slack-bolt (AsyncApp).

- parse.py  — pure: Slack payloads → IncomingMessage, addresses "TEAM:CHANNEL[:THREAD_TS]"
- render.py — pure: Reply / link summaries → Block Kit
- sender.py — SlackSender (ChatSender) and the error classification
- stores.py — slack_sdk's SQLAlchemy installation/state stores on the paylinks database
- home.py   — App Home and unfurl data from the database
- bot.py    — the AsyncApp, its listeners and the aiohttp routes
"""

from adapters.slack.bot import (
    SLACK_ADAPTER,
    SlackAdapter,
    SlackConfigError,
    SlackOptions,
    build_sender,
    check_settings,
    options_from_settings,
)
from adapters.slack.sender import SlackSender, thread_address

__all__ = [
    "SLACK_ADAPTER",
    "SlackAdapter",
    "SlackConfigError",
    "SlackOptions",
    "SlackSender",
    "build_sender",
    "check_settings",
    "options_from_settings",
    "thread_address",
]
