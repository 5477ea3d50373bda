"""The chat side of invoices and recurring charges: /invoice, /charge … every month, /series [stop ID].

A mixin of core.conversation.Conversation (its handlers are found by name from the command registry), kept
apart so the conversation module only gains the hooks. Stopping a series asks first (it cannot be undone).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from babel.dates import format_date

from core import i18n, markup
from core.chat_errors import item_error_text, series_error_text
from core.commands.values import InvoiceCommand, SeriesCharge, SeriesCommand
from core.commands.values import Shop as ShopCommand
from core.invoices import PREFIX_MAX, Invoices, shop_zone
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
    from core.models import Merchant, PaymentLink
    from core.questions import Asker, QuestionStore
    from core.series import SeriesService

ANSWER_PREFIX = "answer:"  # core.conversation.ANSWER_PREFIX (imported there from here would loop)


def _every(unit: str, interval: int) -> str:
    """"every month", "every 2 weeks" in the reader's language (i18n.current())."""
    t = i18n.current()
    if unit == "week":
        return t.gettext("every week") if interval == 1 else t.ngettext(
            "every %(count)s week", "every %(count)s weeks", interval)
    if unit == "year":
        return t.gettext("every year") if interval == 1 else t.ngettext(
            "every %(count)s year", "every %(count)s years", interval)
    return t.gettext("every month") if interval == 1 else t.ngettext(
        "every %(count)s month", "every %(count)s months", interval)


def schedule_words(unit: str, interval: int, count: int | None, until: date | str | None, shop_locale: str) -> str:
    """A series' schedule for the chat: "every 2 weeks, 6 times, until 30 Jun 2027" in the reader's
    language (the date as the reader writes dates, with the shop's territory's habits)."""
    t = i18n.current()
    every = _every(unit, interval)
    day = None
    if until is not None:
        moment = date.fromisoformat(until) if isinstance(until, str) else until
        day = format_date(moment, "medium", locale=i18n.reader_locale(t.language, shop_locale))
    if count and day:
        return t.ngettext("%(every)s, %(count)s time, until %(day)s", "%(every)s, %(count)s times, until %(day)s",
                          count, every=every, day=day)
    if count:
        return t.ngettext("%(every)s, %(count)s time", "%(every)s, %(count)s times", count, every=every)
    if day:
        return t.gettext("%(every)s, until %(day)s", every=every, day=day)
    return every


