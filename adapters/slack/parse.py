"""Pure translation of Slack payloads into core values (no I/O, no SDK objects).

Addresses: a Slack channel id is only meaningful together with the workspace whose bot token can reach
it, and paid alerts are sent later by a worker that has nothing but the stored address. So a paylinks
Slack address is "TEAM:CHANNEL", and "TEAM:CHANNEL:THREAD_TS" for a reply inside a thread. User ids are
"TEAM:USER" for the same reason (Enterprise Grid reuses one user id across the org's workspaces, and a
workspace is one shop).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from core.commands import COMMANDS
from core.ports import IncomingMessage

PLATFORM = "slack"

# `/paylinks <sub> …` sub-commands, mapped 1:1 onto the conversation core's commands. Anything else
# after /paylinks is passed through as "/<word> …" so the core's own "unknown command" help answers it.
SUBCOMMANDS = tuple(spec.name for spec in COMMANDS)

_SLACK_ID = re.compile(r"^[A-Z0-9]+$")
_TS = re.compile(r"^\d+\.\d+$")
_LINK_PATH = re.compile(r"^/p/([a-z0-9]{16,64})/?$")


class SlackAddressError(ValueError):
    """A stored address that is not TEAM:CHANNEL[:THREAD_TS]."""


@dataclass(frozen=True, slots=True)
class SlackAddress:
    team_id: str
    channel_id: str
    thread_ts: str | None = None

    def __str__(self) -> str:
        base = f"{self.team_id}:{self.channel_id}"
        return f"{base}:{self.thread_ts}" if self.thread_ts else base

    @property
    def channel_address(self) -> str:
        """The address without the thread: where alert subscriptions and link origins live."""
        return f"{self.team_id}:{self.channel_id}"


def make_address(team_id: str, channel_id: str, thread_ts: str | None = None) -> str:
    return str(SlackAddress(team_id, channel_id, thread_ts))


def parse_address(address: str) -> SlackAddress:
    parts = address.split(":")
    if len(parts) not in (2, 3) or not all(_SLACK_ID.match(p) for p in parts[:2]):
        raise SlackAddressError(f"not a Slack address (TEAM:CHANNEL[:THREAD_TS]): {address!r}")
    thread = parts[2] if len(parts) == 3 else None
    if thread is not None and not _TS.match(thread):
        raise SlackAddressError(f"not a Slack message ts in address: {address!r}")
    return SlackAddress(parts[0], parts[1], thread)


def user_key(team_id: str, user_id: str) -> str:
    return f"{team_id}:{user_id}"


def command_text(command: str, text: str) -> str:
    """The conversation core's command line for a slash command.

    `/charge 25 cake` stays as it is; `/paylinks links paid` becomes `/links paid`; a bare `/paylinks`
    asks for the help.
    """
    command = command.strip().lower()
    # Spaces are collapsed within a line; line breaks stay (/invoice reads one item per line).
    text = "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())
    if command == "/paylinks":
        if not text:
            return "/help"
        word = text.split(None, 1)[0]
        rest = text[len(word):].lstrip(" ")
        word = word.lstrip("/").lower()
        return f"/{word} {rest}".rstrip()
    name = command.lstrip("/") or "help"
    return f"/{name} {text}".rstrip()


def is_group_channel(channel_id: str) -> bool:
    # D… is a direct message with the bot; C… public and G… private channels or group DMs are shared.
    return not channel_id.startswith("D")


def parse_slash_command(body: Mapping[str, Any]) -> IncomingMessage:
    """A slash-command payload (form fields as Bolt parses them) as the core's IncomingMessage."""
    team_id = str(body.get("team_id") or "")
    channel_id = str(body.get("channel_id") or "")
    user_id = str(body.get("user_id") or "")
    if not (team_id and channel_id and user_id):
        raise ValueError("slash command without team_id, channel_id or user_id")
    return IncomingMessage(
        platform=PLATFORM,
        user_id=user_key(team_id, user_id),
        address=make_address(team_id, channel_id),
        text=command_text(str(body.get("command") or ""), str(body.get("text") or "")),
        display_name=str(body.get("user_name") or ""),
        is_group=is_group_channel(channel_id),
        workspace=team_id,
        extra={
            "channel_id": channel_id,
            "slack_user_id": user_id,
            "response_url": str(body.get("response_url") or ""),
            "command": str(body.get("command") or ""),
        },
    )


