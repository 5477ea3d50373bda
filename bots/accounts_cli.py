"""`paylinks merchant set-provider | show` and `paylinks rotate-secrets`: shops' own provider accounts and
the secrets stored for them.

Secrets are read from standard input as `name=value` lines, never from the command line (argv is visible
to every user of the machine and kept in shell histories), and nothing prints more of a secret than its
last four characters.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from adapters import registry
from bots.config import Settings

# Options a provider's own account may take, by the plug-in's name of them.
ACCOUNT_OPTIONS = {"environment": "--environment", "country_code": "--country"}


class SecretsInputError(ValueError):
    """Standard input did not hold the expected name=value lines; the message names the line, not the value."""


def read_secrets(lines: Iterable[str], names: tuple[str, ...]) -> dict[str, str]:
    """`name=value` lines -> {name: value}; blank lines and # comments skipped; each of `names` required."""
    found: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, sep, value = text.partition("=")
        name = name.strip()
        if not sep:
            raise SecretsInputError(f"standard input line {number}: expected name=value, e.g. {names[0]}=…")
        if name not in names:
            raise SecretsInputError(f"standard input line {number}: unknown name {name[:40]!r} "
                                    f"(expected: {', '.join(names)})")
        if name in found:
            raise SecretsInputError(f"standard input line {number}: {name} given twice")
        if not value.strip():
            raise SecretsInputError(f"standard input line {number}: {name} is empty")
        found[name] = value.strip()
    missing = [name for name in names if name not in found]
    if missing:
        raise SecretsInputError(f"missing on standard input: {', '.join(f'{name}=…' for name in missing)} "
                                "(one name=value per line)")
    return found


def _stdin_lines(stream: TextIO, names: tuple[str, ...]) -> list[str]:
    if stream.isatty():
        print(f"paylinks: type {', '.join(f'{name}=…' for name in names)}, one per line, then Ctrl-D",
              file=sys.stderr)
    return stream.readlines()


async def cmd_set_provider(settings: Settings, args: argparse.Namespace) -> int:
    from adapters.payments.accounts import AccountError
    from bots.cli import UsageError, _audit
    from bots.services import open_services
    from core.provider_accounts import ShopAccount

    plugin = registry.payment_providers()[args.provider]
    given = {"environment": args.environment, "country_code": args.country.upper() if args.country else None}
    options: dict[str, Any] = {}
    for name, value in given.items():
        if value is None:
            continue
        if name not in plugin.account_options:
            raise UsageError(f"{ACCOUNT_OPTIONS[name]} does not apply to {args.provider}")
        options[name] = value
    for name in plugin.account_options:
        options.setdefault(name, plugin.account_defaults.get(name))
    async with open_services(settings) as services:
        merchant = await services.merchants.get(args.id)
        if merchant is None:
            raise UsageError(f"no merchant with id {args.id} (see `paylinks merchant list`)")
        secrets: dict[str, str] = {}
        if plugin.account_secrets:
            try:
                secrets = read_secrets(_stdin_lines(sys.stdin, plugin.account_secrets), plugin.account_secrets)
            except SecretsInputError as exc:
                raise UsageError(str(exc)) from None
        account = ShopAccount(merchant_id=merchant.id, provider=args.provider, version=0, secrets=secrets,
                              environment=options.get("environment"), country_code=options.get("country_code"))
        try:
            await services.providers.verify(account)
        except AccountError as exc:
            raise UsageError(str(exc)) from None
        previous = await services.accounts.get(merchant.id)
        await services.accounts.set(merchant.id, args.provider, secrets=secrets,
                                    environment=account.environment, country_code=account.country_code)
        await _audit(services, merchant.id, "provider.changed", provider=args.provider,
                     previous=previous.provider if previous is not None
                     else f"{services.providers.default.name} (deployment)",
                     environment=account.environment or "", country=account.country_code or "",
                     secrets_changed=", ".join(sorted(
                         name for name in secrets if previous is None or previous.provider != args.provider
                         or previous.secrets.get(name) != secrets[name])) or "none")
    if plugin.account_secrets:
        webhook_url = services.public_base_url + plugin.shop_webhook_path(merchant.id)
        print(f"{merchant.id} now takes payments through its own {args.provider} account; "
              f"register this webhook URL at {args.provider}: {webhook_url}")
    else:
        print(f"{merchant.id} now takes payments through {args.provider} (the deployment's; no keys of its own, "
              "no webhook to register)")
    return 0


async def cmd_show(settings: Settings, args: argparse.Namespace) -> int:
    from bots.cli import UsageError
    from bots.services import open_services

    async with open_services(settings) as services:
        merchant = await services.merchants.get(args.id)
        if merchant is None:
            raise UsageError(f"no merchant with id {args.id} (see `paylinks merchant list`)")
        account = await services.accounts.get(merchant.id)
    rows: list[tuple[str, str]] = [("id", merchant.id), ("name", merchant.name),
                                   ("currency", merchant.default_currency), ("locale", merchant.locale)]
    if account is None:
        rows.append(("provider", f"{settings.payments.provider} (the deployment's default)"))
    else:
        plugin = registry.payment_providers().get(account.provider)
        own = plugin is not None and bool(plugin.account_secrets)
        rows.append(("provider", f"{account.provider} ({'own account' if own else 'the deployment’s'})"))
        if account.environment:
            rows.append(("environment", account.environment))
        if account.country_code:
            rows.append(("country", account.country_code))
        rows.extend(account.hints().items())
        if own and plugin is not None:
            rows.append(("webhook_url", services.public_base_url + plugin.shop_webhook_path(merchant.id)))
    for name, value in rows:
        print(f"{name}\t{value}")
    return 0


async def cmd_rotate_secrets(settings: Settings, args: argparse.Namespace) -> int:
    from bots.services import open_services

    async with open_services(settings) as services:
        count = await services.accounts.rotate()
        for platform in registry.chat_platforms():
            count += await platform.rotate_secrets(services)
    print(f"re-encrypted {count} stored secret{'s' if count != 1 else ''} under security.secret_key")
    return 0


def register_merchant(merchant: Any) -> None:
    """`merchant set-provider` and `merchant show`, on the `merchant` sub-parsers."""
    providers = list(registry.payment_providers())
    set_provider = merchant.add_parser(
        "set-provider", help="give a shop its own provider account; secrets as name=value lines on stdin")
    set_provider.add_argument("id", metavar="ID")
    set_provider.add_argument("provider", choices=providers, metavar="|".join(providers))
    set_provider.add_argument("--environment", metavar="sandbox|live",
                              help="the provider's environment, where it has them (PortOne)")
    set_provider.add_argument("--country", help="two-letter country of the account, e.g. TH")
    set_provider.set_defaults(func=cmd_set_provider)
    show = merchant.add_parser("show", help="a shop and its provider (secrets: last four characters only)")
    show.add_argument("id", metavar="ID")
    show.set_defaults(func=cmd_show)


def register(sub: Any) -> None:
    sub.add_parser(
        "rotate-secrets",
        help="re-encrypt every stored secret under security.secret_key (old keys in previous_secret_keys)",
    ).set_defaults(func=cmd_rotate_secrets)
