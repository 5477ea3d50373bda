"""The Slack app inside the real paylinks app (create_app), real slack-bolt and slack_sdk against the fake
Slack Web API, every request signed like Slack signs it.

The conversation core is replaced here by a small scripted one, so these tests are about the transport:
signatures, the ack, where answers go, link messages, Home tab, unfurls. test_slack_conversation.py runs
the same paths with the real conversation core and outbox.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest

from adapters.slack import SlackConfigError
from bots.config import Secret
from core.links import LinkDraft
from core.members import MemberService
from core.money import Money
from core.ports import Button, IncomingMessage, MessageRef, PaymentEvent, Reply
from tests.adapters.slack_support import (
    CHANNEL,
    SIGNING_SECRET,
    TEAM,
    USER,
    SlackLive,
    event_body,
    sign,
    slack_settings,
    slash_body,
)
from tests.conftest import start_live_app
from tests.fakes.slack import FakeSlack


class ScriptedConversation:
    """Stands in for core.conversation: records messages, may wait on a gate, makes real links for /charge."""

    def __init__(self, live: SlackLive) -> None:
        self.live = live
        self.seen: list[IncomingMessage] = []
        self.started = asyncio.Event()
        self.gate: asyncio.Event | None = None
        self.merchant_id: str | None = None
        self.fail = False

    async def handle(self, message: IncomingMessage) -> list[Reply]:
        self.seen.append(message)
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("boom")
        if message.text.startswith("/charge"):
            services = self.live.services
            if self.merchant_id is None:
                self.merchant_id = (await services.merchants.create("Cake Shop", currency="SGD")).id
            link, _ = await services.links.create(LinkDraft(
                merchant_id=self.merchant_id, money=Money(2500, "SGD"), description="birthday cake",
                origin_platform="slack", origin_address=message.address,
            ))
            url = services.links.url(link.id)
            return [Reply(text=f"**S$25.00** — birthday cake\n{url}\nExpires in 7 days",
                          buttons=(Button("Pay S$25.00", url),), link_id=link.id)]
        return [Reply(f"You said `{message.text}`")]


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


@pytest.fixture
def conversation(slack: SlackLive) -> ScriptedConversation:
    scripted = ScriptedConversation(slack)
    slack.services.conversation = scripted
    return scripted


# ---------------------------------------------------------------- start-up


async def test_single_workspace_mode_checks_the_token_with_auth_test(slack: SlackLive) -> None:
    [call] = slack.fake.calls_to("auth.test")
    assert call.token == slack.fake.bot_token
    assert slack.adapter.team_id == TEAM
    assert slack.services.senders["slack"].platform == "slack"


async def test_a_rejected_bot_token_stops_start_up(sqlite_database_url: str, fake: FakeSlack) -> None:
    settings = slack_settings(sqlite_database_url, fake, bot_token=Secret("xoxb-revoked"))
    with pytest.raises(SlackConfigError, match=r"slack\.bot_token"):
        await start_live_app(settings)


# ---------------------------------------------------------------- signatures


async def test_a_correctly_signed_command_is_acknowledged_and_handled(
    slack: SlackLive, conversation: ScriptedConversation
) -> None:
    response = await slack.command("/paylinks", "links paid")
    assert response.status == 200
    [(key, body)] = await slack.fake.wait_for_response()
    assert key == "r1"
    assert body["response_type"] == "ephemeral"
    assert "`/links paid`" in json.dumps(body)
    [message] = conversation.seen
    assert (message.workspace, message.user_id, message.address) == (TEAM, f"{TEAM}:{USER}", f"{TEAM}:{CHANNEL}")


async def test_a_request_older_than_five_minutes_is_refused(
    slack: SlackLive, conversation: ScriptedConversation
) -> None:
    response = await slack.command("/charge", "25 cake", timestamp=int(time.time()) - 301)
    assert response.status == 401
    await slack.adapter.idle()
    assert conversation.seen == []
    assert slack.fake.calls_to("chat.postMessage") == []


async def test_a_request_signed_with_another_secret_is_refused(
    slack: SlackLive, conversation: ScriptedConversation
) -> None:
    response = await slack.command("/charge", "25 cake", secret="not-the-signing-secret")
    assert response.status == 401
    await slack.adapter.idle()
    assert conversation.seen == []


async def test_a_changed_body_or_missing_signature_is_refused(
    slack: SlackLive, conversation: ScriptedConversation
) -> None:
    body = event_body({"type": "app_home_opened", "user": USER, "channel": "D0HOME", "tab": "home"})
    headers = {"Content-Type": "application/json", **sign(body)}
    tampered = body.replace(USER, "U0MALLORY")
    assert (await slack.client.post("/slack/events", data=tampered, headers=headers)).status == 401
    bare = await slack.client.post("/slack/events", data=body, headers={"Content-Type": "application/json"})
    assert bare.status == 401
    await slack.adapter.idle()
    assert slack.fake.calls_to("views.publish") == []


async def test_url_verification_answers_the_challenge(slack: SlackLive) -> None:
    body = json.dumps({"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                       "type": "url_verification"})
    response = await slack.post(body, content_type="application/json")
    assert response.status == 200
    assert "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in await response.text()


# ---------------------------------------------------------------- the ack comes first


async def test_the_ack_is_sent_before_the_slow_work_finishes(
    slack: SlackLive, conversation: ScriptedConversation
) -> None:
    conversation.gate = asyncio.Event()  # the "database" answers only when the test says so
    response = await slack.command("/charge", "25 cake")
    # Slack has its answer while the work is still blocked …
    assert response.status == 200
    assert conversation.started.is_set()
    assert not conversation.gate.is_set()
    assert slack.fake.calls_to("chat.postMessage") == []
    # … and the work completes after it.
    conversation.gate.set()
    [post] = await slack.fake.wait_for("chat.postMessage")
    assert post.channel == CHANNEL


# ---------------------------------------------------------------- the link message


async def test_charge_posts_the_link_message_as_the_bot_and_keeps_channel_and_ts(
    slack: SlackLive, conversation: ScriptedConversation
) -> None:
    assert (await slack.command("/charge", "25 birthday cake")).status == 200
    [post] = await slack.fake.wait_for("chat.postMessage")
    await slack.adapter.idle()
    assert post.token == slack.fake.bot_token  # as the bot, so chat.update may edit it later
    assert post.channel == CHANNEL
    text = post.text_of_blocks()
    assert "*S$25.00* — birthday cake" in text and "Expires in 7 days" in text
    actions = [b for b in post.params["blocks"] if b["type"] == "actions"]
    [pay] = actions[0]["elements"]
    assert pay["text"]["text"] == "Pay S$25.00" and pay["style"] == "primary"
    link_id = pay["url"].rsplit("/", 1)[1]
    link = await slack.services.links.get(link_id)
    assert link is not None and link.origin_message is not None
    ts = link.origin_message["message_id"]
    assert (CHANNEL, ts) in slack.fake.messages
    assert link.origin_message["extra"]["channel"] == CHANNEL
    # The thread of the link message is where alerts about it are answered.
    assert link.origin_address == f"{TEAM}:{CHANNEL}:{ts}"
    assert slack.fake.responses == []  # nothing ephemeral: the channel got the message


async def test_private_channel_without_the_bot_gets_an_ephemeral_invite_hint_and_the_link_still_exists(
    slack: SlackLive, conversation: ScriptedConversation
) -> None:
    slack.fake.private_channel("G0SECRET")
    assert (await slack.command("/charge", "25 birthday cake", channel="G0SECRET")).status == 200
    [(_, body)] = await slack.fake.wait_for_response()
    await slack.adapter.idle()
    text = json.dumps(body)
    assert body["response_type"] == "ephemeral"
    assert "/invite @paylinks" in text
    links, _ = await slack.services.links.list_links(conversation.merchant_id)
    [link] = links
    assert slack.services.links.url(link.id) in text
    assert link.origin_message is None  # nothing to edit later
    [post] = slack.fake.calls_to("chat.postMessage")
    assert post.channel == "G0SECRET"


async def test_when_response_url_fails_chat_post_ephemeral_is_used(
    slack: SlackLive, conversation: ScriptedConversation
) -> None:
    slack.fake.private_channel("G0SECRET")
    # A response_url nobody answers (used up or expired): the ephemeral answer goes through the Web API.
    body = urlencode({
        "team_id": TEAM, "channel_id": "G0SECRET", "user_id": USER, "user_name": "alice", "command": "/charge",
        "text": "25 cake", "response_url": f"{slack.fake.url}/gone",
    })
    assert (await slack.post(body, content_type="application/x-www-form-urlencoded")).status == 200
    [ephemeral] = await slack.fake.wait_for("chat.postEphemeral")
    assert ephemeral.params["user"] == USER and ephemeral.channel == "G0SECRET"
    assert "/invite @paylinks" in ephemeral.text_of_blocks()


async def test_a_failing_conversation_gets_an_apology_not_silence(
    slack: SlackLive, conversation: ScriptedConversation
) -> None:
    conversation.fail = True
    assert (await slack.command("/paylinks", "report")).status == 200
    [(_, body)] = await slack.fake.wait_for_response()
    assert "Sorry" in json.dumps(body)


async def test_the_link_message_can_be_edited_to_paid(slack: SlackLive, conversation: ScriptedConversation) -> None:
    await slack.command("/charge", "25 birthday cake")
    await slack.fake.wait_for("chat.postMessage")
    await slack.adapter.idle()
    [link] = (await slack.services.links.list_links(conversation.merchant_id))[0]
    assert link.origin_message is not None
    ref = MessageRef.from_dict(link.origin_message)
    await slack.services.senders["slack"].edit(ref, Reply("✅ **Paid** — S$25.00 — birthday cake"))
    [update] = slack.fake.calls_to("chat.update")
    assert update.params["ts"] == ref.message_id and update.channel == CHANNEL
    assert "✅ *Paid*" in update.text_of_blocks()


# ---------------------------------------------------------------- interactivity, Home tab, unfurls


async def test_clicks_on_url_buttons_are_acknowledged(slack: SlackLive) -> None:
    payload = {
        "type": "block_actions", "team": {"id": TEAM, "domain": "cakeshop"}, "user": {"id": USER},
        "api_app_id": "A0PAYLINKS", "token": "t", "trigger_id": "1.2.3",
        "container": {"type": "message", "message_ts": "1.000001", "channel_id": CHANNEL},
        "channel": {"id": CHANNEL}, "response_url": slack.fake.response_url("click"),
        "actions": [{"action_id": "open_url_0", "block_id": "paylinks_buttons", "type": "button",
                     "text": {"type": "plain_text", "text": "Pay S$25.00"}, "url": "http://x/p/y",
                     "action_ts": "1.2"}],
    }
    body = urlencode({"payload": json.dumps(payload)})
    response = await slack.post(body, content_type="application/x-www-form-urlencoded")
    assert response.status == 200


async def _merchant_with_member(slack: SlackLive) -> tuple[str, int]:
    """The workspace's shop, opened by Alice as her first command would (core.members)."""
    services = slack.services
    members = MemberService(services.db, services.merchants, clock=services.clock)
    identity = await members.onboard(IncomingMessage(
        platform="slack", user_id=f"{TEAM}:{USER}", address=f"{TEAM}:{CHANNEL}", text="/start",
        display_name="Alice's Cakes", is_group=True, workspace=TEAM))
    await services.merchants.update(identity.merchant.id, currency="SGD", locale="en_SG")
    assert identity.member.id is not None
    return identity.merchant.id, identity.member.id


