"""The pay page of a link that sells many times (core/reusable.py): quantity, a chosen amount, a share of a
split bill, a promo code; counts; each payment's own receipt. HTML forms only, no JavaScript.

PayPages (adapters/web/pages.py) hands reusable links here; everything else about the page (branding,
QR codes, the preview card, provider choice) stays there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from adapters.web.security import origin_of
from core.i18n import Tr, tr
from core.links import LinkService
from core.models import LinkStatus, Payment, PaymentLink, PaymentStatus
from core.money import Money, MoneyError, format_money
from core.promos import PromoError
from core.reusable import CUSTOMER_CHOOSES, ReserveRefused, left, split_amount, unit_bounds
from core.text import isolate

if TYPE_CHECKING:
    from adapters.web.pages import PageLink, PayPages

log = logging.getLogger("paylinks.web.sell")

HTML_HEADERS = {"Cache-Control": "no-store"}
_COUNTED = (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED)


class SellPages:
    def __init__(self, pages: PayPages) -> None:
        self.pages = pages
        self.links: LinkService = pages.links
        env = pages.pay_template.environment
        self.template = env.get_template("sell.html")

    # ---- GET /p/{id}

    async def page(self, request: web.Request, shown: PageLink, status: LinkStatus) -> web.Response | None:
        """The page of a reusable link; None: the usual expired/cancelled page applies."""
        link = await self.links.get(shown.id)
        if link is None:
            return None
        from adapters.web.pages import request_language

        language = request_language(request, shown.merchant_locale)
        payment_ref = request.query.get("payment")
        if payment_ref:
            payment = next((p for p in await self.links.payments_for(link.id) if p.provider_ref == payment_ref), None)
            if payment is not None:
                return await self._receipt(shown, link, status, payment, language)
        if status in (LinkStatus.EXPIRED, LinkStatus.CANCELLED):
            return None
        return self.render(shown, link, status, language)

    async def _receipt(self, shown: PageLink, link: PaymentLink, status: LinkStatus, payment: Payment,
                       language: str) -> web.Response:
        t = tr(language)
        reservation = await self.links.reservations.for_payment(payment.id)
        refunds = (await self.pages.refunds.refunds_for([link.id])).get(payment.id, [])
        if payment.status not in _COUNTED or reservation is None:
            return self.pages._render(self.pages.refund_template, shown, language,
                                      self.pages._refund_context(shown, LinkStatus.ACTIVE, payment, refunds, t))
        amount = format_money(payment.amount_minor, payment.currency, shown.merchant_locale)
        what = link.description
        if link.split_ways:
            what = t.ngettext("%(description)s · %(count)s of %(ways)s shares",
                              "%(description)s · %(count)s of %(ways)s shares", reservation.units,
                              description=link.description, ways=link.split_ways)
        elif reservation.units > 1 or link.quantity_max is not None:
            what = f"{link.description} × {reservation.units}"
        extra: dict[str, Any] = {
            "title": t.gettext("Paid: %(amount)s to %(shop)s", amount=amount, shop=isolate(shown.merchant_name)),
            "amount": amount, "description": what,
            "paid_on": shown.clock(language).when(payment.created_at), "payment_id": payment.id,
            **self.pages._refund_facts(shown, payment, refunds, language),
        }
        if reservation.promo_code:
            extra["promo"] = (f"{reservation.promo_code} (−"
                              f"{format_money(reservation.discount_minor, payment.currency, shown.merchant_locale)})")
        return self.pages._render(self.pages.receipt_template, shown, language, extra)

    def render(self, shown: PageLink, link: PaymentLink, status: LinkStatus, language: str, *, error: str = "",
               error_field: str | None = None, form: Mapping[str, str] | None = None,
               http_status: int = 200) -> web.Response:
        locale = shown.merchant_locale
        t = tr(language)

        def money(minor: int) -> str:
            return format_money(minor, link.currency, locale)

        chooses = link.amount_mode == CUSTOMER_CHOOSES
        low, high = unit_bounds(link)
        free = left(link)
        if free is not None:
            high = max(low, min(high, free))
        counts, counts_label = "", t.gettext("Sold")
        if link.split_ways:
            counts = t.gettext("%(paid)s of %(ways)s paid", paid=link.units_sold, ways=link.split_ways)
            counts_label = t.gettext("Shares")
        elif link.stock is not None:
            counts = t.gettext("%(sold)s of %(stock)s sold", sold=link.units_sold, stock=link.stock)
            if status is LinkStatus.ACTIVE:
                counts += " · " + t.gettext("%(count)s left", count=max(
                    0, link.stock - link.units_sold - link.units_reserved))
        elif link.max_payments is not None:
            counts = t.gettext("%(taken)s of %(most)s", taken=link.payments_count, most=link.max_payments)
            counts_label = t.gettext("Taken")
        elif chooses and link.payments_count:
            counts = t.ngettext("%(amount)s from %(count)s person", "%(amount)s from %(count)s people",
                                link.payments_count, amount=money(link.amount_collected_minor))
            counts_label = t.gettext("Raised")
        if link.max_total_minor is not None:
            counts = (counts + " · " if counts else "") + t.gettext(
                "%(raised)s of %(goal)s", raised=money(link.amount_collected_minor), goal=money(link.max_total_minor))
        if link.split_ways:
            share = split_amount(link, 1)
            headline, eyebrow = (money(share) if share else money(link.amount_minor)), t.gettext("Your share")
            pay_label = t.gettext("Pay my share")
        elif chooses:
            eyebrow, pay_label = t.gettext("Choose what to give"), t.gettext("Pay this amount")
            headline = t.gettext("From %(amount)s", amount=money(link.min_amount_minor or 1))
        else:
            headline = money(link.amount_minor)
            eyebrow = t.gettext("Price each") if link.quantity_max is not None else t.gettext("Payment request")
            pay_label = (t.gettext("Pay") if link.quantity_max is not None
                         else t.gettext("Pay %(amount)s", amount=money(link.amount_minor)))
        hint = (t.gettext("At least %(low)s, at most %(high)s", low=money(link.min_amount_minor or 1),
                          high=money(link.max_amount_minor)) if link.max_amount_minor is not None
                else t.gettext("At least %(low)s", low=money(link.min_amount_minor or 1)))
        closed = {LinkStatus.SOLD_OUT: ("bad", t.gettext("Sold out"),
                                        t.gettext("Everything was sold; this link takes no more payments.")),
                  LinkStatus.PAID: ("ok", "✓ " + t.gettext("Paid in full"),
                                    t.gettext("Every share of this bill is paid. Thank you!"))}
        tone, badge, closed_text = closed.get(status, ("warn", t.gettext("Closed"),
                                                       t.gettext("This link takes no more payments.")))
        open_ = status is LinkStatus.ACTIVE
        if open_ and free == 0 and not error:
            error = t.gettext("Everything left is in other buyers' checkouts right now; try again in a few minutes.")
        quantity_label = t.gettext("How many people is this for?") if link.split_ways else t.gettext("Quantity")
        title_values = {"description": isolate(link.description), "shop": isolate(shown.merchant_name)}
        extra = {
            "title": (t.gettext("Pay: %(description)s — %(shop)s", **title_values) if open_
                      else f"{badge}: {title_values['description']} — {title_values['shop']}"),
            "expires_on": shown.clock(language).deadline(shown.expires_at, self.links.clock()),
            "eyebrow": eyebrow, "headline_amount": headline,
            "counts": counts, "counts_label": counts_label, "open": open_, "mode": link.amount_mode,
            "currency": link.currency, "adjustable": link.quantity_max is not None,
            "quantity_min": low, "quantity_max": high, "quantity_label": quantity_label,
            "quantity": (form.get("quantity") if form else None) or str(low),
            "quantity_hint": (t.gettext("%(low)s to %(high)s; %(price)s each", low=low, high=high,
                                        price=money(link.amount_minor)) if not link.split_ways
                              else t.gettext("Pay for %(low)s to %(high)s people at once", low=low, high=high)),
            "suggestions": [(Money(a, link.currency).amount_str(), money(a)) for a in link.suggested_amounts or []],
            "other_amount": (form.get("other_amount") if form else None) or "", "amount_hint": hint,
            "promo_code": (form.get("promo_code") if form else None) or "", "pay_label": pay_label,
            "error": error, "error_field": error_field, "closed_tone": tone, "closed_badge": badge,
            "closed_text": closed_text,
        }
        body = self.pages._html(self.template, shown, language, extra)
        return web.Response(body=body, status=http_status, content_type="text/html", charset="utf-8",
                            headers=HTML_HEADERS)

    # ---- POST /p/{id}/pay

    async def pay(self, request: web.Request, link: PaymentLink) -> web.StreamResponse:
        page_url = f"/p/{link.id}"
        status = self.links.status_of(link)
        if status in (LinkStatus.EXPIRED, LinkStatus.CANCELLED):
            raise web.HTTPSeeOther(page_url)
        form = {key: value for key, value in (await request.post()).items() if isinstance(value, str)}
        shown = await self.pages._read(link.id)
        assert shown is not None
        from adapters.web.pages import page_i18n, request_language

        language = request_language(request, shown.merchant_locale)
        t: Tr = tr(language)

        def refuse(message: str, field: str | None, code: int = 422) -> web.Response:
            return self.render(shown, link, status, language, error=message, error_field=field, form=form,
                               http_status=code)

        if status is not LinkStatus.ACTIVE:
            return refuse(t.gettext("This link takes no more payments."), None, 409)
        quantity, amount_minor = 1, None
        if link.amount_mode == CUSTOMER_CHOOSES:
            text = str(form.get("amount") or form.get("other_amount") or "").strip()
            if not text:
                return refuse(t.gettext("Enter the amount you want to pay, e.g. 10.00."), "amount")
            try:
                typed = Money.parse(text.replace(",", ""), link.currency)
            except MoneyError:
                return refuse(t.gettext("“%(typed)s” is not an amount in %(currency)s; write it like 10.00.",
                                        typed=text[:20], currency=link.currency), "amount")
            if typed.decimal() > self.links.max_amount:  # the deployment's ceiling on any one payment
                return refuse(t.gettext("The largest amount is %(most)s %(currency)s.", most=self.links.max_amount,
                                        currency=link.currency), "amount")
            amount_minor = typed.amount_minor
        elif link.quantity_max is not None:
            raw = str(form.get("quantity") or "1").strip()
            if not raw.isascii() or not raw.isdigit() or len(raw) > 6:
                return refuse(t.gettext("Enter how many, as a whole number."), "quantity")
            quantity = int(raw)
        promo = str(form.get("promo_code") or "").strip()[:40] or None
        try:
            reservation = await self.links.reservations.reserve(link.id, quantity=quantity, amount_minor=amount_minor,
                                                                promo_code=promo)
        except (ReserveRefused, PromoError) as exc:
            code = 409 if exc.code in ("sold_out", "all_reserved", "not_enough", "promo_used_up") else 422
            current = await self.links.get(link.id) or link
            return self.render(shown, current, self.links.status_of(current), language, error=exc.text(t),
                               error_field=exc.field, form=form, http_status=code)
        # The provider is asked for exactly what was reserved, and its checkout ends when the reservation does.
        description = link.description
        if link.split_ways:
            description = f"{link.description} ({reservation.units} of {link.split_ways} shares)"
        elif reservation.units > 1:
            description = f"{link.description} × {reservation.units}"
        charged = link.model_copy(update={"amount_minor": reservation.amount_minor, "description": description,
                                          "expires_at": reservation.expires_at})
        chosen = await self.pages.providers.for_merchant(link.merchant_id)
        provider = chosen.provider
        attempt = await self.links.next_checkout_attempt(link.id)
        try:
            checkout = await provider.create_checkout(charged, return_url=self.links.url(link.id),
                                                      idempotency_key=f"{link.id}:{attempt}")
        except Exception as exc:  # a provider outage gives the customer a page, and the units back
            await self.links.reservations.release(reservation.id)
            log.warning("checkout failed link=%s attempt=%d provider=%s error=%s", link.id, attempt, provider.name,
                        type(exc).__name__)
            html = self.pages.message_template.render(
                **page_i18n(language, switcher=False), title=t.gettext("The payment could not start"), sandbox=False,
                test_mode=not link.livemode, tone="warn", badge=t.gettext("Try again"),
                heading=t.gettext("The payment could not start"),
                explanation=t.gettext("The payment provider did not answer. Nothing was charged; please try again."),
                back_url=page_url, back_label=t.gettext("Back to the payment"))
            return web.Response(text=html, status=502, content_type="text/html", headers=HTML_HEADERS)
        await self.links.reservations.attach_checkout(reservation.id, provider.name, checkout.provider_ref,
                                                      chosen.account)
        await self.links.record_checkout(link.id, attempt, provider.name, checkout.provider_ref,
                                         account=chosen.account)
        log.info("checkout started link=%s attempt=%d checkout=%s units=%d", link.id, attempt,
                 checkout.provider_ref, reservation.units)
        if origin_of(checkout.url) not in self.pages.redirect_origins:
            html = self.pages.message_template.render(
                **page_i18n(language, switcher=False), title=t.gettext("Opening the payment page"), sandbox=False,
                test_mode=not link.livemode, tone="warn", badge=t.gettext("One moment"),
                heading=t.gettext("Opening the payment page"),
                explanation=t.gettext("You are being taken to the payment provider's page."),
                back_url=checkout.url, back_label=t.gettext("Continue to payment"), refresh_url=checkout.url)
            return web.Response(text=html, content_type="text/html", headers=HTML_HEADERS)
        raise web.HTTPSeeOther(checkout.url)
