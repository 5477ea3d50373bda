"""`paylinks chat [--as NAME] [--merchant ID] [--json] [--verbose] [--log-file FILE]`: the console chat, on the
same core and database as `paylinks serve`. Interactive in a terminal; otherwise one message per input line.
Log lines stay out of the conversation: on stderr only with --verbose, in FILE with --log-file."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bots.config import Settings


def register(sub: Any) -> None:
    chat = sub.add_parser(
        "chat",
        help="chat with paylinks in the terminal (the console platform)",
        description="Talk to paylinks like a seller in a chat app. In a terminal it is interactive and "
        "prints paid alerts as they arrive; otherwise it answers one message per input line.",
    )
    chat.add_argument("--as", dest="name", metavar="NAME",
                      help="who you are in this chat (default: your login name, so the same shop each time)")
    chat.add_argument("--merchant", metavar="ID", help="act as a member of this merchant (else /start makes one)")
    chat.add_argument("--json", action="store_true",
                      help='print one JSON object per input line: {"input": …, "replies": [{"text", "buttons"}]}')
    chat.add_argument("--verbose", action="store_true", help="print log lines to stderr (hidden otherwise)")
    chat.add_argument("--log-file", metavar="FILE", help="append log lines to FILE")
    chat.set_defaults(func=cmd_chat, logs_in_the_way=True)


def _login_name() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database (containers)
        return "seller"


async def cmd_chat(settings: Settings, args: argparse.Namespace) -> int:
    from adapters.console import PLATFORM, ConsoleChat, ConsoleSender, stdin_lines
    from bots.cli import UsageError
    from bots.services import open_services
    from core.members import MemberError

    name = (args.name if args.name is not None else _login_name()).strip()
    if not name or len(name) > 120:
        raise UsageError("--as needs a name of 1 to 120 characters")
    async with open_services(settings) as services:
        sender = services.senders.get(PLATFORM)
        if not isinstance(sender, ConsoleSender):
            sender = ConsoleSender(services.db, clock=services.clock)
        chat = ConsoleChat(services.conversation, services.links, sender, name, json_mode=args.json)
        if args.merchant:
            try:
                await chat.join_merchant(args.merchant)
            except MemberError as exc:
                raise UsageError(f"{exc.message.replace('`', '')} (see `paylinks merchant list`)") from None
        if sys.stdin.isatty():
            await chat.run_interactive()
        else:
            await chat.run_lines(stdin_lines())
    return 0
