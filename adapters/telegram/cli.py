"""`paylinks telegram set-webhook | delete-webhook | webhook-info` (registered in bots/cli.py).

PTB is imported inside the commands so that `paylinks --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any
from urllib.parse import urlsplit

from adapters.telegram.config import TelegramConfigError, check_options
from core.settings import reveal

OFFICIAL_API = "api.telegram.org"
# https://core.telegram.org/bots/api#setwebhook
WEBHOOK_PORTS = (443, 80, 88, 8443)


def register(sub: Any) -> None:
    parser = sub.add_parser("telegram", help="Telegram bot set-up")
    actions = parser.add_subparsers(dest="action", required=True)
    set_webhook = actions.add_parser(
        "set-webhook", help="tell Telegram to post updates to {public_base_url}/telegram/webhook"
    )
    set_webhook.add_argument("--drop-pending-updates", action="store_true",
                             help="forget updates Telegram is still holding for the bot")
    set_webhook.set_defaults(func=cmd_set_webhook)
    actions.add_parser("delete-webhook", help="stop webhook delivery (before switching to polling)").set_defaults(
        func=cmd_delete_webhook
    )
    actions.add_parser("webhook-info", help="what Telegram knows about the webhook").set_defaults(
        func=cmd_webhook_info
    )


def webhook_url(settings: Any) -> str:
    from adapters.telegram.bot import WEBHOOK_PATH

    return settings.server.public_base_url.rstrip("/") + WEBHOOK_PATH


def check_webhook_url(url: str, api_base_url: str) -> None:
    """Telegram's own servers only deliver to HTTPS on a few ports (a self-hosted Bot API server is freer)."""
    if urlsplit(api_base_url).hostname != OFFICIAL_API:
        return
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise TelegramConfigError(
            f"server.public_base_url must be https:// for Telegram webhooks (got {parts.scheme}://); "
            'for development without a public HTTPS URL use telegram.mode = "polling"'
        )
    port = parts.port or 443
    if port not in WEBHOOK_PORTS:
        raise TelegramConfigError(f"Telegram delivers webhooks only to ports 443, 80, 88 and 8443 (got {port})")


def _fail(message: str) -> int:
    print(f"paylinks: {message}", file=sys.stderr)
    return 2


async def cmd_set_webhook(settings: Any, args: argparse.Namespace) -> int:
    from telegram.error import TelegramError

    from adapters.telegram.bot import ALLOWED_UPDATES
    from adapters.telegram.sender import build_bot, redact

    options = settings.telegram
    url = webhook_url(settings)
    try:
        check_options(options)
        if options.mode != "webhook":
            raise TelegramConfigError(
                'telegram.mode is "polling": a webhook would stop polling; set telegram.mode = "webhook" first'
            )
        check_webhook_url(url, options.api_base_url)
    except TelegramConfigError as exc:
        return _fail(str(exc))
    try:
        async with build_bot(options) as bot:
            await bot.set_webhook(
                url,
                secret_token=reveal(options.webhook_secret),
                allowed_updates=ALLOWED_UPDATES,
                drop_pending_updates=args.drop_pending_updates,
            )
    except TelegramError as exc:
        return _fail(f"Telegram refused the webhook: {redact(exc.message, reveal(options.token))}")
    print(url)
    return 0


async def cmd_delete_webhook(settings: Any, args: argparse.Namespace) -> int:
    from telegram.error import TelegramError

    from adapters.telegram.sender import build_bot, redact

    options = settings.telegram
    if not reveal(options.token):
        return _fail("telegram.token is empty")
    try:
        async with build_bot(options) as bot:
            await bot.delete_webhook()
    except TelegramError as exc:
        return _fail(f"Telegram refused: {redact(exc.message, reveal(options.token))}")
    print("webhook deleted")
    return 0


async def cmd_webhook_info(settings: Any, args: argparse.Namespace) -> int:
    from telegram.error import TelegramError

    from adapters.telegram.sender import build_bot, redact

    options = settings.telegram
    if not reveal(options.token):
        return _fail("telegram.token is empty")
    try:
        async with build_bot(options) as bot:
            info = await bot.get_webhook_info()
    except TelegramError as exc:
        return _fail(f"Telegram refused: {redact(exc.message, reveal(options.token))}")
    print(f"url\t{info.url or '(none: polling or not set)'}")
    print(f"pending_update_count\t{info.pending_update_count}")
    print(f"allowed_updates\t{','.join(info.allowed_updates or ())}")
    if info.last_error_message:
        print(f"last_error\t{info.last_error_message}")
    return 0