async def test_home_tab_shows_recent_links_and_todays_totals(slack: SlackLive) -> None:
    services = slack.services
    merchant_id, member_id = await _merchant_with_member(slack)
    paid, _ = await services.links.create(LinkDraft(merchant_id=merchant_id, money=Money(2500, "SGD"),
                                                    description="birthday cake", created_by_member_id=member_id))
    await services.links.create(LinkDraft(merchant_id=merchant_id, money=Money(15000000, "IDR"),
                                          description="wedding <cake>", created_by_member_id=member_id))
    await services.links.create(LinkDraft(merchant_id=merchant_id, money=Money(999, "SGD"),
                                          description="someone else's tart"))
    await services.links.record_payment(PaymentEvent(
        provider="sandbox", event_id="evt_1", kind="payment.succeeded", link_id=paid.id, provider_ref="pi_1",
        amount_minor=2500, currency="SGD"))
    response = await slack.event({"type": "app_home_opened", "user": USER, "channel": "D0HOME", "tab": "home",
                                  "event_ts": "1.2"})
    assert response.status == 200
    [publish] = await slack.fake.wait_for("views.publish")
    assert publish.params["user_id"] == USER
    view = slack.fake.home_views[USER]
    text = json.dumps(view, ensure_ascii=False)
    assert view["type"] == "home"
    assert "Alice's Cakes" in text
    assert "birthday cake" in text and "wedding &lt;cake&gt;" in text
    assert "someone else's tart" not in text  # the person's own links
    assert "S$25.00 (1 paid link)" in text  # today's totals per currency
    assert "✅ Paid" in text and "🕓 Open" in text


