"""GET /p/{id}/invoice.pdf and /p/{id}/receipt.pdf[?payment=pay_…], and the items the pay pages list.

The link's public id is the customer's key to its pay page, and so to its invoice and receipts (the same
facts the pages show). A link with line items, or a paid link, has an invoice; a receipt exists once a
payment was recorded: without `payment=` the payment that paid the link, with it any payment of the link
(a reusable link is paid many times, each with its receipt). Drawing runs on a worker thread.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from aiohttp import web
from babel.numbers import format_decimal
from sqlalchemy import select

from adapters.web.pdf import PdfDocument, PdfLine, render
from core import i18n
from core.db import Database
from core.i18n import N_
from core.invoices import InvoiceInfo, Invoices
from core.links import LinkService
from core.locales import babel_locale_name
from core.models import LinkStatus, Merchant, MerchantLogo, Payment, PaymentLink, PaymentStatus
from core.money import exponent, format_money
from core.sql import table

LINK_ID = re.compile(r"[a-z2-7]{16,64}")
PAYMENT_ID = re.compile(r"pay_[a-z2-7]{1,36}")
PDF_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
LOGOS = table(MerchantLogo)

STATUS_TEXT = {
    LinkStatus.ACTIVE: N_("Unpaid"), LinkStatus.PAID: N_("Paid"), LinkStatus.EXPIRED: N_("Expired (unpaid)"),
    LinkStatus.CANCELLED: N_("Cancelled"), LinkStatus.REFUNDED: N_("Refunded"), LinkStatus.SOLD_OUT: N_("Sold out"),
}
PAYMENT_STATUS_TEXT = {
    PaymentStatus.SUCCEEDED: N_("Paid"), PaymentStatus.PARTIALLY_REFUNDED: N_("Paid, partly refunded"),
    PaymentStatus.REFUNDED: N_("Refunded"), PaymentStatus.REFUND_NEEDED: N_("Paid twice: being refunded"),
}
# The PDF's fixed words (adapters/web/pdf.py reads them from PdfDocument.labels).
PDF_LABELS = {
    "number": N_("No."), "issued": N_("Date"), "due": N_("Due"), "status": N_("Status"),
    "test": N_("TEST MODE: no real money"), "bill_to": N_("Bill to"), "reference": N_("Reference"),
    "item": N_("Item"), "qty": N_("Qty"), "unit": N_("Unit price"), "tax": N_("Tax"), "amount": N_("Amount"),
    "payment": N_("Payment"),
    # The caption of the PDF sent as a chat file (InvoicePdfs.invoice_file); %(number)s filled in there.
    "file": N_("Invoice %(number)s (PDF)"),
}


def _locale(merchant: Merchant) -> str:
    return babel_locale_name(merchant.locale or "en")


def _clock(merchant: Merchant, language: str) -> i18n.Clock:
    """The one clock (core.i18n): the shop's zone with its short name, in the document's language."""
    return i18n.Clock.of(language=language, shop_locale=merchant.locale or "en", timezone=merchant.timezone)


def _date(moment: datetime, merchant: Merchant, language: str = "en") -> str:
    return _clock(merchant, language).date(moment)


def _datetime(moment: datetime, merchant: Merchant, language: str = "en") -> str:
    return _clock(merchant, language).when(moment)


def _unit(value: Decimal, currency: str, locale: str) -> str:
    # A unit price finer than the currency (0.125 per gram) is shown as written, with the code.
    minor = value.scaleb(exponent(currency))
    if minor == minor.to_integral_value():
        return format_money(int(minor), currency, locale)
    return f"{format_decimal(value, locale=locale)} {currency}"


@dataclass(frozen=True, slots=True)
class ItemsView:
    """The pay page's and PDFs' items and totals, formatted in the shop's locale."""

    number: str | None
    lines: tuple[PdfLine, ...]
    totals: tuple[tuple[str, str], ...]


