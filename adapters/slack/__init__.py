"""Slack: slash commands, link messages, paid alerts, App Home and unfurls on slack-bolt (AsyncApp).

- plugin.py — the plug-in (adapters/registry.py): settings section, sender, routes, pacing
- parse.py  — pure: Slack payloads → IncomingMessage, addresses "TEAM:CHANNEL[:THREAD_TS]"
- render.py — pure: Reply / link summaries → Block Kit
- sender.py — SlackSender (ChatSender) and the error classification
- stores.py — slack_sdk's SQLAlchemy installation/state stores on the paylinks database
- home.py   — App Home and unfurl data from the database
- bot.py    — the AsyncApp, its listeners and the aiohttp routes

The names below load on first use, so loading settings (which imports plugin.py) does not load Bolt.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "SLACK_ADAPTER": "adapters.slack.bot",
    "SlackAdapter": "adapters.slack.bot",
    "SlackConfigError": "adapters.slack.bot",
    "SlackOptions": "adapters.slack.bot",
    "build_sender": "adapters.slack.bot",
    "check_settings": "adapters.slack.bot",
    "options_from_settings": "adapters.slack.bot",
    "SlackSender": "adapters.slack.sender",
    "thread_address": "adapters.slack.sender",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'adapters.slack' has no attribute {name!r}")
