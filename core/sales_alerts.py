"""Alerts for links that sell many times (core/reusable.py), written in the payment's transaction.

Each payment alerts the origin chat and the subscribed chats like a paid alert (kind `link.paid.alert`,
so the dispatcher merges them into digests under load), and the link message is edited to show the count
("🎟 12 of 50 sold · S$300.00"). Edits are coalesced: while an edit of that message is still waiting
(not yet taken by a dispatcher), the next payment rewrites it instead of adding one, so a burst of
payments makes a few edits at the platform's pace (core/pacing.py), never one per payment. "Sold out" is
announced once (the link's guarded transition happens once).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from core import i18n
from core.links import LinkEvent, LinkEventKind
from core.markup import user
from core.models import OutboxStatus
from core.money import format_money
from core.outbox_texts import EVENT_PAID, AlertFacts, alert_reply, test_mark
from core.ports import Button, MessageRef, Reply
from core.sales_texts import counts_text

if TYPE_CHECKING:
    from core.db import DbConnection
    from core.outbox import Outbox

EDIT_KIND = "link.sales.edit"
SOLD_OUT_KIND = "link.sold_out.alert"


def sales_message(event: LinkEvent, locale: str, url: str, language: str | None = None) -> Reply:
    """The link message as it reads now: unit amount, description, counts, and Pay while it is open."""
    link = event.link
    with i18n.speaking(language or i18n.language_of_locale(locale)) as t:
        amount = format_money(link.amount_minor, link.currency, locale)
        counts = counts_text(link, locale)
        if event.kind is LinkEventKind.SOLD_OUT:
            return Reply(text=f"**{amount}** — {user(link.description)}\n{counts}\n" + t.gettext("🎟 Sold out"),
                         link_id=link.id)
        return Reply(text=f"💳 **{amount}** — {user(link.description)}\n{counts}\n{url}",
                     buttons=(Button(t.gettext("Pay %(amount)s", amount=amount), url),), link_id=link.id)


async def sales_rows(hook: Outbox, conn: DbConnection, event: LinkEvent) -> list[dict[str, Any]]:
    from core.outbox import (
        _MERCHANT_AND_SUBSCRIPTIONS,
        ACTION_EDIT,
        ACTION_SEND,
        OUTBOX,
        Target,
        dedupe_key,
        new_row,
        payload,
        reader_language,
        target_facts,
    )

    link = event.link
    found = (await conn.execute(_MERCHANT_AND_SUBSCRIPTIONS, {"merchant_id": link.merchant_id})).all()
    merchant = found[0] if found else None
    locale = merchant.locale if merchant else "en"
    url = hook.link_url(link.id)
    payment = event.payment
    sold_out = event.kind is LinkEventKind.SOLD_OUT
    facts = AlertFacts(
        event=EVENT_PAID, link_id=link.id,
        amount_minor=payment.amount_minor if payment and not sold_out else link.amount_collected_minor,
        currency=link.currency, description=link.description, at=event.at, locale=locale,
        merchant_name=merchant.name if merchant else "", reference=link.reference,
        payer_name=payment.payer_name if payment else None, url=url,
        livemode=bool(payment.livemode if payment else link.livemode),
        timezone=merchant.timezone if merchant else None)
    targets: list[Target] = []
    if link.origin_platform and link.origin_address:
        targets.append(Target(link.origin_platform, link.origin_address))
    targets.extend(t for t in (Target(r.platform, r.address) for r in found if r.platform is not None)
                   if t not in targets)
    edit_target = None
    if link.origin_message:
        ref = MessageRef.from_dict(link.origin_message)
        edit_target = Target(ref.platform, ref.address)
    skip, languages = await target_facts(conn, [*targets, *([edit_target] if edit_target else [])])
    rows: list[dict[str, Any]] = []
    for target in targets:
        if target in skip:
            continue
        # Each chat reads its own language (core/outbox.py reader_language).
        language = reader_language(target, languages, facts.shop_language, customer=False)
        with i18n.speaking(language) as t:
            counts = counts_text(link, locale)
            if sold_out:
                reply = Reply(text=t.gettext("🎟 Sold out%(mark)s: %(description)s — %(counts)s",
                                             mark=test_mark(facts, language),
                                             description=f"**{user(link.description)}**", counts=counts),
                              link_id=link.id)
                rows.append(new_row(
                    target=target, kind=SOLD_OUT_KIND,
                    body=payload(ACTION_SEND, reply, event=LinkEventKind.SOLD_OUT.value, facts=facts,
                                 language=language),
                    now=event.at, merchant_id=link.merchant_id, link_id=link.id,
                    key=dedupe_key("link.sold_out", link.id, target.platform, target.address)))
            elif payment is not None:
                reply = Reply(text=f"{alert_reply(facts, language).text} · {counts}", link_id=link.id)
                rows.append(new_row(
                    target=target, kind=f"{EVENT_PAID}.alert",
                    body=payload(ACTION_SEND, reply, event=EVENT_PAID, facts=facts, language=language),
                    now=event.at, merchant_id=link.merchant_id, link_id=link.id,
                    key=dedupe_key(EVENT_PAID, link.id, payment.id, "alert", target.platform, target.address)))
    if link.origin_message and edit_target is not None:
        ref = MessageRef.from_dict(link.origin_message)
        language = reader_language(edit_target, languages, facts.shop_language, customer=False)
        body = payload(ACTION_EDIT, sales_message(event, locale, url, language), event=event.kind.value,
                       facts=facts, ref=ref, language=language)
        c = OUTBOX.c
        waiting = await conn.execute(update(OUTBOX).where(
            c.link_id == link.id, c.kind == EDIT_KIND, c.platform == ref.platform, c.address == ref.address,
            c.status == OutboxStatus.PENDING.value, c.leased_by.is_(None)).values(payload=body))
        if not waiting.rowcount:
            which = payment.id if payment is not None and not sold_out else "sold_out"
            rows.append(new_row(target=Target(ref.platform, ref.address), kind=EDIT_KIND, body=body, now=event.at,
                                merchant_id=link.merchant_id, link_id=link.id,
                                key=dedupe_key(EDIT_KIND, link.id, which, ref.platform, ref.address)))
    return rows
