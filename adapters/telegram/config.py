"""What the Telegram adapter reads from `[telegram]`, and the start-up check of it. No PTB import here:
bots/config.py runs the check while loading settings."""

from __future__ import annotations

import re
from typing import Protocol

# Telegram's rule for setWebhook's secret_token: 1-256 characters of A-Z a-z 0-9 _ -.
_SECRET_FORMAT = re.compile(r"[A-Za-z0-9_-]{1,256}")


class TelegramOptions(Protocol):
    token: str
    mode: str  # "webhook" or "polling"
    webhook_secret: str
    api_base_url: str
    send_qr: bool


class TelegramConfigError(ValueError):
    """A `[telegram]` setting that makes running the bot impossible or unsafe; the message names the key."""


def check_options(options: TelegramOptions) -> None:
    """Refuse to run a bot that could not work, or that could be fed forged updates."""
    if not str(options.token):
        raise TelegramConfigError("telegram.token is empty: create a bot with @BotFather and set its token")
    if options.mode == "webhook":
        secret = str(options.webhook_secret)
        if not secret:
            raise TelegramConfigError(
                'telegram.webhook_secret is required when telegram.mode = "webhook" (it is the only proof '
                "that an update comes from Telegram); generate one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        if not _SECRET_FORMAT.fullmatch(secret):
            raise TelegramConfigError(
                "telegram.webhook_secret: Telegram accepts 1-256 characters of A-Z, a-z, 0-9, _ and - only"
            )
    elif options.mode != "polling":
        raise TelegramConfigError('telegram.mode: expected "webhook" or "polling"')
    if not options.api_base_url.startswith(("https://", "http://")):
        raise TelegramConfigError("telegram.api_base_url: expected an http(s) URL such as https://api.telegram.org")
