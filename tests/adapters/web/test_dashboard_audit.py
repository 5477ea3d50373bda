"""The audit log (issue 14, point 6) gets what changes money or access wherever it is done: refunds and
cancellations from chat and the API (the CLI's are in tests/bots/test_cli_refund.py and
tests/bots/test_accounts_cli.py), invites and joins from chat; each with who, when and from which platform
or address, shown to the owner at /dashboard/audit. Both back ends; the sandbox refunds for real."""

from __future__ import annotations

from sqlalchemy import select

from core.links import LinkDraft
from core.models import AuditEvent
from core.money import Money
from core.ports import IncomingMessage
from core.sql import table
from tests.adapters.web.dashboard_support import pay_link, shop_with_member, sign_in, signin_url
from tests.conftest import LiveApp

AUDIT = table(AuditEvent)


def _said(text: str, user: str = "u1") -> IncomingMessage:
    return IncomingMessage(platform="console", user_id=user, address=f"console:{user}", text=text,
                           display_name=user.title())


async def _paid(live: LiveApp, merchant_id: str, description: str) -> str:
    link, _ = await live.services.links.create(LinkDraft(
        merchant_id=merchant_id, money=Money(2500, "SGD"), description=description,
        origin_platform="console", origin_address="console:u1"))
    await pay_link(live, link.id)
    return link.id


async def test_refunds_cancellations_and_team_changes_from_chat_and_api_are_audited(live: LiveApp) -> None:
    merchant_id, owner_id = await shop_with_member(live)
    conversation = live.services.conversation

    # A refund from chat: asked, then confirmed by the owner's "1".
    by_chat = await _paid(live, merchant_id, "chat cake")
    (question,) = await conversation.handle(_said(f"/refund {by_chat[:8]} 10"))
    assert "yes / no" in question.text
    (answer,) = await conversation.handle(_said("1"))
    assert "Refund" in answer.text and "Nothing refunded" not in answer.text
    # A refund through the API with a key; its replay (same Idempotency-Key) is not a second entry.
    by_api = await _paid(live, merchant_id, "api cake")
    key, secret = await live.services.merchants.create_api_key(merchant_id, test=True)
    headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": "refund-once"}
    for _ in range(2):
        response = await live.client.post(f"/api/v1/links/{by_api}/refund", json={"amount": "5.00"},
                                          headers=headers)
        assert response.status in (200, 201), await response.text()
    # A cancellation from chat, an invite from chat and a join from another chat user.
    open_link, _ = await live.services.links.create(LinkDraft(
        merchant_id=merchant_id, money=Money(900, "SGD"), description="scone", origin_platform="console"))
    await conversation.handle(_said(f"/cancel {open_link.id}"))
    (invite,) = await conversation.handle(_said("/invite"))
    code = invite.text.split("`")[1]
    await conversation.handle(_said(f"/join {code}", user="u9"))

    async with live.services.db.read() as conn:
        rows = (await conn.execute(select(AUDIT).where(AUDIT.c.merchant_id == merchant_id)
                                   .order_by(AUDIT.c.id))).all()
    seen = [(r.action, r.platform, r.member_id, r.address, r.detail.get("link_id")) for r in rows]
    joined = next(r for r in rows if r.action == "member.joined")
    assert seen == [
        ("link.refunded", "console", owner_id, "console:u1", by_chat),
        ("link.refunded", "api", None, "127.0.0.1", by_api),
        ("link.cancelled", "console", owner_id, "console:u1", open_link.id),
        ("invite.created", "console", owner_id, "console:u1", None),
        ("member.joined", "console", joined.member_id, "console:u9", None),
    ]
    assert rows[0].actor == "U1" and rows[1].actor == f"API key {key.id}"
    assert (rows[0].detail["amount"], rows[0].detail["currency"]) == ("10.00", "SGD")
    assert (rows[1].detail["amount"], rows[1].detail["currency"]) == ("5.00", "SGD")
    assert joined.member_id is not None and joined.member_id != owner_id and joined.detail["role"] == "staff"
    assert all(r.at is not None for r in rows)

    # The owner reads them at /dashboard/audit: what, who, from where.
    await sign_in(live.client, await signin_url(live, merchant_id, owner_id))
    page = await (await live.client.get("/dashboard/audit")).text()
    for text in ("link.refunded", "link.cancelled", "invite.created", "member.joined", "console:u9",
                 f"API key {key.id}", "127.0.0.1", by_chat, by_api):
        assert text in page, text
