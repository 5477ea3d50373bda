"""The console: a chat platform in the terminal, to try paylinks with no accounts anywhere.

`paylinks chat --as NAME` is one person chatting; their chat address is NAME. Replies are printed as plain
text (or one JSON object per input line with --json). Messages the outbox delivers to a console address
(paid alerts, edits of a link message) go through ConsoleSender into the `console_message` table; a running
interactive chat polls the rows not shown yet and prints them, so `paylinks serve` in one terminal and
`paylinks chat` in another show "✅ Paid …" when the customer pays. The chat's own replies are stored
already marked shown, so each has a MessageRef that alerts can edit, like on every other platform.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from sqlalchemy import select, update

from adapters.console_plugin import PLATFORM, PLUGIN, ConsolePlugin
from core import markup
from core.clock import Clock, utcnow
from core.db import Database
from core.links import LinkService
from core.members import Identity
from core.models import ConsoleMessage
from core.ports import IncomingMessage, MessageRef, Permanent, Reply
from core.sql import table

if TYPE_CHECKING:  # the sender alone (every database command builds it) does not need the chat core
    from core.conversation import Conversation

log = logging.getLogger("paylinks.console")

__all__ = ["PLATFORM", "PLUGIN", "ConsoleChat", "ConsolePlugin", "ConsoleSender", "incoming"]

MESSAGES = table(ConsoleMessage)
POLL_INTERVAL_S = 1.0


def incoming(name: str, text: str) -> IncomingMessage:
    """A line typed by NAME; a console chat is a private chat whose address is the person's name."""
    return IncomingMessage(platform=PLATFORM, user_id=name, address=name, text=text, display_name=name)


def render_plain(reply: Reply) -> str:
    lines = [markup.to_plain(reply.text)]
    # Answer buttons are not shown: the reply text numbers the same choices, to be typed.
    lines.extend(f"[{button.label}] {button.url}" for button in reply.buttons if button.url)
    return "\n".join(lines)


def reply_json(reply: Reply) -> dict[str, Any]:
    return {
        "text": markup.to_plain(reply.text),
        "buttons": [{"label": b.label, "url": b.url} for b in reply.buttons if b.url],
    }


@dataclass(frozen=True, slots=True)
class ConsoleItem:
    id: int
    reply: Reply
    edit_of: int | None


class ConsoleSender:
    """The ChatSender of the console platform: a message is a row that the chat prints."""

    platform = PLATFORM

    def __init__(self, db: Database, *, clock: Clock = utcnow) -> None:
        self.db = db
        self.clock = clock

    async def _store(self, address: str, reply: Reply, *, edit_of: int | None, shown: bool) -> MessageRef:
        if not address:
            raise Permanent("console address is empty")
        now = self.clock()
        async with self.db.write() as conn:
            result = await conn.execute(
                MESSAGES.insert().values(
                    address=address[:200], payload=reply.to_dict(), edit_of=edit_of, created_at=now,
                    shown_at=now if shown else None,
                )
            )
            key = result.inserted_primary_key
            assert key is not None  # None only for statements other than an INSERT
            message_id = key[0]
        return MessageRef(PLATFORM, address, str(message_id))

    async def send(self, address: str, reply: Reply) -> MessageRef:
        return await self._store(address, reply, edit_of=None, shown=False)

    async def close(self) -> None:
        """Nothing to release: messages go to the database."""

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        edit_of = int(ref.message_id) if ref.message_id.isdigit() else None
        await self._store(ref.address, reply, edit_of=edit_of, shown=False)

    async def record_shown(self, address: str, reply: Reply) -> MessageRef:
        """A reply the chat prints itself: stored as already shown, so alerts can refer to it."""
        return await self._store(address, reply, edit_of=None, shown=True)

    async def take_unshown(self, address: str) -> list[ConsoleItem]:
        """The messages for `address` nobody has printed yet, oldest first, now marked shown."""
        async with self.db.write() as conn:
            rows = (
                await conn.execute(
                    select(MESSAGES.c.id, MESSAGES.c.payload, MESSAGES.c.edit_of)
                    .where(MESSAGES.c.address == address, MESSAGES.c.shown_at.is_(None))
                    .order_by(MESSAGES.c.id)
                    .limit(100)
                )
            ).all()
            if rows:
                await conn.execute(
                    update(MESSAGES).where(MESSAGES.c.id.in_([r.id for r in rows])).values(shown_at=self.clock())
                )
        return [ConsoleItem(int(r.id), Reply.from_dict(r.payload), r.edit_of) for r in rows]