async def test_home_tab_is_published_in_the_viewers_slack_language(slack: SlackLive) -> None:
    """Issue 18: the App Home in the viewer's language (their Slack locale from users.info, as the bot's
    answers use), with English (above) unchanged."""
    services = slack.services
    merchant_id, member_id = await _merchant_with_member(slack)
    paid, _ = await services.links.create(LinkDraft(merchant_id=merchant_id, money=Money(2500, "SGD"),
                                                    description="birthday cake", created_by_member_id=member_id))
    await services.links.create(LinkDraft(merchant_id=merchant_id, money=Money(990, "SGD"), description="tart",
                                          created_by_member_id=member_id))
    await services.links.record_payment(PaymentEvent(
        provider="sandbox", event_id="evt_th", kind="payment.succeeded", link_id=paid.id, provider_ref="pi_th",
        amount_minor=2500, currency="SGD"))
    slack.fake.user_locales[USER] = "th-TH"
    await slack.event({"type": "app_home_opened", "user": USER, "channel": "D0HOME", "tab": "home"})
    [publish] = await slack.fake.wait_for("views.publish")
    assert publish.params["user_id"] == USER
    text = json.dumps(slack.fake.home_views[USER], ensure_ascii=False)
    assert "*ชำระแล้ววันนี้:* S$25.00 (ชำระแล้ว 1 ลิงก์)" in text  # "Paid today: … (1 paid link)"
    assert "*ลิงก์ล่าสุดของคุณ*" in text  # "Your recent links"
    assert "✅ ชำระแล้ว" in text and "🕓 เปิดอยู่" in text  # Paid, Open
    assert "หมดอายุ " in text and "|เปิด>" in text  # "expires …", the "open" link
    assert "birthday cake" in text and "tart" in text  # what the seller typed stays as typed
    for english in ("Paid today", "Your recent links", "paid link", "expires", "|open>"):
        assert english not in text


