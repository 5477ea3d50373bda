"""The chat side of invoices and recurring charges: /invoice, /charge … every month, /series [stop ID].

A mixin of core.conversation.Conversation (its handlers are found by name from the command registry), kept
apart so the conversation module only gains the hooks. Stopping a series asks first (it cannot be undone).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import markup
from core.commands.values import InvoiceCommand, SeriesCharge, SeriesCommand
from core.commands.values import Shop as ShopCommand
from core.invoices import Invoices, shop_zone
from core.line_items import Discount, LineItem, LineItemError, compute
from core.links import LinkDraft
from core.models import SeriesStatus
from core.money import Money, MoneyError, format_money, to_minor
from core.ports import Button, IncomingMessage, Reply
from core.questions import Question
from core.series import Schedule, SeriesDraft, SeriesError

if TYPE_CHECKING:
    from core.links import LinkService
    from core.members import Identity, MemberService
    from core.models import PaymentLink
    from core.questions import Asker, QuestionStore
    from core.series import SeriesService

ANSWER_PREFIX = "answer:"  # core.conversation.ANSWER_PREFIX (imported there from here would loop)


class InvoiceCommands:
    # Set by bots/services.py: renders a link's invoice PDF to a file and gives its path (the console shows
    # it); None: the answer links to /p/{id}/invoice.pdf only.
    invoice_file: Callable[[str], Awaitable[Path | None]] | None = None

    if TYPE_CHECKING:  # what the mixin uses of Conversation
        links: LinkService
        members: MemberService
        questions: QuestionStore
        series: SeriesService | None

        def link_reply(self, link: PaymentLink, locale: str, *, now: datetime | None = None) -> Reply: ...

        def _asker(self, message: IncomingMessage) -> Asker: ...

    async def _invoice(self, command: InvoiceCommand, identity: Identity,
                       message: IncomingMessage) -> list[Reply]:
        merchant = identity.merchant
        rate = command.tax_rate if command.tax_rate is not None else Decimal(0)
        items = [LineItem(line.name, line.quantity, line.unit_amount, rate) for line in command.lines]
        discount = None
        try:
            if command.discount_percent is not None:
                discount = Discount(percent=command.discount_percent)
            elif command.discount_amount is not None:
                discount = Discount(amount_minor=to_minor(command.discount_amount, command.currency))
            totals = compute(items, command.currency, discount)
        except (LineItemError, MoneyError) as exc:
            return [Reply(f"{markup.escape(str(exc))}.\nFor example:\n`/invoice to alice@example.com\n2 x cake 25\n"
                          "delivery 5\ntax 9%`")]
        if totals.total_minor <= 0:
            return [Reply("The invoice's total must be more than zero.")]
        names = ", ".join(line.name for line in command.lines)
        description = (names if len(names) <= 120 else names[:117] + "…") or "Invoice"
        link, _ = await self.links.create(LinkDraft(
            merchant_id=merchant.id, money=Money(totals.total_minor, command.currency), description=description,
            reference=command.reference, customer=command.customer, origin_platform=message.platform,
            origin_address=message.address, created_by_member_id=identity.member.id, line_items=totals))
        reply = self.link_reply(link, merchant.locale)
        pdf_url = f"{self.links.url(link.id)}/invoice.pdf"
        locale = merchant.locale
        lines = [reply.text, f"🧾 Subtotal {format_money(totals.subtotal_minor, link.currency, locale)}"
                 + (f" · discount −{format_money(totals.discount_minor, link.currency, locale)}"
                    if totals.discount_minor else "")
                 + f" · tax {format_money(totals.tax_minor, link.currency, locale)}"
                 + f" · total **{format_money(totals.total_minor, link.currency, locale)}**"]
        path = await self.invoice_file(link.id) if self.invoice_file is not None and message.platform == "console" \
            else None
        lines.append(f"📄 Invoice PDF: {path}" if path is not None else f"📄 Invoice PDF: {pdf_url}")
        # Platforms that can send a file (Telegram: a document) attach the PDF itself; the rest have its link.
        return [Reply("\n".join(lines), buttons=(*reply.buttons, Button("Invoice (PDF)", pdf_url)),
                      link_id=link.id, invoice_pdf=link.id if path is None else None)]

    async def _charge_series(self, command: SeriesCharge, identity: Identity,
                             message: IncomingMessage) -> Reply:
        if self.series is None:
            return Reply("Recurring charges are not set up here.")
        charge, every = command.charge, command.recurrence
        merchant = identity.merchant
        try:
            series = await self.series.create(SeriesDraft(
                merchant_id=merchant.id, money=charge.money, description=charge.description,
                schedule=Schedule(every.every, every.interval, every.count, every.until),
                reference=charge.reference, customer=charge.customer, origin_platform=message.platform,
                origin_address=message.address, created_by_member_id=identity.member.id))
        except SeriesError as exc:
            return Reply(f"{markup.escape(exc.message[:1].upper() + exc.message[1:])}.\nFor example: "
                         "`/charge 150 tuition every month for 6 months to +65 9123 4567`")
        made = await self.series.links_of(series.id)
        amount = format_money(charge.money.amount_minor, charge.money.currency, merchant.locale)
        head = f"🔁 **{amount}** — {markup.user(charge.description)}, {every.words()}"
        lines = [head, f"Series `{series.id}` · `/series stop {series.id}` ends it"]
        buttons: tuple[Button, ...] = ()
        if made:
            link = await self.links.get(made[0][1])
            if link is not None:
                first = self.link_reply(link, merchant.locale)
                lines.append("First link:\n" + first.text)
                buttons = first.buttons
        return Reply("\n".join(lines), buttons=buttons)

    async def _series(self, command: SeriesCommand, identity: Identity,
                      message: IncomingMessage) -> list[Reply]:
        if self.series is None:
            return [Reply("Recurring charges are not set up here.")]
        merchant = identity.merchant
        if command.stop is None:
            found = await self.series.list_series(merchant.id, limit=20)
            if not found:
                return [Reply("No recurring charges yet. Make one with "
                              "`/charge 150 tuition every month to +65 9123 4567`.")]
            lines = ["🔁 **Recurring charges**"]
            zone = shop_zone(merchant.timezone)
            for s in found:
                template = s.template
                amount = format_money(int(template["amount_minor"]), str(template["currency"]), merchant.locale)
                unit = s.every if s.interval == 1 else f"{s.interval} {s.every}s"
                state = {SeriesStatus.ACTIVE: "active", SeriesStatus.COMPLETED: "done",
                         SeriesStatus.CANCELLED: "stopped"}[SeriesStatus(s.status)]
                nxt = f", next {s.next_at.astimezone(zone):%Y-%m-%d}" if s.next_at else ""
                of = f"/{s.count}" if s.count else ""
                lines.append(f"• `{s.id}` {amount} {markup.user(str(template['description']))} — every {unit}, "
                             f"{s.made}{of} made, {state}{nxt}")
            lines.append("Stop one: `/series stop ID`")
            return [Reply("\n".join(lines))]
        series = await self.series.get(command.stop, merchant.id)
        if series is None:
            return [Reply(f"I found no series `{markup.user(command.stop[:40])}` in your shop. See `/series`.")]
        if series.status != SeriesStatus.ACTIVE:
            return [Reply(f"Series `{series.id}` has already ended ({series.status}).")]
        confirm: dict[str, Any] = {"kind": "series_stop", "series_id": series.id}
        question = await self.questions.ask(self._asker(message), merchant_id=merchant.id,
                                            member_id=identity.member.id, confirm=confirm)
        text = (f"Stop series `{series.id}` ({markup.user(str(series.template['description']))})? yes / no\n"
                "No further links will be made; links already sent stay open.")
        return [Reply(text, buttons=(Button("Yes, stop it", action=f"{ANSWER_PREFIX}{question.id}:1"),
                                     Button("No", action=f"{ANSWER_PREFIX}{question.id}:0")))]

    async def _invoice_setting(self, command: ShopCommand, identity: Identity, message: IncomingMessage) -> Reply:
        """/shop prefix CC, /shop address …: what the shop's invoices print."""
        invoices = Invoices(self.links.db)
        value = command.value or ""
        try:
            if command.setting == "invoice_prefix":
                await invoices.configure(identity.merchant.id, prefix=value)
            else:
                await invoices.configure(identity.merchant.id, address=value.replace(" / ", "\n"))
        except ValueError as exc:
            return Reply(f"{markup.escape(str(exc))[:1].upper()}{markup.escape(str(exc))[1:]}.\n"
                         "For example: `/shop prefix CC`")
        prefix, address = await invoices.settings(identity.merchant.id)
        if command.setting == "invoice_prefix":
            return Reply(f"Done: new invoices are numbered **{prefix}-YYYY-0001**, …")
        return Reply(f"Done: invoices print the address **{markup.user(address or '')}**.")

    async def _series_confirmed(self, message: IncomingMessage, question: Question,
                                pick: int) -> Reply:
        confirm = question.confirm or {}
        if pick != 1:
            return Reply("OK, the series goes on.")
        identity = await self.members.identify(message)
        if identity is None or identity.merchant.id != question.merchant_id or self.series is None:
            return Reply("That question is closed. Send the /series stop again.")
        try:
            series = await self.series.cancel(str(confirm["series_id"]), identity.merchant.id)
        except SeriesError as exc:
            return Reply(f"Nothing changed: {markup.escape(exc.message)}.")
        return Reply(f"⏹ Series `{series.id}` stopped after {series.made} link{'s' if series.made != 1 else ''}.")

