"""`paylinks chat` as a person uses it: a real subprocess on a temporary SQLite file, fed stdin lines
(--json and plain), and once through a pseudo-terminal to see a paid alert arrive while the prompt waits."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adapters.console import ConsoleSender
from core.db import Database
from core.ports import Reply

BIN = Path(sys.executable).parent / "paylinks"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PAYLINKS_")}
    environ["PAYLINKS_DATABASE__URL"] = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    environ["PAYLINKS_SERVER__PUBLIC_BASE_URL"] = "https://pay.example.com"
    return environ


def chat(env: dict[str, str], lines: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), "chat", *args], input="".join(f"{line}\n" for line in lines), env=env,
        capture_output=True, text=True, timeout=120,
    )


def test_json_lines(env: dict[str, str]) -> None:
    lines = ["/start", "", "/charge 25 for 2 birthday cakes ref INV-1042", "/charge 25.555 USD cake", "/links",
             "hello"]
    result = chat(env, lines, "--as", "alice", "--json")
    assert result.returncode == 0, result.stderr
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["input"] for o in objects] == [line for line in lines if line]  # one object per non-empty line
    start, charge, mistake, listing, hello = objects
    assert "Welcome" in start["replies"][0]["text"]
    (reply,) = charge["replies"]
    assert "$25.00 — 2 birthday cakes" in reply["text"] and "**" not in reply["text"]
    (button,) = reply["buttons"]
    assert button["label"] == "Pay $25.00" and button["url"].startswith("https://pay.example.com/p/")
    assert button["url"] in reply["text"]
    assert mistake["replies"][0]["buttons"] == []
    assert "USD has 2 decimals" in mistake["replies"][0]["text"]
    assert "/charge 25.56 USD cake" in mistake["replies"][0]["text"]
    assert "birthday cakes" in listing["replies"][0]["text"]
    assert "Hi!" in hello["replies"][0]["text"] and "/charge" not in hello["replies"][0]["text"].split("Hi!")[0]
    assert len(hello["replies"][0]["text"]) < 200  # a greeting gets a short answer, not the help


def test_an_ambiguous_amount_is_asked_and_answered_in_a_later_run(env: dict[str, str]) -> None:
    """The question lives in the database: `paylinks chat` can stop between question and answer."""
    first = chat(env, ["/currency SGD", "/charge 1.000 cake"], "--as", "alice", "--json")
    assert first.returncode == 0, first.stderr
    _currency, asked = [json.loads(line) for line in first.stdout.splitlines()]
    (question,) = asked["replies"]
    assert "Did you mean SGD 1.00 or SGD 1,000.00?" in question["text"]
    assert "1. SGD 1.00 — cake" in question["text"] and "2. SGD 1,000.00 — cake" in question["text"]
    assert question["buttons"] == []  # the console types numbers instead of pressing buttons
    second = chat(env, ["2", "/links"], "--as", "alice", "--json")
    assert second.returncode == 0, second.stderr
    answered, listing = [json.loads(line) for line in second.stdout.splitlines()]
    (card,) = answered["replies"]
    assert "SGD 1,000.00 — cake" in card["text"] and card["buttons"][0]["label"] == "Pay SGD 1,000.00"
    assert listing["replies"][0]["text"].count("cake") == 1


def test_same_person_same_shop_across_runs_and_plain_text(env: dict[str, str]) -> None:
    assert chat(env, ["/charge 9 pie ref P-9"], "--as", "alice").returncode == 0
    again = chat(env, ["/status P-9"], "--as", "alice")
    assert again.returncode == 0, again.stderr
    assert "Open · $9.00 — pie" in again.stdout and "[Pay $9.00] https://pay.example.com/p/" in again.stdout
    assert "can't find" in chat(env, ["/status P-9"], "--as", "bob").stdout


def test_without_as_the_login_name_is_the_person(env: dict[str, str]) -> None:
    # `paylinks chat` alone is what the README's quick start types: the login name (USER) is who you are.
    env = {**env, "USER": "carol", "LOGNAME": "carol"}
    assert chat(env, ["/charge 7 tart ref T-7"]).returncode == 0
    again = chat(env, ["/status T-7"])
    assert again.returncode == 0, again.stderr
    assert "Open · $7.00 — tart" in again.stdout
    assert "Open · $7.00 — tart" in chat(env, ["/status T-7"], "--as", "carol").stdout
    assert "can't find" in chat(env, ["/status T-7"], "--as", "dave").stdout


def test_merchant_option(env: dict[str, str]) -> None:
    created = subprocess.run([str(BIN), "merchant", "create", "--name", "Cake Shop", "--currency", "SGD",
                              "--locale", "en_SG"], env=env, capture_output=True, text=True, timeout=60)
    merchant_id = created.stdout.strip()
    result = chat(env, ["/charge 25 cake", "/start"], "--as", "alice", "--merchant", merchant_id, "--json")
    assert result.returncode == 0, result.stderr
    charge, start = [json.loads(line) for line in result.stdout.splitlines()]
    assert charge["replies"][0]["buttons"][0]["label"] == "Pay S$25.00"
    assert "You're in Cake Shop (owner, SGD)" in start["replies"][0]["text"]
    missing = chat(env, ["/start"], "--as", "alice", "--merchant", "mer_missing")
    assert missing.returncode == 2 and "no merchant with id mer_missing" in missing.stderr
    assert missing.stdout == ""


def test_a_blank_name_is_refused(env: dict[str, str]) -> None:
    result = chat(env, ["/start"], "--as", "  ")
    assert result.returncode == 2 and "--as needs a name of 1 to 120 characters" in result.stderr


class Terminal:
    """`paylinks chat` on a pseudo-terminal: what a person sees."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            [str(BIN), "chat", *args], stdin=slave, stdout=slave, stderr=subprocess.DEVNULL, env=env,
            close_fds=True,
        )
        os.close(slave)
        self.seen = ""

    def expect(self, text: str, timeout: float = 30.0) -> str:
        """Read until `text` appears (a deadline for the wait, not an assertion about speed)."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{text!r} never appeared; the terminal shows:\n{self.seen}")
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # the child closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"{text!r} never appeared before the end:\n{self.seen}")
                self.seen += chunk.decode(errors="replace")
        return self.seen

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> int:
        self.type("\x04")  # Ctrl-D
        try:
            return self.process.wait(timeout=30)
        finally:
            os.close(self.master)


def test_interactive_terminal_prints_paid_alerts_as_they_arrive(env: dict[str, str]) -> None:
    terminal = Terminal(env, "--as", "alice")
    try:
        terminal.expect("alice> ")
        terminal.type("/charge 25 birthday cake\n")
        terminal.expect("[Pay $25.00] https://pay.example.com/p/")
        terminal.expect("alice> ")

        async def deliver() -> None:
            # What the outbox dispatcher of `paylinks serve` does for a console target.
            db = Database(env["PAYLINKS_DATABASE__URL"])
            try:
                await ConsoleSender(db).send("alice", Reply("✅ Paid: **$25.00** — birthday cake"))
            finally:
                await db.dispose()

        asyncio.run(deliver())
        terminal.expect("✅ Paid: $25.00 — birthday cake")
        assert terminal.close() == 0
    finally:
        if terminal.process.poll() is None:
            terminal.process.kill()
            terminal.process.wait()
