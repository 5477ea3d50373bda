"""SlackSender: the ChatSender for Slack (chat.postMessage, chat.update, threaded replies).

Every slack_sdk failure is turned into the core's classified errors here, so the outbox never sees an SDK
exception: 429 → RetryLater(Retry-After exactly), gone/forbidden targets → Permanent, network and 5xx →
Transient.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.parse import PLATFORM, SlackAddress, SlackAddressError, parse_address
from adapters.slack.render import message_payload
from core.ports import MessageRef, Permanent, Reply, RetryLater, SendError, Transient

log = logging.getLogger("paylinks.slack")

# Team id → bot token (None: the workspace has no installation).
TokenLookup = Callable[[str], Awaitable[str | None]]

# Errors that retrying cannot fix: the target is gone or closed to us, or the token no longer works.
PERMANENT_ERRORS = frozenset({
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "invalid_auth",
    "not_authed",
    "no_permission",
    "missing_scope",
    "team_access_not_granted",
    "team_not_found",
    "ekm_access_denied",
    "org_login_required",
    "restricted_action",
    "restricted_action_read_only_channel",
    "restricted_action_thread_only_channel",
    "restricted_action_non_threadable_channel",
    "cannot_reply_to_message",
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
    "msg_too_long",
    "invalid_blocks",
    "invalid_arguments",
})
# Errors Slack documents as temporary.
TRANSIENT_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})
# A send that takes longer than this is treated as a network failure (Transient).
SEND_TIMEOUT_S = 15
# What to wait when a 429 comes without Retry-After (Slack always sends it; a proxy might not).
DEFAULT_RETRY_AFTER_S = 1.0


def retry_after_seconds(headers: Mapping[str, Any] | None) -> float:
    raw = None
    if headers is not None:
        raw = headers.get("Retry-After") or headers.get("retry-after")
    try:
        value = float(str(raw).strip())
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_S
    return value if value >= 0 else DEFAULT_RETRY_AFTER_S


class SlackPermanent(Permanent):
    """A Permanent failure that carries Slack's error code ("not_in_channel", …) for callers that care."""

    def __init__(self, error: str) -> None:
        super().__init__(f"slack: {error}")
        self.error = error


def classify(exc: BaseException) -> SendError:
    """Map any failure of a Slack call onto RetryLater / Permanent / Transient."""
    if isinstance(exc, SendError):
        return exc
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = int(getattr(response, "status_code", 0) or 0)
        data = response.data if isinstance(getattr(response, "data", None), dict) else {}
        error = str(data.get("error") or "")
        if status == 429 or error == "ratelimited":
            return RetryLater(retry_after_seconds(getattr(response, "headers", None)), "slack: rate limited")
        if status >= 500:
            return Transient(f"slack: HTTP {status}")
        if error in PERMANENT_ERRORS:
            return SlackPermanent(error)
        if error in TRANSIENT_ERRORS or status != 200:
            return Transient(f"slack: {error or f'HTTP {status}'}")
        # An error code this table does not know yet: let the outbox's attempt limit decide rather than
        # disabling a chat on a guess.
        return Transient(f"slack: {error or 'unknown error'}")
    if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | OSError | SlackClientError):
        return Transient(f"slack: {type(exc).__name__}")
    return Transient(f"slack: unexpected {type(exc).__name__}")


async def _call(method: Callable[..., Awaitable[Any]], /, **kwargs: Any) -> Any:
    try:
        return await method(**kwargs)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        raise classify(exc) from exc


def message_ref(team_id: str, channel_id: str, ts: str, thread_ts: str | None = None) -> MessageRef:
    extra: dict[str, Any] = {"team_id": team_id, "channel": channel_id, "ts": ts}
    if thread_ts:
        extra["thread_ts"] = thread_ts
    return MessageRef(platform=PLATFORM, address=f"{team_id}:{channel_id}", message_id=ts, extra=extra)


def thread_address(ref: MessageRef) -> str:
    """The address that makes `send` answer inside the thread of the message `ref` points at."""
    where = _where(ref)
    thread = str(ref.extra.get("thread_ts") or ref.message_id)
    return str(SlackAddress(where.team_id, where.channel_id, thread))


def _where(ref: MessageRef) -> SlackAddress:
    team = ref.extra.get("team_id")
    channel = ref.extra.get("channel")
    if team and channel:
        return SlackAddress(str(team), str(channel))
    return parse_address(ref.address)


async def post_message(
    client: AsyncWebClient, team_id: str, channel_id: str, reply: Reply, *,
    thread_ts: str | None = None, token: str | None = None,
) -> MessageRef:
    """chat.postMessage as the bot; classified errors only."""
    kwargs: dict[str, Any] = {"channel": channel_id, **message_payload(reply), "unfurl_links": False,
                              "unfurl_media": False}
    if thread_ts:
        kwargs["thread_ts"] = thread_ts
    if token:
        kwargs["token"] = token
    response = await _call(client.chat_postMessage, **kwargs)
    ts = str(response.get("ts") or "")
    channel = str(response.get("channel") or channel_id)
    if not ts:
        raise Transient("slack: chat.postMessage answered without a ts")
    return message_ref(team_id, channel, ts, thread_ts)


class SlackSender:
    """ChatSender over one AsyncWebClient (no token of its own): the token is looked up per workspace."""

    platform = PLATFORM

    def __init__(self, client: AsyncWebClient, tokens: TokenLookup) -> None:
        self.client = client
        self.tokens = tokens
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Share one HTTP session while the loop runs; without it every call opens its own (still correct)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT_S))
            self.client.session = self._session

    @property
    def session(self) -> aiohttp.ClientSession | None:
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        self.client.session = None
        if session is not None:
            await session.close()

    async def _token(self, team_id: str) -> str:
        try:
            token = await self.tokens(team_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the installation store is our database: a hiccup, not a dead target
            raise Transient(f"slack: token lookup failed ({type(exc).__name__})") from exc
        if not token:
            raise Permanent(f"slack: workspace {team_id} has no installation of paylinks")
        return token

    async def send(self, address: str, reply: Reply, *, reply_to: MessageRef | None = None) -> MessageRef:
        """Post to TEAM:CHANNEL; TEAM:CHANNEL:THREAD_TS (or `reply_to`) answers inside that thread."""
        try:
            where = parse_address(address)
        except SlackAddressError as exc:
            raise Permanent(str(exc)) from None
        thread_ts = where.thread_ts
        if reply_to is not None:
            thread_ts = str(reply_to.extra.get("thread_ts") or reply_to.message_id)
        token = await self._token(where.team_id)
        ref = await post_message(self.client, where.team_id, where.channel_id, reply, thread_ts=thread_ts,
                                 token=token)
        log.info("slack message sent channel=%s ts=%s threaded=%s", where.channel_id, ref.message_id,
                 bool(thread_ts))
        return ref

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        """chat.update of a message the bot posted (Slack allows editing only the bot's own messages)."""
        try:
            where = _where(ref)
        except SlackAddressError as exc:
            raise Permanent(str(exc)) from None
        token = await self._token(where.team_id)
        await _call(self.client.chat_update, token=token, channel=where.channel_id, ts=ref.message_id,
                    **message_payload(reply))
        log.info("slack message edited channel=%s ts=%s", where.channel_id, ref.message_id)
