"""Each chat command is declared once (core.commands.registry.COMMANDS); everything that lists commands
reads it: /help, the conversation's dispatch, Telegram's command menu, Slack's /paylinks sub-commands."""

from __future__ import annotations

from pathlib import Path

import yaml

from adapters.slack.parse import SUBCOMMANDS
from adapters.telegram.bot import COMMANDS as TELEGRAM_MENU
from core.commands import BY_NAME, COMMANDS, split_command
from core.conversation import Conversation

ROOT = Path(__file__).resolve().parents[2]


def test_every_command_has_a_handler_and_unique_words() -> None:
    for spec in COMMANDS:
        assert callable(getattr(Conversation, f"_{spec.handler}", None)), spec.name
    words = [word for spec in COMMANDS for word in (spec.name, *spec.aliases)]
    assert len(words) == len(set(words))
    for spec in COMMANDS:
        for word in (spec.name, *spec.aliases):
            assert split_command(f"/{word} x").name == spec.name
        assert split_command(spec.usage).name == spec.name  # the usage line is itself that command


def test_telegram_menu_is_the_registry() -> None:
    assert [(c.command, c.description) for c in TELEGRAM_MENU] == [(s.name, s.menu) for s in COMMANDS]


def test_slack_subcommands_are_the_registry() -> None:
    assert list(SUBCOMMANDS) == [spec.name for spec in COMMANDS]


def test_slack_manifest_names_every_command() -> None:
    manifest = yaml.safe_load((ROOT / "slack-manifest.yml").read_text())
    commands = {c["command"]: c for c in manifest["features"]["slash_commands"]}
    assert set(commands) == {"/charge", "/paylinks"}
    hint = commands["/paylinks"]["usage_hint"]
    for spec in COMMANDS:
        if spec.name not in ("charge", "start"):  # /charge is its own slash command; start is implicit
            assert spec.name in hint, spec.name
            assert spec.name in commands["/paylinks"]["description"], spec.name


async def test_help_lists_every_listed_command(chat: object) -> None:
    from tests.chat_support import ChatDriver

    assert isinstance(chat, ChatDriver)
    text = (await chat("/help"))[0].text
    for spec in COMMANDS:
        assert (f"`{spec.usage}` — {spec.help}" in text) == spec.listed, spec.name
    assert (await chat("/help charge"))[0].text == BY_NAME["charge"].details
