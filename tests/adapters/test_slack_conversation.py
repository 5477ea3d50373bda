"""Slack end to end with the real conversation core and outbox: /charge in a channel, payment, the link
message edited to "Paid" plus a threaded reply, channel alerts, one shop per workspace, and the 3-second
ack while the database is held up."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from core.links import LinkEvent
from core.models import AlertSubscription, OutboxMessage, PaymentLink
from core.ports import PaymentEvent
from core.sql import table
from tests.adapters.slack_support import CHANNEL, TEAM, SlackLive, slack_settings
from tests.conftest import start_live_app
from tests.fakes.slack import Call, FakeSlack

ALERTS_CHANNEL = "C0ALERTS"
_events = itertools.count(1)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    server = await FakeSlack().start()
    yield server
    await server.close()


@pytest.fixture
async def slack(database_url: str, fake: FakeSlack) -> AsyncIterator[SlackLive]:
    live, client = await start_live_app(slack_settings(database_url, fake))
    yield SlackLive(live, fake)
    await client.close()


async def _charge(slack: SlackLive, text: str, **kwargs: Any) -> tuple[Call, PaymentLink]:
    """/charge in a channel; the posted link message and the stored link."""
    before = len(slack.fake.calls_to("chat.postMessage"))
    assert (await slack.command("/charge", text, **kwargs)).status == 200
    posts = await slack.fake.wait_for("chat.postMessage", before + 1)
    await slack.adapter.idle()
    post = posts[before]
    [pay] = [e for b in post.params["blocks"] if b["type"] == "actions" for e in b["elements"]]
    link = await slack.services.links.get(pay["url"].rsplit("/", 1)[1])
    assert link is not None
    return post, link


async def _pay(slack: SlackLive, link: PaymentLink) -> None:
    n = next(_events)
    outcome, _ = await slack.services.links.record_payment(PaymentEvent(
        provider="sandbox", event_id=f"evt_slack_{n}", kind="payment.succeeded", link_id=link.id,
        provider_ref=f"pi_slack_{n}", amount_minor=link.amount_minor, currency=link.currency, payer_name="Bob"))
    assert outcome.value == "paid"


async def test_charge_posts_a_pay_message_and_payment_turns_it_paid_with_a_threaded_reply(slack: SlackLive) -> None:
    fake = slack.fake
    post, link = await _charge(slack, "25 for 2 birthday cakes")
    assert post.channel == CHANNEL and post.token == fake.bot_token
    text = post.text_of_blocks()
    assert "*$25.00* — 2 birthday cakes" in text and "Expires" in text
    assert (link.amount_minor, link.currency, link.description) == (2500, "USD", "2 birthday cakes")
    assert link.origin_message is not None
    ts = link.origin_message["message_id"]

    await _pay(slack, link)
    [update] = await fake.wait_for("chat.update")
    assert update.channel == CHANNEL and update.params["ts"] == ts
    assert "Paid" in update.text_of_blocks()
    assert "Pay $25.00" not in json.dumps(update.params["blocks"], ensure_ascii=False)  # no second payment
    [reply] = await fake.wait_for("chat.postMessage", where=lambda c: c.params.get("thread_ts") == ts)
    assert reply.channel == CHANNEL
    assert "$25.00" in reply.text_of_blocks()


async def test_alerts_on_in_a_channel_brings_every_paid_alert_there(slack: SlackLive) -> None:
    fake = slack.fake
    assert (await slack.command("/paylinks", "alerts on", channel=ALERTS_CHANNEL, response_key="alerts")).status \
        == 200
    # A first command in a new workspace also opens its shop: a welcome, then the answer.
    welcome, (_, body) = await fake.wait_for_response(2, key="alerts")
    assert "Welcome" in json.dumps(welcome[1])
    assert body["response_type"] == "ephemeral"
    assert "Paid alerts" in json.dumps(body, ensure_ascii=False)
    async with slack.services.db.read() as conn:
        subscriptions = (await conn.execute(select(table(AlertSubscription)))).all()
    assert [(s.platform, s.address) for s in subscriptions] == [("slack", f"{TEAM}:{ALERTS_CHANNEL}")]

    _, link = await _charge(slack, "40 wedding cake")
    await _pay(slack, link)
    [alert] = await fake.wait_for("chat.postMessage", where=lambda c: c.channel == ALERTS_CHANNEL)
    assert "thread_ts" not in alert.params
    assert "$40.00" in alert.text_of_blocks()


async def test_everyone_in_the_workspace_works_for_the_same_shop(slack: SlackLive) -> None:
    fake = slack.fake
    _, link = await _charge(slack, "25 cake", user="U0ALICE", response_key="alice")
    [(_, welcome)] = await fake.wait_for_response(key="alice")
    assert "Welcome" in json.dumps(welcome)
    # Bob and Carol never onboarded: they are staff of the workspace's shop at once (no welcome).
    assert (await slack.command("/paylinks", "links", user="U0BOB", response_key="bob")).status == 200
    [(_, body)] = await fake.wait_for_response(key="bob")
    assert "cake" in json.dumps(body)
    assert (await slack.command("/paylinks", f"status {link.id}", user="U0CAROL", response_key="carol")).status \
        == 200
    [(_, body)] = await fake.wait_for_response(key="carol")
    assert "cake" in json.dumps(body)
    # Another workspace is another shop: it does not see this link.
    await slack.command("/paylinks", f"status {link.id}", team="T0OTHER", user="U0DAVE", response_key="dave")
    *_, (_, body) = await fake.wait_for_response(2, key="dave")
    assert "cake" not in json.dumps(body)


async def test_the_ack_arrives_while_the_database_is_still_busy(slack: SlackLive) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow_database(conn: Any, event: LinkEvent) -> None:
        # Runs inside the link's write transaction: the database is "slow" until the test lets go.
        entered.set()
        await release.wait()

    slack.services.links.hooks.append(slow_database)
    request = asyncio.create_task(slack.command("/charge", "25 cake"))
    try:
        async with asyncio.timeout(10):
            await entered.wait()
            response = await request  # answered while the write transaction is held open
        assert response.status == 200
        assert not release.is_set()
        assert slack.fake.calls_to("chat.postMessage") == []
    finally:
        release.set()
    [post] = await slack.fake.wait_for("chat.postMessage")
    assert post.channel == CHANNEL


async def test_a_typo_gets_a_private_correction_with_an_example(slack: SlackLive) -> None:
    assert (await slack.command("/charge", "25.555 cake")).status == 200
    *_, (_, body) = await slack.fake.wait_for_response(2)
    await slack.adapter.idle()
    assert body["response_type"] == "ephemeral"
    assert "2 decimals" in json.dumps(body)
    assert slack.fake.calls_to("chat.postMessage") == []


async def _outbox_rows(slack: SlackLive, **where: Any) -> list[Any]:
    outbox = table(OutboxMessage)
    query = select(outbox).where(*[outbox.c[k] == v for k, v in where.items()]).order_by(outbox.c.id)
    async with slack.services.db.read() as conn:
        return list((await conn.execute(query)).all())


async def _until(check: Any) -> Any:
    """Poll the database until `check()` returns something truthy (a safety timeout, not a measure)."""
    async with asyncio.timeout(10):
        while True:
            found = await check()
            if found:
                return found
            await asyncio.sleep(0.02)  # the database has no change notification to wait on


@pytest.fixture
async def frozen(database_url: str, fake: FakeSlack) -> AsyncIterator[tuple[SlackLive, datetime]]:
    """The app with a clock that stands still, so retry times can be compared exactly."""
    now = datetime.now(UTC).replace(microsecond=0)
    live, client = await start_live_app(slack_settings(database_url, fake), clock=lambda: now)
    yield SlackLive(live, fake), now
    await client.close()


async def test_a_429_on_the_paid_edit_is_retried_after_exactly_retry_after(
    frozen: tuple[SlackLive, datetime],
) -> None:
    slack, now = frozen
    post, link = await _charge(slack, "25 cake")
    slack.fake.fail("chat.update", "ratelimited", status=429, retry_after=120)
    await _pay(slack, link)
    await slack.fake.wait_for("chat.update")

    async def retried() -> list[Any]:
        return [r for r in await _outbox_rows(slack, link_id=link.id, platform="slack")
                if r.attempts == 1 and r.status == "pending" and r.payload.get("action") == "edit"]

    [row] = await _until(retried)
    assert row.next_attempt_at == now + timedelta(seconds=120)
    assert "rate limited" in (row.last_error or "")
    assert post.channel == CHANNEL


async def test_an_alert_channel_the_bot_was_removed_from_is_disabled(slack: SlackLive) -> None:
    await slack.command("/paylinks", "alerts on", channel=ALERTS_CHANNEL, response_key="alerts")
    await slack.fake.wait_for_response(2, key="alerts")
    slack.fake.private_channel(ALERTS_CHANNEL)  # the channel went private without the bot
    _, link = await _charge(slack, "25 cake")
    await _pay(slack, link)
    await slack.fake.wait_for("chat.postMessage", where=lambda c: c.channel == ALERTS_CHANNEL)

    async def dead() -> list[Any]:
        return [r for r in await _outbox_rows(slack, address=f"{TEAM}:{ALERTS_CHANNEL}") if r.status == "dead"]

    [row] = await _until(dead)
    assert row.attempts == 1  # permanent: not retried
    assert "not_in_channel" in (row.last_error or "")


async def test_an_ambiguous_amount_is_asked_with_buttons_and_the_click_makes_the_link(slack: SlackLive) -> None:
    fake = slack.fake
    assert (await slack.command("/charge", "2 coffees 12.50", response_key="ask")).status == 200
    _welcome, (_, question) = await fake.wait_for_response(2, key="ask")
    assert question["response_type"] == "ephemeral"
    assert "Did you mean" in json.dumps(question, ensure_ascii=False)
    [actions] = [b for b in question["blocks"] if b["type"] == "actions"]
    buttons = actions["elements"]
    assert [b["text"]["text"] for b in buttons] == ["$12.50 — 2 coffees", "$2.00 — coffees 12.50", "Cancel"]
    assert all("url" not in b and b["value"].startswith("answer:") for b in buttons)
    assert fake.calls_to("chat.postMessage") == []  # no link message before the answer
    click = json.dumps({
        "type": "block_actions", "team": {"id": TEAM, "domain": "cakeshop"},
        "user": {"id": "U0ALICE", "username": "alice", "team_id": TEAM},
        "api_app_id": "A0PAYLINKS", "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": "1.2", "channel_id": CHANNEL, "is_ephemeral": True},
        "trigger_id": "1.2.3", "channel": {"id": CHANNEL, "name": "sales"},
        "response_url": fake.response_url("click"),
        "actions": [{"type": "button", "action_id": buttons[0]["action_id"], "block_id": actions["block_id"],
                     "value": buttons[0]["value"], "action_ts": "1.3", "text": buttons[0]["text"]}],
    })
    response = await slack.post(urlencode({"payload": click}), content_type="application/x-www-form-urlencoded")
    assert response.status == 200
    [post] = await fake.wait_for("chat.postMessage")
    await slack.adapter.idle()
    assert "*$12.50* — 2 coffees" in post.text_of_blocks()
    links, _ = await slack.services.links.list_links((await slack.services.merchants.list_merchants())[0].id)
    assert [(link.amount_minor, link.description) for link in links] == [(1250, "2 coffees")]


async def test_paylinks_dashboard_in_a_channel_answers_only_the_asker_with_a_signin_link(slack: SlackLive) -> None:
    """Issue 14 point 1: the sign-in link is never posted where the channel sees it."""
    assert (await slack.command("/paylinks", "dashboard", channel=ALERTS_CHANNEL, response_key="dash")).status == 200
    *_, (_, body) = await slack.fake.wait_for_response(2, key="dash")
    await slack.adapter.idle()
    assert body["response_type"] == "ephemeral"
    text = json.dumps(body)
    assert "/dashboard/signin/" in text
    assert all("/dashboard/signin/" not in c.text_of_blocks() for c in slack.fake.calls_to("chat.postMessage"))
