"""SlackSender with the real slack_sdk AsyncWebClient against the fake Slack Web API: sends, threads, edits,
and the error classification the outbox relies on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import SlackOptions, build_sender, thread_address
from adapters.slack.sender import SlackPermanent, SlackSender
from core.db import Database
from core.ports import Button, MessageRef, Permanent, Reply, RetryLater, Transient
from tests.conftest import free_port
from tests.fakes.slack import FakeSlack

TEAM = "T0PAYLINKS"
CHANNEL = "C0SALES"
ADDRESS = f"{TEAM}:{CHANNEL}"
REPLY = Reply("**S$25.00** — cake", buttons=(Button("Pay S$25.00", "https://pay.example/p/x"),))


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    server = await FakeSlack().start()
    yield server
    await server.close()


@pytest.fixture
async def sender(fake: FakeSlack) -> AsyncIterator[SlackSender]:
    tokens = {TEAM: fake.bot_token}

    async def lookup(team_id: str) -> str | None:
        return tokens.get(team_id)

    slack = SlackSender(AsyncWebClient(base_url=fake.api_url, retry_handlers=[]), lookup)
    await slack.start()
    yield slack
    await slack.close()


async def test_send_posts_as_the_bot_and_returns_channel_and_ts(fake: FakeSlack, sender: SlackSender) -> None:
    ref = await sender.send(ADDRESS, REPLY)
    [call] = fake.calls_to("chat.postMessage")
    assert call.token == fake.bot_token
    assert call.channel == CHANNEL
    assert "thread_ts" not in call.params
    assert "*S$25.00* — cake" in call.text_of_blocks()
    assert "https://pay.example/p/x" in call.text_of_blocks()
    assert ref.platform == "slack" and ref.address == ADDRESS
    assert ref.extra["channel"] == CHANNEL and ref.extra["ts"] == ref.message_id
    assert (CHANNEL, ref.message_id) in fake.messages


async def test_send_to_a_thread_address_replies_in_that_thread(fake: FakeSlack, sender: SlackSender) -> None:
    parent = await sender.send(ADDRESS, REPLY)
    reply_ref = await sender.send(thread_address(parent), Reply("✅ Paid by Bob"))
    call = fake.calls_to("chat.postMessage")[-1]
    assert call.params["thread_ts"] == parent.message_id
    assert reply_ref.extra["thread_ts"] == parent.message_id
    # A reply to a reply stays in the same thread.
    await sender.send(thread_address(reply_ref), Reply("again"))
    assert fake.calls_to("chat.postMessage")[-1].params["thread_ts"] == parent.message_id


async def test_send_with_reply_to_threads_too(fake: FakeSlack, sender: SlackSender) -> None:
    parent = await sender.send(ADDRESS, REPLY)
    await sender.send(ADDRESS, Reply("paid"), reply_to=parent)
    assert fake.calls_to("chat.postMessage")[-1].params["thread_ts"] == parent.message_id


async def test_edit_updates_the_bots_own_message(fake: FakeSlack, sender: SlackSender) -> None:
    ref = await sender.send(ADDRESS, REPLY)
    # The ref as the outbox stores it: through its dict form.
    await sender.edit(MessageRef.from_dict(ref.to_dict()), Reply("✅ **Paid** — S$25.00 — cake"))
    [call] = fake.calls_to("chat.update")
    assert call.params["channel"] == CHANNEL and call.params["ts"] == ref.message_id
    assert "✅ *Paid*" in call.text_of_blocks()
    # The Pay button is gone from the paid message.
    assert "https://pay.example/p/x" not in call.text_of_blocks()
    assert fake.messages[(CHANNEL, ref.message_id)]["text"] == "✅ Paid — S$25.00 — cake"


@pytest.mark.parametrize("retry_after", [7, 30])
async def test_429_is_retry_later_with_exactly_retry_after(
    fake: FakeSlack, sender: SlackSender, retry_after: int
) -> None:
    fake.fail("chat.postMessage", "ratelimited", status=429, retry_after=retry_after)
    with pytest.raises(RetryLater) as caught:
        await sender.send(ADDRESS, REPLY)
    assert caught.value.after_s == retry_after
    assert len(fake.calls_to("chat.postMessage")) == 1  # no hidden retry inside the SDK


async def test_429_on_edit_is_retry_later_too(fake: FakeSlack, sender: SlackSender) -> None:
    ref = await sender.send(ADDRESS, REPLY)
    fake.fail("chat.update", "ratelimited", status=429, retry_after=3)
    with pytest.raises(RetryLater) as caught:
        await sender.edit(ref, Reply("paid"))
    assert caught.value.after_s == 3


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "is_archived", "account_inactive",
                                   "token_revoked", "invalid_auth"])
async def test_unreachable_targets_are_permanent(fake: FakeSlack, sender: SlackSender, error: str) -> None:
    fake.fail("chat.postMessage", error)
    with pytest.raises(Permanent) as caught:
        await sender.send(ADDRESS, REPLY)
    assert isinstance(caught.value, SlackPermanent) and caught.value.error == error
    assert error in str(caught.value)


async def test_private_channel_without_the_bot_is_not_in_channel(fake: FakeSlack, sender: SlackSender) -> None:
    fake.private_channel("G0SECRET")
    with pytest.raises(SlackPermanent) as caught:
        await sender.send(f"{TEAM}:G0SECRET", REPLY)
    assert caught.value.error == "not_in_channel"


async def test_edit_of_a_vanished_message_is_permanent(fake: FakeSlack, sender: SlackSender) -> None:
    ref = MessageRef("slack", ADDRESS, "1.000001", {"team_id": TEAM, "channel": CHANNEL})
    with pytest.raises(Permanent, match="message_not_found"):
        await sender.edit(ref, Reply("paid"))


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_transient(fake: FakeSlack, sender: SlackSender, status: int) -> None:
    fake.fail("chat.postMessage", status=status)
    with pytest.raises(Transient, match=f"HTTP {status}"):
        await sender.send(ADDRESS, REPLY)


@pytest.mark.parametrize("error", ["internal_error", "fatal_error", "service_unavailable", "some_new_error"])
async def test_temporary_and_unknown_errors_are_transient(fake: FakeSlack, sender: SlackSender, error: str) -> None:
    fake.fail("chat.postMessage", error)
    with pytest.raises(Transient):
        await sender.send(ADDRESS, REPLY)


async def test_network_failure_is_transient() -> None:
    async def lookup(team_id: str) -> str | None:
        return "xoxb-any"

    # Nothing listens on this port: connection refused.
    slack = SlackSender(AsyncWebClient(base_url=f"http://127.0.0.1:{free_port()}/api/", retry_handlers=[]), lookup)
    with pytest.raises(Transient):
        await slack.send(ADDRESS, REPLY)


async def test_workspace_without_installation_is_permanent(fake: FakeSlack, sender: SlackSender) -> None:
    with pytest.raises(Permanent, match="no installation"):
        await sender.send("T0UNKNOWN:C1", REPLY)
    assert fake.calls == []


async def test_failing_token_lookup_is_transient(fake: FakeSlack) -> None:
    async def broken(team_id: str) -> str | None:
        raise ConnectionError("database went away")

    slack = SlackSender(AsyncWebClient(base_url=fake.api_url, retry_handlers=[]), broken)
    with pytest.raises(Transient):
        await slack.send(ADDRESS, REPLY)


@pytest.mark.parametrize("address", ["C0SALES", "T1:c1", "whatsapp:+6591234567"])
async def test_a_malformed_address_is_permanent(sender: SlackSender, address: str) -> None:
    with pytest.raises(Permanent):
        await sender.send(address, REPLY)


async def test_errors_never_quote_the_token(fake: FakeSlack, sender: SlackSender) -> None:
    fake.fail("chat.postMessage", "invalid_auth")
    with pytest.raises(Permanent) as caught:
        await sender.send(ADDRESS, REPLY)
    assert fake.bot_token not in str(caught.value)


async def test_sender_works_without_start_and_after_close(fake: FakeSlack, sqlite_database_url: str) -> None:
    # The worker process may never call start(); then every call opens its own HTTP session.
    db = Database(sqlite_database_url)
    try:
        slack = build_sender(SlackOptions(signing_secret="s", public_base_url="http://127.0.0.1:1",
                                          api_base_url=fake.api_url, bot_token=fake.bot_token), db)
        await slack.send(ADDRESS, REPLY)
        await slack.start()
        await slack.close()
        await slack.send(ADDRESS, REPLY)
        assert len(fake.calls_to("chat.postMessage")) == 2
    finally:
        await db.dispose()
