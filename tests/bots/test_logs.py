"""Logs cannot be forged (issue 11, point 4): whatever text from outside a record carries, each record is
one line, and only our own records start a line."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

import core.conversation
from bots.logs import CONTINUATION, LOG_FORMAT, OneLineFormatter, configure_logging, escape
from tests.chat_support import ChatDriver
from tests.conftest import free_port

PAYLINKS = Path(sys.executable).parent / "paylinks"
# The first line of a real record: "2026-12-01 08:50:16,516 INFO paylinks.api …".
RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+ ")
FORGED = "ERROR forged"


def assert_unforgeable(output: str) -> list[str]:
    """Every line is a record's first line or an indented continuation; the record lines come back."""
    records = []
    for line in output.splitlines():
        if line.startswith(CONTINUATION):
            continue
        assert RECORD.match(line), f"a line that is not a record of ours: {line!r}"
        records.append(line)
    return records


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter(LOG_FORMAT))
    logger = logging.getLogger("paylinks.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def test_escape_writes_control_and_bidi_characters_as_escapes() -> None:
    assert escape("a\nb\rc\td") == "a\\nb\\rc\\td"
    assert escape("\x1b[2J\x00\x7f") == "\\x1b[2J\\x00\\x7f"
    assert escape("next\x85line\u2028sep\u2029") == "next\\x85line\\u2028sep\\u2029"
    assert escape("evil\u202efdp.exe\u2066x\u2069") == "evil\\u202efdp.exe\\u2066x\\u2069"
    assert escape("S$25.00 — cakes 🎂, Grüße") == "S$25.00 — cakes 🎂, Grüße"  # ordinary text is untouched


def test_messages_and_args_with_newlines_stay_on_one_line(captured: io.StringIO) -> None:
    log = logging.getLogger("paylinks.test_logs")
    log.info("api key refused path=%s", f"/api/v1/links/x\n{FORGED}")
    log.warning(f"literal message\r\n{FORGED}")
    log.info("mapping %(text)s", {"text": f"\n{FORGED}"})
    records = assert_unforgeable(captured.getvalue())
    assert len(records) == 3
    assert records[0].endswith(f"api key refused path=/api/v1/links/x\\n{FORGED}")
    assert records[1].endswith(f"literal message\\r\\n{FORGED}")
    assert not any(line.startswith("ERROR") for line in captured.getvalue().splitlines())


def test_tracebacks_are_indented_and_exception_text_cannot_start_a_line(captured: io.StringIO) -> None:
    log = logging.getLogger("paylinks.test_logs")
    try:
        raise ValueError(f"bad input\n2026-12-01 08:50:16,516 {FORGED} key=1\x1b[0m")
    except ValueError:
        log.exception("conversation failed")
    log.info("after", stack_info=True)
    output = captured.getvalue()
    records = assert_unforgeable(output)
    assert [r.split(" ", 4)[-1] for r in records] == ["conversation failed", "after"]
    lines = output.splitlines()
    assert f"{CONTINUATION}Traceback (most recent call last):" in lines
    # The exception's own line break stays (tracebacks are many lines), but indented, so not a record.
    assert f"{CONTINUATION}2026-12-01 08:50:16,516 {FORGED} key=1\\x1b[0m" in lines
    assert f"{CONTINUATION}ValueError: bad input" in lines


async def test_chat_text_with_newlines_is_logged_escaped(
    chat: ChatDriver, captured: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_parse(text: str, context: object) -> object:
        # A bug whose exception quotes what the user typed, as many library errors do.
        raise RuntimeError(f"could not read {text}")

    monkeypatch.setattr(core.conversation, "parse", failing_parse)
    handler = logging.StreamHandler(captured)
    handler.setFormatter(OneLineFormatter(LOG_FORMAT))
    conversation_log = logging.getLogger("paylinks.conversation")
    conversation_log.addHandler(handler)
    try:
        typed = f"/charge 25 cake\n{FORGED} in the chat"
        replies = await chat.as_user("mallory", address=f"mallory\n{FORGED} address")(typed)
    finally:
        conversation_log.removeHandler(handler)
    assert "Sorry" in replies[0].text
    output = captured.getvalue()
    (record,) = assert_unforgeable(output)
    assert record.endswith(f"conversation failed platform=console address=mallory\\n{FORGED} address")
    assert f"{CONTINUATION}{FORGED} in the chat" in output.splitlines()
    assert not any(line.startswith("ERROR") for line in output.splitlines())


async def test_aiohttp_access_log_lines_are_escaped(captured: io.StringIO) -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/p/{link_id}", hello)
    handler = logging.StreamHandler(captured)
    handler.setFormatter(OneLineFormatter(LOG_FORMAT))
    access = logging.getLogger("aiohttp.access")
    access.addHandler(handler)
    level, access.level = access.level, logging.INFO
    runner = web.AppRunner(app, access_log=access, access_log_format='%r %s "%{User-Agent}i"')
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # HTTP allows any byte above 0x7f in a header value; as UTF-8 these are NEL and a bidi override.
        agent = f"curl\u0085{FORGED}\u202e".encode()
        writer.write(b"GET /p/x%0AERROR HTTP/1.1\r\nHost: t\r\nUser-Agent: " + agent + b"\r\nConnection: close\r\n\r\n")
        await writer.drain()
        assert (await reader.read()).startswith(b"HTTP/1.1 200")
        writer.close()
    finally:
        await runner.cleanup()
        access.removeHandler(handler)
        access.level = level
    (record,) = assert_unforgeable(captured.getvalue())
    assert record.endswith(f'GET /p/x%0AERROR HTTP/1.1 200 "curl\\x85{FORGED}\\u202e"')


def test_configure_logging_sends_every_library_through_the_formatter() -> None:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    stream = io.StringIO()
    try:
        root.handlers[:] = []
        configure_logging("info", stream=stream)
        logging.getLogger("some.library").warning("line one\nERROR line two")
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
    (record,) = assert_unforgeable(stream.getvalue())
    assert record.endswith("some.library line one\\nERROR line two")


@pytest.fixture
def served(sqlite_database_url: str, tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYLINKS_")}
    env |= {"PAYLINKS_DATABASE__URL": sqlite_database_url, "PAYLINKS_SERVER__PORT": str(port),
            "PAYLINKS_SERVER__PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(PAYLINKS), "serve"], env=env, cwd=tmp_path, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"paylinks serve did not come up:\n{log.read_text()[-3000:]}")
                time.sleep(0.1)
        yield base, log, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)


def test_a_newline_in_an_api_path_cannot_forge_a_log_line(
    served: tuple[str, Path, subprocess.Popen[bytes]],
) -> None:
    base, log, proc = served
    for key in (None, "pl_live_" + "x" * 43):
        request = urllib.request.Request(f"{base}/api/v1/links/x%0AERROR%20forged")
        if key:
            request.add_header("Authorization", f"Bearer {key}")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401
    proc.terminate()
    proc.wait(timeout=10)
    output = log.read_text()
    records = assert_unforgeable(output)
    assert not any(line.startswith("ERROR") for line in output.splitlines())
    assert not any(" ERROR " in record for record in records)
    assert any(r.endswith("api key refused method=GET path=/api/v1/links/x\\nERROR forged") for r in records)


def test_a_malformed_request_is_one_info_line_not_an_error_traceback(
    served: tuple[str, Path, subprocess.Popen[bytes]],
) -> None:
    """aiohttp refuses a control character in a header before any middleware, and would log the refusal at
    ERROR with a traceback: anyone could fill the log with ERROR records."""
    base, log, proc = served
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: a\x1b[31mred\r\n\r\n")
        answer = conn.recv(4096)
    assert answer.split(b" ", 2)[1] == b"400"
    proc.terminate()
    proc.wait(timeout=10)
    output = log.read_text()
    assert "Traceback" not in output and " ERROR " not in output
    assert any("malformed HTTP request refused with 400" in record for record in assert_unforgeable(output))
