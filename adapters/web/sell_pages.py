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
        payment_ref = request.query.get("payment")
        if payment_ref:
            payment = next((p for p in await self.links.payments_for(link.id) if p.provider_ref == payment_ref), None)
            if payment is not None:
                return await self._receipt(shown, link, status, payment)
        if status in (LinkStatus.EXPIRED, LinkStatus.CANCELLED):
            return None
        return self.render(shown, link, status)

    async def _receipt(self, shown: PageLink, link: PaymentLink, status: LinkStatus, payment: Payment) -> web.Response:
        reservation = await self.links.reservations.for_payment(payment.id)
        refunds = (await self.pages.refunds.refunds_for([link.id])).get(payment.id, [])
        if payment.status not in _COUNTED or reservation is None:
            return self.pages._render(self.pages.refund_template, shown,
                                      self.pages._refund_context(shown, LinkStatus.ACTIVE, payment, refunds))
        from adapters.web.pages import datetime_text

        amount = format_money(payment.amount_minor, payment.currency, shown.merchant_locale)
        what = link.description
        if link.split_ways:
            what = f"{link.description} · {reservation.units} of {link.split_ways} shares"
        elif reservation.units > 1 or link.quantity_max is not None:
            what = f"{link.description} × {reservation.units}"
        extra: dict[str, Any] = {
            "title": f"Paid: {amount} to {isolate(shown.merchant_name)}", "amount": amount, "description": what,
            "paid_on": datetime_text(payment.created_at, shown.merchant_locale), "payment_id": payment.id,
            **self.pages._refund_facts(shown, payment, refunds),
        }
        if reservation.promo_code:
            extra["promo"] = (f"{reservation.promo_code} (−"
                              f"{format_money(reservation.discount_minor, payment.currency, shown.merchant_locale)})")
        return self.pages._render(self.pages.receipt_template, shown, extra)

    def render(self, shown: PageLink, link: PaymentLink, status: LinkStatus, *, error: str = "",
               error_field: str | None = None, form: Mapping[str, str] | None = None,
               http_status: int = 200) -> web.Response:
        locale = shown.merchant_locale

        def money(minor: int) -> str:
            return format_money(minor, link.currency, locale)

        chooses = link.amount_mode == CUSTOMER_CHOOSES
        low, high = unit_bounds(link)
        free = left(link)
        if free is not None:
            high = max(low, min(high, free))
        counts, counts_label = "", "Sold"
        if link.split_ways:
            counts, counts_label = f"{link.units_sold} of {link.split_ways} paid", "Shares"
        elif link.stock is not None:
            counts = f"{link.units_sold} of {link.stock} sold"
            if status is LinkStatus.ACTIVE:
                counts += f" · {max(0, link.stock - link.units_sold - link.units_reserved)} left"
        elif link.max_payments is not None:
            counts, counts_label = f"{link.payments_count} of {link.max_payments}", "Taken"
        elif chooses and link.payments_count:
            counts, counts_label = f"{money(link.amount_collected_minor)} from {link.payments_count}", "Raised"
        if link.max_total_minor is not None:
            counts = (counts + " · " if counts else "") + f"{money(link.amount_collected_minor)} of " \
                f"{money(link.max_total_minor)}"
        if link.split_ways:
            share = split_amount(link, 1)
            headline, eyebrow = (money(share) if share else money(link.amount_minor)), "Your share"
            pay_label = "Pay my share"
        elif chooses:
            headline, eyebrow, pay_label = "", "Choose what to give", "Pay this amount"
            headline = f"From {money(link.min_amount_minor or 1)}"
        else:
            headline = money(link.amount_minor)
            eyebrow = "Price each" if link.quantity_max is not None else "Payment request"
            pay_label = "Pay" if link.quantity_max is not None else f"Pay {money(link.amount_minor)}"
        hint = f"At least {money(link.min_amount_minor or 1)}"
        if link.max_amount_minor is not None:
            hint += f", at most {money(link.max_amount_minor)}"
        closed = {LinkStatus.SOLD_OUT: ("bad", "Sold out", "Everything was sold; this link takes no more payments."),
                  LinkStatus.PAID: ("ok", "✓ Paid in full", "Every share of this bill is paid. Thank you!")}
        tone, badge, closed_text = closed.get(status, ("warn", "Closed", "This link takes no more payments."))
        open_ = status is LinkStatus.ACTIVE
        if open_ and free == 0 and not error:
            error = "Everything left is in other buyers' checkouts right now; try again in a few minutes."
        quantity_label = "How many people is this for?" if link.split_ways else "Quantity"
        extra = {
            "title": f"{'Pay' if open_ else badge}: {isolate(link.description)} — {isolate(shown.merchant_name)}",
            "expires_on": _date(shown), "eyebrow": eyebrow, "headline_amount": headline,
            "counts": counts, "counts_label": counts_label, "open": open_, "mode": link.amount_mode,
            "currency": link.currency, "adjustable": link.quantity_max is not None,
            "quantity_min": low, "quantity_max": high, "quantity_label": quantity_label,
            "quantity": (form.get("quantity") if form else None) or str(low),
            "quantity_hint": (f"{low} to {high}; {money(link.amount_minor)} each" if not link.split_ways
                              else f"Pay for {low} to {high} people at once"),
            "suggestions": [(Money(a, link.currency).amount_str(), money(a)) for a in link.suggested_amounts or []],
            "other_amount": (form.get("other_amount") if form else None) or "", "amount_hint": hint,
            "promo_code": (form.get("promo_code") if form else None) or "", "pay_label": pay_label,
            "error": error, "error_field": error_field, "closed_tone": tone, "closed_badge": badge,
            "closed_text": closed_text,
        }
        body = self.pages._html(self.template, shown, extra)
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

        def refuse(message: str, field: str | None, code: int = 422) -> web.Response:
            return self.render(shown, link, status, error=message, error_field=field, form=form, http_status=code)

        if status is not LinkStatus.ACTIVE:
            return refuse("This link takes no more payments.", None, 409)
        quantity, amount_minor = 1, None
        if link.amount_mode == CUSTOMER_CHOOSES:
            text = str(form.get("amount") or form.get("other_amount") or "").strip()
            if not text:
                return refuse("Enter the amount you want to pay, e.g. 10.00.", "amount")
            try:
                typed = Money.parse(text.replace(",", ""), link.currency)
            except MoneyError as exc:
                return refuse(f"{text[:20]!r} is not an amount: {exc}.", "amount")
            if typed.decimal() > self.links.max_amount:  # the deployment's ceiling on any one payment
                return refuse(f"The largest amount is {self.links.max_amount} {link.currency}.", "amount")
            amount_minor = typed.amount_minor
        elif link.quantity_max is not None:
            raw = str(form.get("quantity") or "1").strip()
            if not raw.isascii() or not raw.isdigit() or len(raw) > 6:
                return refuse("Enter how many, as a whole number.", "quantity")
            quantity = int(raw)
        promo = str(form.get("promo_code") or "").strip()[:40] or None
        try:
            reservation = await self.links.reservations.reserve(link.id, quantity=quantity, amount_minor=amount_minor,
                                                                promo_code=promo)
        except (ReserveRefused, PromoError) as exc:
            code = 409 if exc.code in ("sold_out", "all_reserved", "not_enough", "promo_used_up") else 422
            current = await self.links.get(link.id) or link
            return self.render(shown, current, self.links.status_of(current), error=exc.message,
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
                lang="en", title="Payment could not start", sandbox=False, test_mode=not link.livemode,
                tone="warn", badge="Try again", heading="The payment could not start",
                explanation="The payment provider did not answer. Nothing was charged; please try again.",
                back_url=page_url, back_label="Back to the payment")
            return web.Response(text=html, status=502, content_type="text/html", headers=HTML_HEADERS)
        await self.links.reservations.attach_checkout(reservation.id, provider.name, checkout.provider_ref,
                                                      chosen.account)
        await self.links.record_checkout(link.id, attempt, provider.name, checkout.provider_ref,
                                         account=chosen.account)
        log.info("checkout started link=%s attempt=%d checkout=%s units=%d", link.id, attempt,
                 checkout.provider_ref, reservation.units)
        if origin_of(checkout.url) not in self.pages.redirect_origins:
            html = self.pages.message_template.render(
                lang="en", title="Opening the payment page", sandbox=False, test_mode=not link.livemode,
                tone="warn", badge="One moment", heading="Opening the payment page",
                explanation="You are being taken to the payment provider's page.",
                back_url=checkout.url, back_label="Continue to payment", refresh_url=checkout.url)
            return web.Response(text=html, content_type="text/html", headers=HTML_HEADERS)
        raise web.HTTPSeeOther(checkout.url)


def _date(shown: PageLink) -> str:
    from adapters.web.pages import _date_text

    return _date_text(shown.expires_at.date(), shown.merchant_locale)