async def test_home_tab_for_a_stranger_is_in_their_language(slack: SlackLive) -> None:
    slack.fake.user_locales["U0NEWTH"] = "id-ID"
    await slack.event({"type": "app_home_opened", "user": "U0NEWTH", "channel": "D0NEW", "tab": "home"})
    await slack.fake.wait_for("views.publish")
    text = json.dumps(slack.fake.home_views["U0NEWTH"], ensure_ascii=False)
    assert "Buat tautan pembayaran dari channel mana pun" in text and "/charge 150.000 kue ulang tahun" in text
    assert "Make a payment link" not in text


async def test_home_tab_for_a_stranger_explains_how_to_start(slack: SlackLive) -> None:
    await slack.event({"type": "app_home_opened", "user": "U0NEW", "channel": "D0NEW", "tab": "home"})
    await slack.fake.wait_for("views.publish")
    assert "/charge 25" in json.dumps(slack.fake.home_views["U0NEW"])


async def test_messages_tab_is_left_alone(slack: SlackLive) -> None:
    await slack.event({"type": "app_home_opened", "user": USER, "channel": "D0HOME", "tab": "messages"})
    # Prove the listener ran to its end, then that it published nothing.
    await slack.event({"type": "app_home_opened", "user": "U0OTHER", "channel": "D0X", "tab": "home"})
    await slack.fake.wait_for("views.publish")
    assert [c.params["user_id"] for c in slack.fake.calls_to("views.publish")] == ["U0OTHER"]


async def test_pasted_pay_links_unfurl_with_amount_and_status(slack: SlackLive) -> None:
    services = slack.services
    merchant_id, _ = await _merchant_with_member(slack)
    link, _ = await services.links.create(LinkDraft(merchant_id=merchant_id, money=Money(2500, "SGD"),
                                                    description="birthday cake"))
    url = services.links.url(link.id)
    host = url.split("/")[2]
    event = {
        "type": "link_shared", "channel": CHANNEL, "user": USER, "message_ts": "1700000000.000200",
        "source": "conversations_history", "unfurl_id": "C0SALES.1700000000.000200.abc",
        "links": [{"domain": host, "url": url}, {"domain": host, "url": f"{services.links.url('unknownlinkid000000')}"},
                  {"domain": "example.org", "url": "https://example.org/x"}],
        "event_ts": "1.2",
    }
    assert (await slack.event(event)).status == 200
    [call] = await slack.fake.wait_for("chat.unfurl")
    assert call.params["channel"] == CHANNEL and call.params["ts"] == "1700000000.000200"
    unfurls = call.params["unfurls"]
    assert list(unfurls) == [url]
    shown = json.dumps(unfurls[url], ensure_ascii=False)
    assert "S$25.00" in shown and "🕓 Open" in shown and "birthday cake" in shown