def _header(headers: Mapping[str, str | Sequence[str]], name: str) -> str:
    value = headers.get(name) or headers.get(name.title()) or ""
    return value if isinstance(value, str) else str(value[0]) if value else ""


def delivery_id(body: Mapping[str, Any], headers: Mapping[str, str | Sequence[str]]) -> str | None:
    """Slack's id for one delivery: the same when Slack retries it (X-Slack-Retry-Num) or when the same
    signed request is replayed within its 5-minute window, different for anything a person did again.

    - Events API: `event_id` (a retry is signed anew but keeps it).
    - Interactivity (buttons, modals): `trigger_id`, one per click.
    - Slash commands carry no event id: the signed request itself, X-Slack-Request-Timestamp plus
      X-Slack-Signature (which covers the whole body), hashed.
    """
    if body.get("type") == "event_callback" and body.get("event_id"):
        return f"event:{body['event_id']}"
    if body.get("type") and not body.get("command") and body.get("trigger_id"):
        return f"action:{body['trigger_id']}"
    timestamp = _header(headers, "x-slack-request-timestamp")
    signature = _header(headers, "x-slack-signature")
    if not (timestamp and signature):
        return None
    return "request:" + hashlib.sha256(f"{timestamp}:{signature}".encode()).hexdigest()
def parse_block_action(body: Mapping[str, Any]) -> IncomingMessage | None:
    """A click on an answer button (block_actions payload) as the core's message with `action`, else None."""
    actions = body.get("actions") or []
    value = str(actions[0].get("value") or "") if actions and isinstance(actions[0], Mapping) else ""
    team_id = str((body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id") or "")
    user_id = str((body.get("user") or {}).get("id") or "")
    channel_id = str((body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or "")
    if not (value and team_id and user_id and channel_id):
        return None
    return IncomingMessage(
        platform=PLATFORM,
        user_id=user_key(team_id, user_id),
        address=make_address(team_id, channel_id),
        text="",
        display_name=str((body.get("user") or {}).get("username") or ""),
        is_group=is_group_channel(channel_id),
        workspace=team_id,
        extra={"channel_id": channel_id, "slack_user_id": user_id,
               "response_url": str(body.get("response_url") or ""), "command": ""},
        action=value,
    )


def link_id_from_url(url: str, public_base_url: str) -> str | None:
    """The link id of a paylinks pay-page URL (`{public_base_url}/p/{id}`), or None for any other URL."""
    base = urlsplit(public_base_url)
    try:
        candidate = urlsplit(url.strip().strip("<>"))
    except ValueError:
        return None
    if candidate.scheme not in ("http", "https") or candidate.hostname != base.hostname:
        return None
    if candidate.port != base.port:
        return None
    prefix = base.path.rstrip("/")
    path = candidate.path
    if prefix:
        if not path.startswith(prefix + "/"):
            return None
        path = path[len(prefix):]
    match = _LINK_PATH.match(path)
    return match.group(1) if match else None


def shared_links(links: Iterable[Mapping[str, Any]], public_base_url: str) -> list[tuple[str, str]]:
    """(url, link id) for every paylinks URL in a `link_shared` event's `links`, each URL once."""
    found: dict[str, str] = {}
    for item in links:
        url = str(item.get("url") or "")
        link_id = link_id_from_url(url, public_base_url)
        if link_id and url not in found:
            found[url] = link_id
    return list(found.items())
