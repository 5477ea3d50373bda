"""The `paylinks` command line. Outputs meant for scripts go to stdout alone; logs go to stderr."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bots.logs import configure_logging
from core.money import Money, MoneyError, is_currency

if TYPE_CHECKING:
    from bots.config import Settings

# The settings, the database and the services are imported where a command needs them (main() after
# parsing, and the commands): `paylinks --help` and a mistyped command then answer without loading the
# plug-ins, SQLAlchemy or any platform's SDK (tests/bots/test_startup.py keeps it so).

log = logging.getLogger("paylinks")

Command = Callable[["Settings", argparse.Namespace], Awaitable[int] | int]


class UsageError(Exception):
    """A mistake on the command line; the message is printed without a traceback."""


# ---------------------------------------------------------------- processes


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from aiohttp import web

    from bots.app import create_app

    host = args.host or settings.server.host
    port = args.port or settings.server.port
    # Bound before the app starts, so a busy port is one line and nothing (migrations, bots) has started.
    listeners = listen(host, port, port_from_flag=args.port is not None, host_from_flag=args.host is not None)
    log.info("serving on http://%s:%s (public %s)", host, port, settings.server.public_base_url)
    app = create_app(settings)
    app.on_startup.append(_settled)  # after every cleanup_ctx start (they are on_startup's first entry)
    web.run_app(app, sock=listeners, print=None, access_log=None)
    return 0


async def _settled(app: object) -> None:
    """What the app built while starting (templates, routes, the plug-ins' parts) lives as long as the process:
    frozen, so the collector's full passes skip it instead of pausing every request for ~25 ms each."""
    import gc

    gc.collect()
    gc.freeze()


def flag_overrides(args: argparse.Namespace) -> dict[str, str]:
    """The environment with `serve --host/--port` as the settings they stand for, so an unset
    server.public_base_url follows them like it follows the settings."""
    env = dict(os.environ)
    if getattr(args, "host", None) is not None:
        env["PAYLINKS_SERVER__HOST"] = args.host
    if getattr(args, "port", None) is not None:
        env["PAYLINKS_SERVER__PORT"] = str(args.port)
    return env


def listen(host: str, port: int, *, port_from_flag: bool = False, host_from_flag: bool = False) -> list[socket.socket]:
    """Listening sockets for every address of `host` (as aiohttp's TCPSite binds them), or a UsageError
    that names the port and the setting to change."""
    port_setting = "--port" if port_from_flag else "server.port (PAYLINKS_SERVER__PORT)"
    host_setting = "--host" if host_from_flag else "server.host (PAYLINKS_SERVER__HOST)"
    try:
        # An empty host means every interface, as in aiohttp.
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise UsageError(f"cannot listen on {host!r}: {exc}; check {host_setting}") from None
    listeners: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(addresses):
            sock = socket.socket(family, kind, proto)
            listeners.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                # As asyncio does: an IPv6 socket must not also claim the IPv4 port bound next to it.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:
        for sock in listeners:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} is already in use on {host}; choose another with {port_setting}") from None
        if exc.errno == errno.EACCES:
            raise UsageError(f"no permission to listen on port {port}; choose one above 1023 with {port_setting}"
                             ) from None
        raise UsageError(f"cannot listen on {host} port {port}: {exc.strerror}; check {host_setting} and "
                         f"{port_setting}") from None
    return listeners


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
        merchants = await services.merchants.list_merchants()
    for m in merchants:
        print(f"{m.id}\t{m.default_currency}\t{m.locale}\t{m.name}")
    return 0


async def cmd_apikey_create(settings: Settings, args: argparse.Namespace) -> int:
    from bots.services import open_services

    async with open_services(settings) as services:
        # A shop taking pretend payments (the sandbox) gets pl_test_ keys; one taking real money pl_live_
        # (through its own account when it has one, else the deployment's provider).
        provider = (await services.providers.for_merchant(args.merchant)).provider
        key, secret = await services.merchants.create_api_key(args.merchant, test=provider.test_mode)
        await _audit(services, args.merchant, "key.created", key_id=key.id)
    print(secret)
    return 0