async def test_an_unfurl_speaks_the_shops_language(slack: SlackLive) -> None:
    """Everyone in the channel reads an unfurl: the shop's language (a Thai shop here), like the preview card."""
    services = slack.services
    merchant_id, _ = await _merchant_with_member(slack)
    await services.merchants.update(merchant_id, locale="th_TH")
    link, _ = await services.links.create(LinkDraft(merchant_id=merchant_id, money=Money(2500, "SGD"),
                                                    description="birthday cake"))
    url = services.links.url(link.id)
    await slack.event({"type": "link_shared", "channel": CHANNEL, "user": USER, "message_ts": "1700000000.000300",
                       "links": [{"domain": url.split("/")[2], "url": url}], "event_ts": "1.3"})
    [call] = await slack.fake.wait_for("chat.unfurl")
    shown = call.params["unfurls"][url]
    text = json.dumps(shown, ensure_ascii=False)
    assert "🕓 เปิดอยู่" in text and "หมดอายุ " in text and "birthday cake" in text
    button = shown["blocks"][1]["elements"][0]["text"]["text"]
    assert button.startswith("ชำระ ") and "Pay" not in button


async def test_links_pasted_in_the_composer_unfurl_by_unfurl_id(slack: SlackLive) -> None:
    merchant_id, _ = await _merchant_with_member(slack)
    link, _ = await slack.services.links.create(LinkDraft(merchant_id=merchant_id, money=Money(2500, "SGD"),
                                                          description="cake"))
    await slack.services.links.cancel(link.id, merchant_id)
    url = slack.services.links.url(link.id)
    await slack.event({"type": "link_shared", "channel": "COMPOSER", "user": USER, "message_ts": "U0ALICE-1-2",
                       "source": "composer", "unfurl_id": "Uabc", "links": [{"domain": "x", "url": url}]})
    [call] = await slack.fake.wait_for("chat.unfurl")
    assert call.params["unfurl_id"] == "Uabc" and call.params["source"] == "composer"
    assert "channel" not in call.params
    assert "🚫 Cancelled" in json.dumps(call.params["unfurls"], ensure_ascii=False)


async def test_signing_secret_never_appears_in_responses(slack: SlackLive) -> None:
    response = await slack.command("/charge", "25", secret="wrong")
    assert SIGNING_SECRET not in await response.text()


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Slack-Request-Timestamp": "abc"},
        {"X-Slack-Request-Timestamp": "²"},
        {"X-Slack-Request-Timestamp": "99999999999999999999999"},
        {"X-Slack-Signature": "v0=é"},
        {"X-Slack-Signature": "é"},
    ],
)
async def test_malformed_signature_headers_are_refused_not_a_500(
    slack: SlackLive, conversation: ScriptedConversation, caplog: pytest.LogCaptureFixture, headers: dict[str, str]
) -> None:
    body = slash_body(slack.fake, "/charge", "25 cake")
    all_headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body), **headers}
    encoded = {k: v.encode().decode("latin-1") for k, v in all_headers.items()}  # raw UTF-8 bytes on the wire
    response = await slack.client.post("/slack/events", data=body.encode(), headers=encoded)
    assert response.status == 401, await response.text()
    await slack.adapter.idle()
    assert conversation.seen == []
    assert not [r for r in caplog.records if r.exc_info is not None]


async def test_invoice_posts_the_link_and_uploads_the_pdf_into_its_thread(slack: SlackLive) -> None:
    import io

    from pypdf import PdfReader

    assert (await slack.command("/paylinks", "invoice to alice@example.com\n2 x cake 25\ndelivery 5\ntax 9%")).status \
        == 200
    [post] = await slack.fake.wait_for("chat.postMessage")
    await slack.fake.wait_for("files.completeUploadExternal")
    await slack.fake.wait_for("files.completeUploadExternal")
    await slack.adapter.idle()
    assert "Subtotal" in post.text_of_blocks()
    [shared] = slack.fake.shared_files
    assert shared["channel"] == CHANNEL and shared["name"] == "INV-2026-0001.pdf"
    assert shared["title"] == "Invoice INV-2026-0001 (PDF)"
    assert (CHANNEL, shared["thread_ts"]) in slack.fake.messages  # in the link message's thread
    pdf = "".join(p.extract_text() for p in PdfReader(io.BytesIO(slack.fake.uploads[shared["id"]])).pages)
    assert "INV-2026-0001" in pdf and "alice@example.com" in pdf
