"""The `paylinks` command line. Outputs meant for scripts go to stdout alone; logs go to stderr."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bots.config import ConfigError, Settings, load_settings
from core.db import DatabaseBusy
from core.links import LinkDraft, LinkError
from core.merchants import MerchantError
from core.money import Money, MoneyError, is_currency

log = logging.getLogger("paylinks")

Command = Callable[[Settings, argparse.Namespace], Awaitable[int] | int]


class UsageError(Exception):
    """A mistake on the command line; the message is printed without a traceback."""


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # Library chatter (migration plugins, per-request access lines) would drown the event lines.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs every request URL at INFO, and Telegram Bot API URLs carry the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)


# ---------------------------------------------------------------- processes


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from aiohttp import web

    from bots.app import create_app

    host = args.host or settings.server.host
    port = args.port or settings.server.port
    log.info("serving on http://%s:%s (public %s)", host, port, settings.server.public_base_url)
    web.run_app(create_app(settings), host=host, port=port, print=None, access_log=None)
    return 0


async def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from bots.jobs import background_jobs
    from bots.services import open_services

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with open_services(settings) as services, background_jobs(services):
        log.info("worker running")
        await stop.wait()
    log.info("worker stopped")
    return 0


async def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from bots.services import open_services

    async with open_services(settings, migrate=True):
        pass
    log.info("database migrated")
    return 0


# ---------------------------------------------------------------- merchants, keys, links


async def cmd_merchant_create(settings: Settings, args: argparse.Namespace) -> int:
    from bots.services import open_services

    async with open_services(settings) as services:
        merchant = await services.merchants.create(args.name, currency=args.currency, locale=args.locale)
    print(merchant.id)
    return 0


async def cmd_merchant_list(settings: Settings, args: argparse.Namespace) -> int:
    from bots.services import open_services

    async with open_services(settings) as services:
        merchants = await services.merchants.list()
    for m in merchants:
        print(f"{m.id}\t{m.default_currency}\t{m.locale}\t{m.name}")
    return 0


async def cmd_apikey_create(settings: Settings, args: argparse.Namespace) -> int:
    from bots.services import open_services

    async with open_services(settings) as services:
        _key, secret = await services.merchants.create_api_key(args.merchant)
    print(secret)
    return 0


def split_link_words(words: Sequence[str]) -> tuple[str, str | None, str]:
    """AMOUNT [CURRENCY] DESCRIPTION…"""
    if len(words) < 2:
        raise UsageError("usage: paylinks link create --merchant ID AMOUNT [CURRENCY] DESCRIPTION")
    amount, rest = words[0], list(words[1:])
    currency = None
    if len(rest) > 1 and len(rest[0]) == 3 and is_currency(rest[0]):
        currency = rest.pop(0).upper()
    return amount, currency, " ".join(rest)


async def cmd_link_create(settings: Settings, args: argparse.Namespace) -> int:
    from bots.services import open_services

    amount, currency, description = split_link_words(args.words)
    async with open_services(settings) as services:
        merchant = await services.merchants.get(args.merchant)
        if merchant is None:
            raise UsageError(f"no merchant with id {args.merchant} (see `paylinks merchant list`)")
        money = Money.parse(amount, currency or merchant.default_currency)
        link, _ = await services.links.create(
            LinkDraft(merchant_id=merchant.id, money=money, description=description)
        )
    print(services.links.url(link.id))
    return 0


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paylinks", description="Payment links from chat.")
    parser.add_argument("--config", help="TOML settings file (default: $PAYLINKS_CONFIG, else built-in defaults)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the web app and the background jobs")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("worker", help="run only the background jobs").set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="bring the database schema up to date").set_defaults(func=cmd_migrate)

    merchant = sub.add_parser("merchant", help="manage merchants").add_subparsers(dest="action", required=True)
    create = merchant.add_parser("create", help="create a merchant; prints its id")
    create.add_argument("--name", required=True)
    create.add_argument("--currency", help="default currency, e.g. SGD")
    create.add_argument("--locale", help="e.g. en_SG")
    create.set_defaults(func=cmd_merchant_create)
    merchant.add_parser("list", help="list merchants").set_defaults(func=cmd_merchant_list)

    apikey = sub.add_parser("apikey", help="manage API keys").add_subparsers(dest="action", required=True)
    key_create = apikey.add_parser("create", help="create an API key; prints the secret once")
    key_create.add_argument("--merchant", required=True)
    key_create.set_defaults(func=cmd_apikey_create)

    link = sub.add_parser("link", help="manage payment links").add_subparsers(dest="action", required=True)
    link_create = link.add_parser("create", help="create a link; prints its URL")
    link_create.add_argument("--merchant", required=True)
    link_create.add_argument("words", nargs=argparse.REMAINDER, metavar="AMOUNT [CURRENCY] DESCRIPTION")
    link_create.set_defaults(func=cmd_link_create)

    for register in EXTRA_COMMANDS:
        register(sub)
    return parser


# Commands contributed by other modules (chat, outbox, telegram); each adds its own sub-parser.
EXTRA_COMMANDS: list[Callable[[Any], None]] = []


def _register_telegram(sub: Any) -> None:
    from adapters.telegram.cli import register

    register(sub)


EXTRA_COMMANDS.append(_register_telegram)


def _register_outbox(sub: Any) -> None:
    from bots.outbox_cli import register

    register(sub)


EXTRA_COMMANDS.append(_register_outbox)


def _register_chat(sub: Any) -> None:
    from bots.chat import register

    register(sub)


EXTRA_COMMANDS.append(_register_chat)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"paylinks: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.server.log_level)
    try:
        result = args.func(settings, args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result or 0)
    except (UsageError, MoneyError, LinkError, MerchantError, ConfigError) as exc:
        print(f"paylinks: {getattr(exc, 'message', None) or exc}", file=sys.stderr)
        return 2
    except DatabaseBusy as exc:
        print(f"paylinks: the database is busy ({exc.reason}); nothing was changed, try again in a moment "
              "(database.busy_timeout sets how long to wait)", file=sys.stderr)
        return 75  # EX_TEMPFAIL
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