async def _audit(services: Any, merchant_id: str, action: str, **detail: Any) -> None:
    from core.audit import Actor, AuditLog

    await AuditLog(services.db).record(merchant_id, action, Actor("operator (CLI)", "cli"), **detail)


async def cmd_dashboard_link(settings: Settings, args: argparse.Namespace) -> int:
    from bots.services import open_services
    from core.audit import Actor, AuditLog
    from core.signin import SigninError

    async with open_services(settings) as services:
        if await services.merchants.get(args.merchant) is None:
            raise UsageError(f"no merchant with id {args.merchant} (see `paylinks merchant list`)")
        try:
            url = await services.conversation.signins.create_link(args.merchant, args.member)
        except SigninError as exc:
            raise UsageError(f"{exc.message} (see the team page or `paylinks chat`)") from None
        await AuditLog(services.db).record(args.merchant, "signin.link", Actor("operator (CLI)", "cli", args.member))
    print(url)
    return 0


KEY_COLUMNS = ("key_id", "prefix", "last4", "created", "last_used", "revoked")


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else "-"


async def cmd_apikey_list(settings: Settings, args: argparse.Namespace) -> int:
    from bots.services import open_services

    async with open_services(settings) as services:
        keys = await services.merchants.list_api_keys(args.merchant)
    # One tab-separated line per key, for scripts too; the column names go to stderr.
    print("\t".join(KEY_COLUMNS), file=sys.stderr)
    for key in keys:
        print("\t".join([key.id, key.prefix, key.hint, _when(key.created_at), _when(key.last_used_at),
                         _when(key.revoked_at)]))
    return 0


async def cmd_apikey_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from bots.services import open_services

    async with open_services(settings) as services:
        key, revoked = await services.merchants.revoke_api_key(args.key_id)
        if revoked:
            await _audit(services, key.merchant_id, "key.revoked", key_id=key.id)
    if revoked:
        print(f"revoked {key.id}")
    else:
        print(f"{key.id} was revoked already, at {_when(key.revoked_at)}")
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
    from core.links import LinkDraft

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


