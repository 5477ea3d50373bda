"""The chat answers of /promo (core/commands/sell.py parses it; core/promos.py keeps the codes)."""

from __future__ import annotations

from core import markup
from core.commands.values import Promo
from core.models import Merchant, PromoCode
from core.money import format_money
from core.ports import Reply
from core.promos import PromoDraft, PromoError, PromoService, percent_text
from core.reports import format_when


def promo_line(promo: PromoCode, locale: str) -> str:
    if promo.percent_off_bp is not None:
        off = f"{percent_text(promo.percent_off_bp)}% off"
    else:
        off = f"{format_money(promo.amount_off_minor or 0, promo.currency or 'USD', locale)} off"
    used = f"used {promo.times_redeemed}" + (f" of {promo.max_redemptions}" if promo.max_redemptions else "")
    line = f"🏷 `{markup.user(promo.code)}` — {off} · {used}"
    if promo.expires_at is not None:
        line += f" · until {format_when(promo.expires_at, locale)}"
    return line


async def promo_reply(service: PromoService, command: Promo, merchant: Merchant) -> Reply:
    locale = merchant.locale
    if command.action == "list":
        codes = await service.list(merchant.id)
        if not codes:
            return Reply("No promo codes yet. Make one: `/promo SAVE10 10%`")
        return Reply("\n".join(["**Promo codes**", *(promo_line(p, locale) for p in codes[:30])]))
    if command.action == "off":
        found = await service.get(merchant.id, command.code)
        if found is None or not await service.delete(merchant.id, command.code):
            return Reply(f"There is no promo code `{markup.user(command.code)}`. See them with `/promo`.")
        return Reply(f"Ended `{markup.user(command.code)}` (it was {promo_line(found, locale).split(' — ', 1)[1]}). "
                     "Checkouts already open keep their discount.")
    draft = PromoDraft(command.code, percent_off_bp=command.percent_bp,
                       amount_off_minor=command.amount_off.amount_minor if command.amount_off else None,
                       currency=command.amount_off.currency if command.amount_off else None,
                       max_redemptions=command.max_redemptions, expires_at=command.expires_at)
    try:
        promo = await service.create(merchant.id, draft)
    except PromoError as exc:
        if exc.code == "promo_exists":
            return Reply(f"You already have `{markup.user(command.code)}`. End it first with "
                         f"`/promo off {markup.user(command.code)}`, or pick another code.")
        return Reply(f"{markup.escape(exc.message)}.\nFor example: `/promo SAVE10 10%`")
    return Reply(f"Made {promo_line(promo, locale)}\nCustomers type it in the “Promo code” field of your "
                 "pay pages.")