def items_view(link: PaymentLink | Any, info: InvoiceInfo | None, locale: str,
               language: str | None = None) -> ItemsView:
    """Labels in the reader's language (default: the shop's), amounts in the shop's locale."""
    t = i18n.tr(language or i18n.language_of_locale(locale))
    cur = link.currency
    money = lambda minor: format_money(minor, cur, locale)  # noqa: E731
    if info is None or info.totals is None:
        lines: tuple[PdfLine, ...] = (PdfLine(link.description, "1", money(link.amount_minor), "",
                                              money(link.amount_minor)),)
        totals: tuple[tuple[str, str], ...] = ((t.gettext("Total"), money(link.amount_minor)),)
        return ItemsView(info.number if info else None, lines, totals)
    lines = tuple(
        PdfLine(line.item.name, format_decimal(line.item.quantity, locale=locale),
                _unit(line.item.unit_amount, cur, locale),
                f"{format_decimal(line.item.tax_rate, locale=locale)} %" if line.item.tax_rate else "",
                money(line.net_minor))
        for line in info.totals.lines
    )
    rows: list[tuple[str, str]] = [(t.gettext("Subtotal"), money(info.subtotal_minor))]
    if info.discount_minor:
        discount = info.totals.discount
        label = t.gettext("Discount")
        if discount is not None and discount.percent is not None:
            label = t.gettext("Discount (%(percent)s %%)", percent=format_decimal(discount.percent, locale=locale))
        rows.append((label, f"−{money(info.discount_minor)}"))
    rows.append((t.gettext("Tax"), money(info.tax_minor)))
    rows.append((t.gettext("Total"), money(info.total_minor)))
    return ItemsView(info.number, lines, tuple(rows))


@dataclass(frozen=True)
class InvoiceFile:
    """A link's invoice as a chat file: the PDF, its file name and its caption in the PDF's language."""

    body: bytes
    filename: str
    caption: str