class InvoiceCommands:
    # Set by bots/services.py: renders a link's invoice PDF to a file and gives its path (the console shows
    # it); None: the answer links to /p/{id}/invoice.pdf only.
    invoice_file: Callable[[str], Awaitable[Path | None]] | None = None

    if TYPE_CHECKING:  # what the mixin uses of Conversation
        links: LinkService
        members: MemberService
        questions: QuestionStore
        series: SeriesService | None

        def link_reply(self, link: PaymentLink, merchant: Merchant | str, *, now: datetime | None = None) -> Reply: ...

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
            # In the chat's terms and the reader's language (the rules' English is the API's), with an example.
            return [Reply(i18n.current().gettext(
                "%(problem)s\nFor example: %(example)s", problem=item_error_text(exc),
                example="\n`/invoice to alice@example.com\n2 x cake 25\ndelivery 5\ntax 9%`"))]
        if totals.total_minor <= 0:
            return [Reply(i18n.current().gettext("The invoice's total must be more than zero."))]
        names = ", ".join(line.name for line in command.lines)
        description = (names if len(names) <= 120 else names[:117] + "…") or "Invoice"
        link, _ = await self.links.create(LinkDraft(
            merchant_id=merchant.id, money=Money(totals.total_minor, command.currency), description=description,
            reference=command.reference, customer=command.customer, origin_platform=message.platform,
            origin_address=message.address, created_by_member_id=identity.member.id, line_items=totals))
        reply = self.link_reply(link, merchant)
        pdf_url = f"{self.links.url(link.id)}/invoice.pdf"
        locale = merchant.locale
        t = i18n.current()

        def money(minor: int) -> str:
            return format_money(minor, link.currency, locale)

        sums = (t.gettext("🧾 Subtotal %(subtotal)s · discount −%(discount)s · tax %(tax)s · total %(total)s",
                          subtotal=money(totals.subtotal_minor), discount=money(totals.discount_minor),
                          tax=money(totals.tax_minor), total=f"**{money(totals.total_minor)}**")
                if totals.discount_minor else
                t.gettext("🧾 Subtotal %(subtotal)s · tax %(tax)s · total %(total)s",
                          subtotal=money(totals.subtotal_minor), tax=money(totals.tax_minor),
                          total=f"**{money(totals.total_minor)}**"))
        lines = [reply.text, sums]
        path = await self.invoice_file(link.id) if self.invoice_file is not None and message.platform == "console" \
            else None
        lines.append(t.gettext("📄 Invoice PDF: %(where)s", where=path if path is not None else pdf_url))
        # Platforms that can send a file (Telegram: a document) attach the PDF itself; the rest have its link.
        return [Reply("\n".join(lines), buttons=(*reply.buttons, Button(t.gettext("Invoice (PDF)"), pdf_url)),
                      link_id=link.id, invoice_pdf=link.id if path is None else None)]

    async def _charge_series(self, command: SeriesCharge, identity: Identity,
                             message: IncomingMessage) -> Reply:
        t = i18n.current()
        if self.series is None:
            return Reply(t.gettext("Recurring charges are not set up here."))
        charge, every = command.charge, command.recurrence
        merchant = identity.merchant
        try:
            series = await self.series.create(SeriesDraft(
                merchant_id=merchant.id, money=charge.money, description=charge.description,
                schedule=Schedule(every.every, every.interval, every.count, every.until),
                reference=charge.reference, customer=charge.customer, origin_platform=message.platform,
                origin_address=message.address, created_by_member_id=identity.member.id))
        except SeriesError as exc:
            return Reply(t.gettext("%(problem)s\nFor example: %(example)s", problem=series_error_text(exc),
                                   example="`/charge 150 tuition every month for 6 months to +65 9123 4567`"))
        made = await self.series.links_of(series.id)
        amount = format_money(charge.money.amount_minor, charge.money.currency, merchant.locale)
        schedule = schedule_words(every.every, every.interval, every.count, every.until, merchant.locale)
        head = f"🔁 **{amount}** — {markup.user(charge.description)}, {schedule}"
        lines = [head, t.gettext("Series %(id)s · %(command)s ends it", id=f"`{series.id}`",
                                 command=f"`/series stop {series.id}`")]
        buttons: tuple[Button, ...] = ()
        if made:
            link = await self.links.get(made[0][1])
            if link is not None:
                first = self.link_reply(link, merchant)
                lines.append(t.gettext("First link:") + "\n" + first.text)
                buttons = first.buttons
        return Reply("\n".join(lines), buttons=buttons)

    async def _series(self, command: SeriesCommand, identity: Identity,
                      message: IncomingMessage) -> list[Reply]:
        t = i18n.current()
        if self.series is None:
            return [Reply(t.gettext("Recurring charges are not set up here."))]
        merchant = identity.merchant
        if command.stop is None:
            found = await self.series.list_series(merchant.id, limit=20)
            if not found:
                return [Reply(t.gettext("No recurring charges yet. Make one with "
                                        "`/charge 150 tuition every month to +65 9123 4567`."))]
            lines = [t.gettext("🔁 **Recurring charges**")]
            zone = shop_zone(merchant.timezone)
            for s in found:
                template = s.template
                amount = format_money(int(template["amount_minor"]), str(template["currency"]), merchant.locale)
                every = schedule_words(s.every, s.interval, None, None, merchant.locale)
                state = {SeriesStatus.ACTIVE: t.gettext("active"), SeriesStatus.COMPLETED: t.gettext("done"),
                         SeriesStatus.CANCELLED: t.gettext("stopped")}[SeriesStatus(s.status)]
                nxt = (", " + t.gettext("next %(day)s", day=f"{s.next_at.astimezone(zone):%Y-%m-%d}")
                       if s.next_at else "")
                of = f"/{s.count}" if s.count else ""
                lines.append(f"• `{s.id}` {amount} {markup.user(str(template['description']))} — " + t.gettext(
                    "%(every)s, %(made)s made, %(state)s", every=every, made=f"{s.made}{of}", state=state) + nxt)
            lines.append(t.gettext("Stop one: `/series stop ID`"))
            return [Reply("\n".join(lines))]
        series = await self.series.get(command.stop, merchant.id)
        if series is None:
            return [Reply(t.gettext("I found no series %(id)s in your shop. See `/series`.",
                                    id=f"`{markup.user(command.stop[:40])}`"))]
        if series.status != SeriesStatus.ACTIVE:
            return [Reply(t.gettext("Series %(id)s has already ended.", id=f"`{series.id}`"))]
        confirm: dict[str, Any] = {"kind": "series_stop", "series_id": series.id}
        question = await self.questions.ask(self._asker(message), merchant_id=merchant.id,
                                            member_id=identity.member.id, confirm=confirm)
        text = t.gettext("Stop series %(id)s (%(description)s)? yes / no\n"
                         "No further links will be made; links already sent stay open.", id=f"`{series.id}`",
                         description=markup.user(str(series.template["description"])))
        return [Reply(text, buttons=(Button(t.gettext("Yes, stop it"), action=f"{ANSWER_PREFIX}{question.id}:1"),
                                     Button(t.gettext("No"), action=f"{ANSWER_PREFIX}{question.id}:0")))]

    async def _invoice_setting(self, command: ShopCommand, identity: Identity, message: IncomingMessage) -> Reply:
        """/shop prefix CC, /shop address …: what the shop's invoices print."""
        invoices = Invoices(self.links.db)
        value = command.value or ""
        try:
            if command.setting == "invoice_prefix":
                await invoices.configure(identity.merchant.id, prefix=value)
            else:
                await invoices.configure(identity.merchant.id, address=value.replace(" / ", "\n"))
        except ValueError:
            return Reply(i18n.current().gettext(
                "%(problem)s\nFor example: %(example)s",
                problem=i18n.current().gettext(
                    "An invoice prefix is 1 to %(most)s letters, digits, - or _, e.g. INV.", most=PREFIX_MAX),
                example="`/shop prefix CC`"))
        prefix, address = await invoices.settings(identity.merchant.id)
        if command.setting == "invoice_prefix":
            return Reply(i18n.current().gettext("Done: new invoices are numbered %(number)s, …",
                                                number=f"**{prefix}-YYYY-0001**"))
        return Reply(i18n.current().gettext("Done: invoices print the address %(address)s.",
                                            address=f"**{markup.user(address or '')}**"))

    async def _series_confirmed(self, message: IncomingMessage, question: Question,
                                pick: int) -> Reply:
        confirm = question.confirm or {}
        t = i18n.current()
        if pick != 1:
            return Reply(t.gettext("OK, the series goes on."))
        identity = await self.members.identify(message)
        if identity is None or identity.merchant.id != question.merchant_id or self.series is None:
            return Reply(t.gettext("That question is closed. Send the /series stop again."))
        try:
            series = await self.series.cancel(str(confirm["series_id"]), identity.merchant.id)
        except SeriesError as exc:
            if exc.code in ("not_found", "not_active"):
                return Reply(t.gettext("Series %(id)s has already ended.", id=f"`{confirm['series_id']}`"))
            return Reply(series_error_text(exc))
        return Reply(t.ngettext("⏹ Series %(id)s stopped after %(count)s link.",
                                "⏹ Series %(id)s stopped after %(count)s links.", series.made, id=f"`{series.id}`"))

