"""Bulk links from a CSV file (`paylinks link import`): tuition fees, a month of invoices.

Columns: amount, currency, description, reference, customer_name, customer_email, customer_phone,
expires_in (header names case-insensitive; unknown columns refused by name; `reference` required). Each
row is checked and made on its own: a bad row becomes a line of FILE.errors.csv (row number, reason) and
the others are still made. Idempotent by (shop, reference) among imported links: the reference is the
link's idempotency key `import:<reference>`, so running the same file again makes nothing twice.
Without `send`, nobody is sent anything (the links are made quietly).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import phonenumbers
from sqlalchemy import select

from core import chat_errors, i18n
from core.durations import parse_duration
from core.i18n import N_, Tr, TranslatableError
from core.links import LINKS, Customer, LinkDraft, LinkError, LinkService
from core.locales import territory_of
from core.models import Merchant
from core.money import Money, MoneyError
from core.sql import table

log = logging.getLogger("paylinks.imports")

COLUMNS = ("amount", "currency", "description", "reference", "customer_name", "customer_email",
           "customer_phone", "expires_in")
KEY_PREFIX = "import:"
# Rows made at once (their transactions commit together on SQLite).
BATCH = 200
MERCHANTS = table(Merchant)


# The file-level problems (ImportFileError's msgids); a page without the file's path says these two its way.
UNREADABLE = N_("cannot read %(path)s: %(reason)s")
EMPTY = N_("%(path)s is empty; the first line names the columns (%(columns)s)")


class Reason(str):
    """Why a row was not made, in English (the CLI, FILE.errors.csv), with its catalog msgid and values so a
    page can say it in its reader's language (`translated`). A reason from the link and money checks keeps
    their English (`Reason.of`) and is said on a page as core/chat_errors.py words it."""

    template: str
    values: dict[str, object]
    say: Callable[[], str] | None

    def __new__(cls, template: str, **values: object) -> Reason:
        made = super().__new__(cls, template % values if values else template)
        made.template, made.values, made.say = template, values, None
        return made

    @classmethod
    def of(cls, english: str, say: Callable[[], str]) -> Reason:
        """The English `english`; `say()` words it in i18n.current() (called inside `translated`)."""
        made = super().__new__(cls, english)
        made.template, made.values, made.say = english, {}, say
        return made

    def translated(self, t: Tr) -> str:
        if self.say is not None:
            with i18n.speaking(t.language):
                return self.say()
        return t.gettext(self.template, **self.values)


def _reason(exc: LinkError) -> str:
    if exc.code == "idempotency_conflict":
        return Reason(N_("this reference was imported before with other values"))
    if isinstance(exc.message, Reason):
        return exc.message
    return Reason.of(exc.message.replace("expires_at", "expires_in"),
                     partial(chat_errors.link_error_text, exc, page=True))


class ImportFileError(TranslatableError, ValueError):
    """The file as a whole cannot be imported (missing, not CSV, unknown or missing columns). The message is
    a catalog msgid; `values` fill its placeholders (TranslatableError)."""


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    already: int = 0  # imported before (same shop and reference)
    errors: list[tuple[int, str]] = field(default_factory=list)
    errors_path: Path | None = None

    def summary(self, *, dry_run: bool, send: bool) -> str:
        verb = "would import" if dry_run else "imported"
        text = f"{verb} {self.created} of {self.rows} rows"
        if self.already:
            text += f"; {self.already} already imported (same reference)"
        if self.errors:
            where = f" (see {self.errors_path})" if self.errors_path else ""
            text += f"; {len(self.errors)} with errors{where}"
        if not dry_run:
            text += "; links sent to customers through the outbox" if send else "; nothing sent to anyone"
        return text


def read_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The header (lower-cased) and the rows with their line numbers (the header is row 1)."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ImportFileError(UNREADABLE, {"path": path, "reason": exc.strerror}) from None
    reader = csv.reader(handle)
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        handle.close()
        raise ImportFileError(EMPTY, {"path": path, "columns": ", ".join(COLUMNS)}) from None
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        handle.close()
        raise ImportFileError(N_("unknown column %(column)s; columns are %(columns)s"),
                              {"column": repr(unknown[0]), "columns": ", ".join(COLUMNS)})
    for required in ("reference", "amount", "description"):
        if required not in header:
            handle.close()
            raise ImportFileError(N_("the column %(column)s is required"), {"column": repr(required)})

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        with handle:
            for number, values in enumerate(reader, start=2):
                if not any(v.strip() for v in values):
                    continue  # blank line
                yield number, {name: (values[i].strip() if i < len(values) else "") for i, name in enumerate(header)}

    return header, rows()


def count_rows(path: Path) -> int:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return max(0, sum(1 for values in csv.reader(handle) if any(v.strip() for v in values)) - 1)


class Importer:
    def __init__(self, links: LinkService) -> None:
        self.links = links

    async def _merchant(self, merchant_id: str) -> Merchant:
        async with self.links.db.read() as conn:
            row = (await conn.execute(select(MERCHANTS).where(MERCHANTS.c.id == merchant_id))).first()
        if row is None:
            raise ImportFileError(N_("no merchant with id %(merchant)s (see `paylinks merchant list`)"),
                                  {"merchant": merchant_id})
        return Merchant.model_construct(**row._mapping)

    def draft(self, merchant: Merchant, values: dict[str, str], *, send: bool) -> LinkDraft:
        """The link a row asks for; LinkError naming the column when it cannot be made."""
        reference = values.get("reference", "")
        if not reference:
            raise LinkError("missing_reference", Reason(N_("reference is required")), field="reference")
        currency = values.get("currency") or merchant.default_currency
        try:
            money = Money.parse(values.get("amount", ""), currency)
        except MoneyError as exc:
            said = partial(chat_errors.money_error_text, exc, chat_errors.example_amount(currency))
            raise LinkError("invalid_amount", Reason.of(f"amount: {exc}", said), field="amount") from None
        expires_in = None
        if values.get("expires_in"):
            try:
                expires_in = parse_duration(values["expires_in"])
            except ValueError as exc:
                reason = Reason.of(f"expires_in: {exc}", partial(chat_errors.link_error_text, LinkError(
                    "invalid_expiry", str(exc), field="expires_in"), page=True))
                raise LinkError("invalid_expiry", reason, field="expires_in") from None
        phone = values.get("customer_phone") or None
        if phone:
            try:
                number = phonenumbers.parse(phone, territory_of(merchant.locale) or "US")
            except phonenumbers.NumberParseException:
                number = None
            if number is None or not phonenumbers.is_valid_number(number):
                raise LinkError("invalid_phone", Reason(N_("customer_phone %(phone)s is not a phone number"),
                                                        phone=repr(phone)), field="customer_phone")
            phone = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        customer = Customer(values.get("customer_name") or None, values.get("customer_email") or None, phone)
        row_hash = hashlib.sha256("\x1f".join(values.get(c, "") for c in COLUMNS).encode()).hexdigest()
        return LinkDraft(merchant_id=merchant.id, money=money, description=values.get("description", ""),
                         reference=reference, customer=customer, expires_in=expires_in,
                         idempotency_key=KEY_PREFIX + reference, request_hash=row_hash, notify_customer=send)

    async def run(
        self, path: Path, merchant_id: str, *, send: bool = False, dry_run: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> ImportReport:
        merchant = await self._merchant(merchant_id)
        _, rows = read_rows(path)
        report = ImportReport()
        known = await self._imported_references(merchant.id)
        seen: set[str] = set()
        batch: list[tuple[int, LinkDraft]] = []
        for number, values in rows:
            report.rows += 1
            queued = False
            try:
                draft = self.draft(merchant, values, send=send)
                assert draft.reference is not None
                if draft.reference in known:
                    report.already += 1
                elif draft.reference in seen:
                    raise LinkError("duplicate_reference", Reason(N_("reference %(reference)s is on an earlier row"),
                                                                  reference=repr(draft.reference)),
                                    field="reference")
                elif dry_run:
                    await self.links.check_draft(draft)
                    report.created += 1
                else:
                    batch.append((number, draft))  # create() checks it
                    queued = True
                seen.add(draft.reference)
            except LinkError as exc:
                report.errors.append((number, _reason(exc)))
            if not queued and progress is not None:
                progress(1)  # a queued row counts once it is made
            if len(batch) >= BATCH:
                await self._create(batch, report, progress)
                batch = []
        await self._create(batch, report, progress)
        report.errors.sort()
        if report.errors:
            report.errors_path = path.with_name(path.stem + ".errors.csv")
            with report.errors_path.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["row", "reason"])
                writer.writerows(report.errors)
        log.info("import merchant=%s rows=%d created=%d already=%d errors=%d dry_run=%s", merchant.id,
                 report.rows, report.created, report.already, len(report.errors), dry_run)
        return report

    async def _create(self, batch: list[tuple[int, LinkDraft]], report: ImportReport,
                      progress: Callable[[int], None] | None) -> None:
        """Make a batch of checked links at once: on SQLite their commits share one group commit."""
        if not batch:
            return
        results = await asyncio.gather(*(self.links.create(draft) for _, draft in batch), return_exceptions=True)
        for (number, _), result in zip(batch, results, strict=True):
            if isinstance(result, LinkError):
                report.errors.append((number, _reason(result)))
            elif isinstance(result, BaseException):
                raise result
            else:
                created = result[1]
                report.created += created
                report.already += not created
        if progress is not None:
            progress(len(batch))

    async def _imported_references(self, merchant_id: str) -> set[str]:
        async with self.links.db.read() as conn:
            rows = (await conn.execute(select(LINKS.c.idempotency_key).where(
                LINKS.c.merchant_id == merchant_id, LINKS.c.idempotency_key.like(KEY_PREFIX + "%")))).all()
        return {r.idempotency_key.removeprefix(KEY_PREFIX) for r in rows}

