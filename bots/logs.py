"""Log output: one line per record, whatever text from outside the record carries.

Request paths, headers and chat text reach log messages (ours and every library's, aiohttp's access log
included). A newline in them would start a line that looks like a record of its own (`%0A` in a URL
path becomes a real-looking `ERROR …` line), and terminal escapes or bidi controls could rewrite what an
operator sees. `OneLineFormatter` escapes those characters in the whole formatted record, so the only line
breaks in the output are between records and inside tracebacks, whose every line is indented: a line that
starts at column 0 is always the start of a real record.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# What a traceback or stack line is prefixed with, so it can never pass for a record's first line.
CONTINUATION = "  "

# C0 controls, DEL, C1 controls (NEL among them), the Unicode line/paragraph separators, and the bidi
# embedding/override/isolate controls that can reorder what a terminal shows.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape(text: str) -> str:
    """`text` on one line: control and bidi characters written as backslash escapes (`\\n`, `\\x1b`)."""
    return _UNSAFE.sub(_escape_char, text)


class OneLineFormatter(logging.Formatter):
    """A Formatter whose records are one line each (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        text = escape(self.formatMessage(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        blocks = [record.exc_text] if record.exc_text else []
        if record.stack_info:
            blocks.append(self.formatStack(record.stack_info))
        for block in blocks:
            # split("\n") rather than splitlines(): every other separator is escaped, not broken on.
            text += "".join(f"\n{CONTINUATION}{escape(line)}" for line in block.split("\n"))
        return text


class MalformedRequestFilter(logging.Filter):
    """aiohttp answers a malformed request (a control character in a header, a bad request line) with 400
    before any middleware runs, then logs "Error handling request" at ERROR with a traceback: anyone could
    fill the log with ERROR records. Such records become one INFO line saying what was refused."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError) and error.code == 400:
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = "malformed HTTP request refused with 400: %s", (error.message,)
            record.exc_info = record.exc_text = None
        return True


def configure_logging(level: str, *, stream: TextIO | None = sys.stderr, file: str | None = None) -> None:
    """Root logging for the `paylinks` programs: to `stream` (None: not to a stream) and/or to `file`."""
    handlers: list[logging.Handler] = []
    if stream is not None:
        handlers.append(logging.StreamHandler(stream))
    if file is not None:
        handlers.append(logging.FileHandler(file, encoding="utf-8"))
    if not handlers:
        # Without any handler, logging's last resort would print warnings to stderr anyway.
        handlers.append(logging.NullHandler())
    formatter = OneLineFormatter(LOG_FORMAT)
    for handler in handlers:
        handler.setFormatter(formatter)
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=handlers)
    # Library chatter (migration plugins, per-request access lines) would drown the event lines.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs every request URL at INFO, and Telegram Bot API URLs carry the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in server_log.filters):
        server_log.addFilter(MalformedRequestFilter())
