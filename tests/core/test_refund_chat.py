"""/refund in chat (issue 13 point 4): asks first, the owner confirms (staff may ask), /status shows the money's
life and the timeline; `/paylinks refund` on Slack. On SQLite and PostgreSQL through the `chat` fixture."""

from __future__ import annotations

import dataclasses
import re

from sqlalchemy import select

from adapters.slack.parse import command_text
from core.commands import BY_NAME
from core.markup import to_plain
from core.models import OutboxMessage, RefundStatus
from core.ports import IncomingMessage, MessageRef, PaymentEvent, RefundAnswer, RefundState
from core.sql import table
from tests.chat_support import ChatDriver

OUTBOX = table(OutboxMessage)


class PendingProvider:
    """Stands in for the sandbox so the test decides when the provider confirms (its webhook, below)."""

    name = "sandbox"
    test_mode = True

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    async def refund(self, payment: object, amount_minor: int, idempotency_key: str, *,
                     reason: str | None = None) -> RefundAnswer:
        self.asked.append((idempotency_key, amount_minor))
        return RefundAnswer(provider_ref=f"re_prov_{len(self.asked)}", state=RefundState.PENDING)


async def open_shop(chat: ChatDriver) -> None:
    """A Singapore shop: amounts read S$25.00."""
    await chat("/start")
    identity = await chat.services.conversation.members.identify(chat.message(""))
    assert identity is not None
    await chat.services.merchants.update(identity.merchant.id, currency="SGD", locale="en_SG")


async def charge_and_pay(chat: ChatDriver, text: str = "/charge 25 cake") -> str:
    (reply,) = await chat(text)
    assert reply.link_id
    await chat.services.links.attach_message(reply.link_id, MessageRef("console", chat.user, "m1"))
    await chat.services.links.record_payment(PaymentEvent(
        provider="sandbox", event_id=f"evt_{reply.link_id}", kind="payment.succeeded", link_id=reply.link_id,
        provider_ref=f"ch_{reply.link_id}", amount_minor=2500, currency="SGD", payer_name="Pat"))
    return reply.link_id


async def confirm_webhook(chat: ChatDriver, n: int) -> None:
    outcome, _ = await chat.services.links.record_payment(PaymentEvent(
        provider="sandbox", event_id=f"evt_refund_{n}", kind="refund.succeeded", link_id="", provider_ref="",
        amount_minor=0, currency="SGD", refund_ref=f"re_prov_{n}"))
    assert outcome.value == "recorded"


async def test_refund_asks_first_and_no_refunds_nothing(chat: ChatDriver) -> None:
    provider = PendingProvider()
    chat.services.refunds.provider = provider  # type: ignore[assignment]
    chat.services.refunds.providers = None  # the stand-in answers for every shop
    await open_shop(chat)
    link_id = await charge_and_pay(chat)
    (question,) = await chat(f"/refund {link_id[:8]}")
    assert to_plain(question.text).startswith("↩️ Refund S$25.00 to Pat for cake? yes / no")
    assert [b.label for b in question.buttons] == ["Yes, refund S$25.00", "No"]
    assert await chat.text("no") == "OK, nothing refunded."
    assert provider.asked == []
    (question,) = await chat(f"/refund {link_id[:8]} 10")
    assert "Refund S$10.00 to Pat" in to_plain(question.text)
    assert question.buttons[0].action is not None
    answer = await chat.conversation.handle(_pressed(chat, question.buttons[0].action))
    assert to_plain(answer[0].text) == "↩️ Refund of S$10.00 asked of sandbox. I'll tell you when it is confirmed."
    # A second press of the same button is the same refund.
    again = await chat.conversation.handle(_pressed(chat, question.buttons[0].action))
    assert "closed" in to_plain(again[0].text) or "asked of sandbox" in to_plain(again[0].text)
    assert len(provider.asked) == 1 and provider.asked[0][1] == 1000
    await confirm_webhook(chat, 1)
    status = await chat.text(f"/status {link_id[:8]}")
    assert "✅ Paid" in status and "refunded S$10.00" in status and "S$10.00 succeeded" in status
    assert re.search(r"🕑 .* made → .* paid → .* refund asked → .* refunded", status), status
    # The seller hears when the provider confirms.
    async with chat.services.db.read() as conn:
        kinds = [r.kind for r in (await conn.execute(select(OUTBOX.c.kind).where(OUTBOX.c.link_id == link_id)))]
    assert "refund.succeeded.alert" in kinds and "refund.succeeded.edit" in kinds