class InvoicePdfs:
    """Builds the PDFs from the database; also used by chat commands that send a link's invoice."""

    def __init__(self, db: Database, links: LinkService) -> None:
        self.db = db
        self.links = links
        self.invoices = Invoices(db)

    async def _merchant(self, merchant_id: str) -> tuple[Merchant, bytes | None, str | None]:
        merchants = table(Merchant)
        async with self.db.read() as conn:
            row = (await conn.execute(select(merchants).where(merchants.c.id == merchant_id))).one()
            logo = (await conn.execute(select(LOGOS.c.png).where(LOGOS.c.merchant_id == merchant_id))).scalar()
        _, address = await self.invoices.settings(merchant_id)
        return Merchant.model_construct(**row._mapping), logo, address

    async def document(self, link_id: str, kind: str, payment_id: str | None = None,
                       language: str | None = None) -> PdfDocument | None:
        """The document's values, its words in `language` (default: the shop's); None when the link has no
        such document (yet)."""
        link = await self.links.get(link_id)
        if link is None:
            return None
        info = await self.invoices.of(link.id)
        payments = await self.links.payments_for(link.id)
        payment: Payment | None = None
        if kind == "receipt":
            if payment_id is not None:
                payment = next((p for p in payments if p.id == payment_id), None)
            else:
                counted = [p for p in payments if p.status != PaymentStatus.REFUND_NEEDED]
                payment = next((p for p in counted if link.paid_at and p.created_at == link.paid_at),
                               counted[0] if counted else None)
            if payment is None:
                return None
        elif info is None:
            return None  # a one-amount link is numbered when it is paid
        merchant, logo, address = await self._merchant(link.merchant_id)
        locale = _locale(merchant)
        lang = i18n.first_language(language, merchant.locale)
        t = i18n.tr(lang)
        view = items_view(link, info, locale, lang)
        status = self.links.status_of(link)
        contact = " · ".join(x for x in (merchant.support_email, merchant.support_phone) if x) or None
        customer = tuple(x for x in (link.customer_name, link.customer_email, link.customer_phone) if x)
        details: list[tuple[str, str]] = []
        if payment is not None:
            details = [(t.gettext("Paid on"), _datetime(payment.created_at, merchant, lang)),
                       (t.gettext("Amount paid"), format_money(payment.amount_minor, payment.currency, locale)),
                       (t.gettext("Payment ID"), payment.id),
                       (t.gettext("Provider"), f"{payment.provider} ({payment.provider_ref})")]
            if payment.payer_name:
                details.append((t.gettext("Paid by"), payment.payer_name))
            if payment.amount_refunded_minor:
                details.append((t.gettext("Refunded"),
                                format_money(payment.amount_refunded_minor, payment.currency, locale)))
        elif status is LinkStatus.PAID and payments:
            first = next((p for p in payments if p.status != PaymentStatus.REFUND_NEEDED), payments[0])
            details = [(t.gettext("Paid on"), _datetime(first.created_at, merchant, lang)),
                       (t.gettext("Payment ID"), first.id)]
        receipt = kind == "receipt"
        return PdfDocument(
            kind=kind,
            title=t.gettext("Receipt") if receipt else t.gettext("Invoice"),
            number=view.number,
            shop_name=merchant.name,
            shop_address=address,
            shop_contact=contact,
            logo_png=logo,
            customer=customer,
            issued=_date(payment.created_at if receipt and payment else (info.created_at if info else link.created_at),
                         merchant, lang),
            due=None if receipt or status is not LinkStatus.ACTIVE else _date(link.expires_at, merchant, lang),
            status=t.gettext(PAYMENT_STATUS_TEXT.get(PaymentStatus(payment.status), N_("Paid"))) if payment
            else t.gettext(STATUS_TEXT[status]),
            labels={key: t.gettext(text) for key, text in PDF_LABELS.items()},
            description=link.description,
            reference=link.reference,
            lines=view.lines,
            totals=view.totals,
            payment=tuple(details),
            test_mode=not link.livemode,
        )

    async def pdf(self, link_id: str, kind: str, payment_id: str | None = None,
                  language: str | None = None) -> bytes | None:
        doc = await self.document(link_id, kind, payment_id, language)
        return None if doc is None else await _rendered(doc)

    async def invoice_file(self, link_id: str) -> InvoiceFile | None:
        """/invoice's PDF for Telegram's sendDocument and Slack's upload; None when the link has no invoice."""
        doc = await self.document(link_id, "invoice")
        if doc is None or doc.number is None:
            return None
        return InvoiceFile(await _rendered(doc), f"{doc.number}.pdf",
                           doc.labels["file"] % {"number": doc.number})


async def _rendered(doc: PdfDocument) -> bytes:
    # fpdf2 is CPU-bound (tens of ms with CJK subsetting): off the event loop.
    return await asyncio.get_running_loop().run_in_executor(None, render, doc)


class InvoicePages:
    def __init__(self, pdfs: InvoicePdfs) -> None:
        self.pdfs = pdfs

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/p/{link_id}/invoice.pdf", self.invoice),
            web.get("/p/{link_id}/receipt.pdf", self.receipt),
        ]

    async def invoice(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "invoice")

    async def receipt(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "receipt")

    async def _serve(self, request: web.Request, kind: str) -> web.StreamResponse:
        link_id = request.match_info["link_id"].lower()
        payment_id = request.query.get("payment")
        if not LINK_ID.fullmatch(link_id) or (payment_id is not None and not PAYMENT_ID.fullmatch(payment_id)):
            raise web.HTTPNotFound(text="No such document.")
        from adapters.web.pages import request_language  # the customer's language, as on the pay page

        body = await self.pdfs.pdf(link_id, kind, payment_id, request_language(request, None)
                                   if request.query.get("lang") or request.cookies.get("paylinks_lang")
                                   or request.headers.get("Accept-Language") else None)
        if body is None:
            what = "receipt: this link has not been paid" if kind == "receipt" else \
                "invoice: it is made when the link has line items or is paid"
            raise web.HTTPNotFound(text=f"No {what}.")
        name = f"{kind}-{link_id[:10]}{'-' + payment_id if payment_id else ''}.pdf"
        return web.Response(body=body, content_type="application/pdf",
                            headers={**PDF_HEADERS, "Content-Disposition": f'inline; filename="{name}"'})