async def cmd_link_refund(settings: Settings, args: argparse.Namespace) -> int:
    """Refund a link's payment through the provider; asks on a terminal, --yes elsewhere. Prints the refund."""
    from bots.services import open_services
    from core.money import format_money
    from core.refunds import RefundRequest

    if not args.yes and not sys.stdin.isatty():
        raise UsageError("--yes is required when standard input is not a terminal (a refund cannot be undone)")
    async with open_services(settings) as services:
        link = await services.links.get(args.link_id.strip().lower())
        if link is None:
            raise UsageError(f"no link with id {args.link_id}")
        choices = await services.refunds.refundable(link.id)
        if not choices:
            raise UsageError(f"link {link.id} has nothing to refund (it is {services.links.status_of(link).value})")
        if len(choices) > 1:
            raise UsageError(f"link {link.id} has {len(choices)} refundable payments; refund them from the API "
                             "with payment_id (" + ", ".join(c.payment.id for c in choices) + ")")
        chosen = choices[0]
        amount_minor = Money.parse(args.amount, link.currency).amount_minor if args.amount else \
            chosen.refundable_minor
        if not args.yes:
            merchant = await services.merchants.get(link.merchant_id)
            locale = merchant.locale if merchant is not None else "en"
            to = f" to {chosen.payment.payer_name}" if chosen.payment.payer_name else ""
            question = (f"Refund {format_money(amount_minor, link.currency, locale)}{to} for {link.description}? "
                        "This cannot be undone. [y/N] ")
            answer = await asyncio.to_thread(input, question)
            if answer.strip().casefold() not in ("y", "yes"):
                print("nothing refunded", file=sys.stderr)
                return 1
        refund, created = await services.refunds.request(RefundRequest(
            link_id=link.id, merchant_id=link.merchant_id, amount_minor=amount_minor,
            payment_id=chosen.payment.id, requested_by="cli", reason=args.reason))
        if created:
            await _audit(services, link.merchant_id, "link.refunded", link_id=link.id, refund_id=refund.id,
                         amount=Money(refund.amount_minor, refund.currency).amount_str(), currency=refund.currency,
                         status=str(refund.status))
        drain = getattr(services.provider, "drain", None)
        if drain is not None:  # the sandbox's refund webhook must leave before this process ends
            await drain()
    print(f"{refund.id} {refund.status} {Money(refund.amount_minor, refund.currency).amount_str()} {refund.currency}"
          + (f" ({refund.failure_reason})" if refund.failure_reason else ""))
    return 0 if refund.status != "failed" else 1


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
    from bots.accounts_cli import register_merchant

    register_merchant(merchant)

    apikey = sub.add_parser("apikey", help="manage API keys").add_subparsers(dest="action", required=True)
    key_create = apikey.add_parser("create", help="create an API key; prints the secret once")
    key_create.add_argument("--merchant", required=True)
    key_create.set_defaults(func=cmd_apikey_create)
    key_list = apikey.add_parser(
        "list", help="a merchant's keys, one per line: key_id, prefix, last4, created, last_used, revoked")
    key_list.add_argument("--merchant", required=True)
    key_list.set_defaults(func=cmd_apikey_list)
    key_revoke = apikey.add_parser("revoke", help="revoke a key by its id (see `apikey list`); refused at once")
    key_revoke.add_argument("key_id", metavar="KEY_ID")
    key_revoke.set_defaults(func=cmd_apikey_revoke)

    link = sub.add_parser("link", help="manage payment links").add_subparsers(dest="action", required=True)
    link_create = link.add_parser("create", help="create a link; prints its URL")
    link_create.add_argument("--merchant", required=True)
    link_create.add_argument("words", nargs=argparse.REMAINDER, metavar="AMOUNT [CURRENCY] DESCRIPTION")
    link_create.set_defaults(func=cmd_link_create)
    link_refund = link.add_parser("refund", help="refund a link's payment (all of it, or AMOUNT); prints the refund")
    link_refund.add_argument("link_id", metavar="ID")
    link_refund.add_argument("amount", nargs="?", metavar="AMOUNT", help="e.g. 10.50; default: all that is left")
    link_refund.add_argument("--yes", action="store_true", help="do not ask (required without a terminal)")
    link_refund.add_argument("--reason", help="why, for the timeline")
    link_refund.set_defaults(func=cmd_link_refund)

    from bots.import_cli import register as register_link_import

    register_link_import(link)
    dashboard = sub.add_parser("dashboard-link", help="print a one-time dashboard sign-in link (10 minutes)")
    dashboard.add_argument("--merchant", required=True)
    dashboard.add_argument("--member", type=int, default=None,
                           help="sign in as this member (their role); default: as the shop's owner")
    dashboard.set_defaults(func=cmd_dashboard_link)

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


def _register_secrets(sub: Any) -> None:
    from bots.accounts_cli import register

    register(sub)


EXTRA_COMMANDS.append(_register_secrets)


def log_targets(args: argparse.Namespace) -> dict[str, Any]:
    """Logs go to stderr, except for a command that holds a conversation on the terminal (`chat` sets
    `logs_in_the_way`): there only with --verbose, and/or to --log-file."""
    if not getattr(args, "logs_in_the_way", False):
        return {"stream": sys.stderr}
    return {"stream": sys.stderr if args.verbose else None, "file": args.log_file}


def main(argv: Sequence[str] | None = None) -> int:
    from bots import startup

    startup.hold_collector()  # until build_services is done (bots/startup.py)
    parser = build_parser()
    args = parser.parse_args(argv)
    from bots.config import ConfigError, load_settings
    from core.db import DatabaseBusy
    from core.links import LinkError
    from core.merchants import MerchantError
    from core.secrets import SecretsError

    try:
        settings = load_settings(args.config, env=flag_overrides(args))
    except ConfigError as exc:
        print(f"paylinks: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        configure_logging(settings.server.log_level, **log_targets(args))
    except OSError as exc:
        print(f"paylinks: cannot write the log file {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        result = args.func(settings, args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result or 0)
    except (UsageError, MoneyError, LinkError, MerchantError, ConfigError, SecretsError) as exc:
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