class ConsoleChat:
    """One person chatting in the terminal, on the same core and database as `paylinks serve`."""

    def __init__(
        self, conversation: Conversation, links: LinkService, sender: ConsoleSender, name: str, *,
        json_mode: bool = False, out: TextIO | None = None,
    ) -> None:
        self.conversation = conversation
        self.links = links
        self.sender = sender
        self.name = name
        self.json_mode = json_mode
        self.out = out or sys.stdout
        # Called before and after printing while a prompt is on screen (interactive mode).
        self.before_print: Callable[[], None] = lambda: None
        self.after_print: Callable[[], None] = lambda: None

    async def join_merchant(self, merchant_id: str) -> Identity:
        """--merchant: act as a member of that merchant (owner if it has none yet)."""
        return await self.conversation.members.ensure_member(merchant_id, incoming(self.name, ""))

    async def say(self, text: str) -> list[Reply]:
        replies = await self.conversation.handle(incoming(self.name, text))
        for reply in replies:
            ref = await self.sender.record_shown(self.name, reply)
            if reply.link_id:
                await self.links.attach_message(reply.link_id, ref)
        return replies

    def print_replies(self, text: str, replies: list[Reply]) -> None:
        if self.json_mode:
            line = {"input": text, "replies": [reply_json(r) for r in replies]}
            self.out.write(json.dumps(line, ensure_ascii=False) + "\n")
        else:
            for reply in replies:
                self.out.write(render_plain(reply) + "\n\n")
        self.out.flush()

    async def print_alerts(self) -> int:
        """Print what the outbox delivered to this chat since the last look; the number printed."""
        items = await self.sender.take_unshown(self.name)
        if not items:
            return 0
        self.before_print()
        for item in items:
            if self.json_mode:
                body = {"input": None, "alert": True, "edit": item.edit_of is not None,
                        "replies": [reply_json(item.reply)]}
                self.out.write(json.dumps(body, ensure_ascii=False) + "\n")
            else:
                mark = "↻ (updated) " if item.edit_of is not None else ""
                self.out.write(f"{mark}{render_plain(item.reply)}\n\n")
        self.out.flush()
        self.after_print()
        return len(items)

    async def run_lines(self, lines: AsyncIterator[str]) -> None:
        """Non-interactive: one message per input line, answers in order; blank lines are skipped."""
        pending: list[str] = []
        async for raw in lines:
            text = joined_line(pending, raw.rstrip("\r\n"))
            if text is None or not text.strip():
                continue
            self.print_replies(text, await self.say(text))

    async def run_interactive(self, prompt: str | None = None, poll_interval: float = POLL_INTERVAL_S) -> None:
        """A readline prompt; alerts that arrive meanwhile are printed above it."""
        try:
            import readline  # line editing and history for input()
        except ImportError:  # pragma: no cover — not on every platform
            readline = None  # type: ignore[assignment]  # no readline on this platform (Windows)
        prompt = prompt if prompt is not None else f"{self.name}> "

        waiting = threading.Event()  # set while input() shows the prompt

        def redraw_start() -> None:
            if waiting.is_set():
                self.out.write("\r\x1b[K")  # clear the prompt line; the alert goes above it

        def redraw_end() -> None:
            if waiting.is_set():
                buffer = readline.get_line_buffer() if readline is not None else ""
                self.out.write(prompt + buffer)
                self.out.flush()

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        next_line = threading.Event()

        def read() -> None:
            # A daemon thread, so a pending input() never keeps the process alive after Ctrl-C / EOF.
            while True:
                next_line.wait()
                next_line.clear()
                waiting.set()
                try:
                    line: str | None = input(prompt)
                except (EOFError, KeyboardInterrupt):
                    line = None
                waiting.clear()
                loop.call_soon_threadsafe(queue.put_nowait, line)
                if line is None:
                    return

        threading.Thread(target=read, name="console-input", daemon=True).start()
        self.out.write(f"paylinks chat as {self.name}. /help lists the commands; Ctrl-D quits.\n")
        await self.print_alerts()
        poller = asyncio.create_task(self._poll(poll_interval, redraw_start, redraw_end))
        pending: list[str] = []
        try:
            while True:
                next_line.set()
                line = await queue.get()
                if line is None:
                    self.out.write("\n")
                    break
                text = joined_line(pending, line)
                if text is not None and text.strip():
                    self.print_replies(text, await self.say(text))
        finally:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)

    async def _poll(self, interval: float, start: Callable[[], None], end: Callable[[], None]) -> None:
        self.before_print, self.after_print = start, end
        while True:
            await asyncio.sleep(interval)
            try:
                await self.print_alerts()
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed look (database busy) is retried at the next tick
                log.exception("console poll failed")


def joined_line(pending: list[str], line: str) -> str | None:
    """A line ending in a backslash continues on the next one (a terminal has no Shift+Enter): None while a
    message is still being typed, then its lines joined with line breaks (/invoice reads one item each)."""
    if line.endswith("\\"):
        pending.append(line[:-1].rstrip())
        return None
    if not pending:
        return line
    text = "\n".join([*pending, line])
    pending.clear()
    return text


async def stdin_lines(stream: TextIO | None = None) -> AsyncIterator[str]:
    """Lines of a (non-terminal) stream, read without blocking the event loop."""
    stream = stream or sys.stdin
    while True:
        line = await asyncio.to_thread(stream.readline)
        if not line:
            return
        yield line