async def test_refund_mistakes_are_explained_with_an_example(chat: ChatDriver) -> None:
    chat.services.refunds.provider = PendingProvider()  # type: ignore[assignment]
    chat.services.refunds.providers = None  # the stand-in answers for every shop
    await open_shop(chat)
    assert "Which link?" in await chat.text("/refund")
    assert "can't find a link" in await chat.text("/refund nothing-here")
    link_id = await charge_and_pay(chat)
    too_much = await chat.text(f"/refund {link_id[:8]} 30")
    assert "at most S$25.00" in too_much and f"/refund {link_id[:8]} 25.00" in too_much
    unreadable = await chat.text(f"/refund {link_id[:8]} lots")
    assert "couldn't read" in unreadable and "For example" in unreadable
    (unpaid,) = await chat("/charge 5 tea")
    assert "nothing to refund" in await chat.text(f"/refund {unpaid.link_id}")


async def test_staff_may_ask_and_the_owner_confirms(chat: ChatDriver) -> None:
    provider = PendingProvider()
    chat.services.refunds.provider = provider  # type: ignore[assignment]
    chat.services.refunds.providers = None  # the stand-in answers for every shop
    owner = chat.as_user("alice", address="group-1", is_group=True)
    await open_shop(owner)
    code = re.search(r"Invite code for .*: ([A-Z0-9]{8})", await owner.text("/invite"))
    assert code is not None
    staff = chat.as_user("bob", address="group-1", is_group=True)
    await staff(f"/join {code.group(1)}")
    link_id = await charge_and_pay(owner)
    asked = await staff.text(f"/refund {link_id[:8]}")
    assert "Bob asks for a refund; the owner Alice confirms here." in asked
    assert "Refund S$25.00 to Pat for cake? yes / no" in asked
    await staff("yes")  # not theirs to answer
    assert provider.asked == []
    done = await owner.text("yes")
    assert done.startswith("↩️ Refund of S$25.00 asked of sandbox")
    (refund_id, amount), = provider.asked
    stored = await chat.services.refunds.get(refund_id)
    assert stored is not None and stored.status == RefundStatus.PENDING and amount == 2500
    assert stored.requested_by == "chat:console:bob"


async def test_paylinks_refund_on_slack_is_the_refund_command() -> None:
    assert command_text("/paylinks", "refund INV-1042 10") == "/refund INV-1042 10"
    assert BY_NAME["refund"].usage == "/refund INV-1042 [amount]"


def _pressed(chat: ChatDriver, action: str | None) -> IncomingMessage:
    return dataclasses.replace(chat.message(""), action=action)


async def test_staff_alone_with_the_bot_is_told_to_ask_the_owner(chat: ChatDriver) -> None:
    chat.services.refunds.provider = PendingProvider()  # type: ignore[assignment]
    chat.services.refunds.providers = None  # the stand-in answers for every shop
    await open_shop(chat)
    code = re.search(r"Invite code for .*: ([A-Z0-9]{8})", await chat.text("/invite"))
    assert code is not None
    staff = chat.as_user("bob")
    await staff(f"/join {code.group(1)}")
    link_id = await charge_and_pay(chat)
    answer = await staff.text(f"/refund {link_id[:8]}")
    assert "Only the owner of" in answer and f"/refund {link_id[:8]}" in answer
