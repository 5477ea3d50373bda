"""The chat answers of /promo (core/commands/sell.py parses it; core/promos.py keeps the codes)."""

from __future__ import annotations

from core import i18n, markup
from core.chat_errors import promo_error_text
from core.commands.values import Promo
from core.models import Merchant, PromoCode
from core.money import format_money
from core.ports import Reply
from core.promos import PromoDraft, PromoError, PromoService, percent_text
from core.reports import format_when


def _promo_terms(promo: PromoCode, locale: str) -> str:
    """"10% off · used 2 of 100 · until 3 Dec 2026, 8:00 pm SGT", in the reader's language."""
    t = i18n.current()
    if promo.percent_off_bp is not None:
        off = t.gettext("%(percent)s%% off", percent=percent_text(promo.percent_off_bp))
    else:
        off = t.gettext("%(amount)s off", amount=format_money(promo.amount_off_minor or 0, promo.currency or "USD",
                                                              locale))
    used = (t.gettext("used %(count)s of %(most)s", count=promo.times_redeemed, most=promo.max_redemptions)
            if promo.max_redemptions else t.gettext("used %(count)s", count=promo.times_redeemed))
    terms = f"{off} · {used}"
    if promo.expires_at is not None:
        terms += " · " + t.gettext("until %(when)s", when=format_when(promo.expires_at, locale))
    return terms


def promo_line(promo: PromoCode, locale: str) -> str:
    return f"🏷 `{markup.user(promo.code)}` — {_promo_terms(promo, locale)}"


async def promo_reply(service: PromoService, command: Promo, merchant: Merchant) -> Reply:
    t = i18n.current()
    locale = merchant.locale
    if command.action == "list":
        codes = await service.list(merchant.id)
        if not codes:
            return Reply(t.gettext("No promo codes yet. Make one: `/promo SAVE10 10%`"))
        return Reply("\n".join([t.gettext("**Promo codes**"), *(promo_line(p, locale) for p in codes[:30])]))
    if command.action == "off":  # asked first (core/conversation.py), then ended by end_promo
        return await end_promo(service, command.code, merchant)
    draft = PromoDraft(command.code, percent_off_bp=command.percent_bp,
                       amount_off_minor=command.amount_off.amount_minor if command.amount_off else None,
                       currency=command.amount_off.currency if command.amount_off else None,
                       max_redemptions=command.max_redemptions, expires_at=command.expires_at)
    try:
        promo = await service.create(merchant.id, draft)
    except PromoError as exc:
        code = f"`{markup.user(command.code)}`"
        if exc.code == "promo_exists":
            return Reply(t.gettext("You already have %(code)s. End it first with %(command)s, or pick another code.",
                                   code=code, command=f"`/promo off {markup.user(command.code)}`"))
        # In the chat's terms and the reader's language (the service's English is the API's), then an example.
        return Reply(t.gettext("%(problem)s\nFor example: %(example)s", problem=promo_error_text(exc),
                               example="`/promo SAVE10 10%`"))
    return Reply(t.gettext("Made %(line)s\nCustomers type it in the “Promo code” field of your pay pages.",
                           line=promo_line(promo, locale)))


def no_such_promo(code: str) -> Reply:
    return Reply(i18n.current().gettext("There is no promo code %(code)s. See them with `/promo`.",
                                        code=f"`{markup.user(code)}`"))


def end_promo_question(promo: PromoCode, locale: str) -> str:
    """"/promo off SAVE10" asks first: ending a code cannot be undone (it can only be made again)."""
    return i18n.current().gettext(
        "End promo code %(line)s? yes / no\nCustomers can no longer use it; checkouts already open keep their "
        "discount.", line=promo_line(promo, locale).removeprefix("🏷 "))


async def end_promo(service: PromoService, code: str, merchant: Merchant) -> Reply:
    found = await service.get(merchant.id, code)
    if found is None or not await service.delete(merchant.id, code):
        return no_such_promo(code)
    return Reply(i18n.current().gettext(
        "Ended %(code)s (it was %(terms)s). Checkouts already open keep their discount.",
        code=f"`{markup.user(code)}`", terms=_promo_terms(found, merchant.locale)))
