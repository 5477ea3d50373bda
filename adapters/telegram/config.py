"""What the Telegram adapter reads from `[telegram]`, and the start-up check of it. No PTB import here:
the plug-in runs the check when it builds the sender."""

from __future__ import annotations

import re
from typing import Protocol

from pydantic import SecretStr

from core.settings import reveal

# Telegram's rule for setWebhook's secret_token: 1-256 characters of A-Z a-z 0-9 _ -.
_SECRET_FORMAT = re.compile(r"[A-Za-z0-9_-]{1,256}")


class TelegramOptions(Protocol):
    """The `[telegram]` section (adapters/telegram/plugin.TelegramSettings), or a stand-in in tests."""

    @property
    def token(self) -> SecretStr | str: ...
    @property
    def mode(self) -> str: ...  # "webhook" or "polling"
    @property
    def webhook_secret(self) -> SecretStr | str: ...
    @property
    def api_base_url(self) -> str: ...
    @property
    def send_qr(self) -> bool: ...


class TelegramConfigError(ValueError):
    """A `[telegram]` setting that makes running the bot impossible or unsafe; the message names the key."""


def check_options(options: TelegramOptions) -> None:
    """Refuse to run a bot that could not work, or that could be fed forged updates."""
    if not reveal(options.token):
        raise TelegramConfigError("telegram.token is empty: create a bot with @BotFather and set its token")
    if options.mode == "webhook":
        secret = reveal(options.webhook_secret)
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
