"""The hosted pay page a customer opens from a chat: GET /p/{id}, Pay, QR codes, and our static files.

The page is rendered on the server from the stored link (the amount never comes from the client) and
works without JavaScript. GET /p/{id} is the hot path: one read (link joined with its merchant), a
template compiled once per app, no per-request set-up.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2
from aiohttp import web
from sqlalchemy import Connection, PoolProxiedConnection, bindparam, select
from sqlalchemy.exc import IntegrityError

from adapters.jinja_i18n import jinja_callables
from adapters.qr import render_qr
from adapters.web.branding import brand_context, link_branding
from adapters.web.invoice_pages import ItemsView, items_view
from adapters.web.security import origin_of
from core.db import Database, DatabaseBusy
from core.i18n import (
    AUTONYMS,
    LANGUAGES,
    Clock,
    Tr,
    html_lang,
    language_of_locale,
    match_language,
    negotiate,
    plain_callables,
    tr,
)
from core.invoices import Invoices
from core.links import LinkService
from core.locales import babel_locale, territory_of
from core.models import (
    LinkStatus,
    Merchant,
    MerchantLogo,
    Payment,
    PaymentLink,
    PaymentStatus,
    Refund,
    RefundStatus,
)
from core.money import format_money
from core.ports import ProviderResolver
from core.refunds import RefundService
from core.sql import table
from core.text import isolate

_DAY = timedelta(days=1)
LANGUAGE_COOKIE = "paylinks_lang"
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600

log = logging.getLogger("paylinks.web.pages")

LINKS = table(PaymentLink)
MERCHANTS = table(Merchant)
LOGOS = table(MerchantLogo)

# Link ids are lowercase base32 (core.ids.link_id); anything else is not a link and costs no query.
LINK_ID = re.compile(r"[a-z2-7]{16,64}")
# Provider payment refs echoed back on the return URL (sandbox: "ch_" + hex).
PAYMENT_REF = re.compile(r"[A-Za-z0-9_\-]{4,200}")

QR_PNG_SCALE = 8  # pixels per module (Telegram's QR photo uses the same, so they share adapters.qr's cache)
QR_SVG_SCALE = 4

PAY_HTML_CACHE_SIZE = 2048  # rendered active pay pages kept (~2 KB each)
RECEIPT_HTML_CACHE_SIZE = 512  # rendered receipts kept (~4 KB each)
OG_CACHE_SIZE = 256  # link preview PNGs (~30 KB each), per link state and branding
# Views are counted in memory and written together, at most this long after the first of them: a write
# per view (SQLAlchemy's execute path, a group commit) cost several times the page itself.
VIEW_FLUSH_S = 0.5
MAX_PENDING_VIEWS = 5_000  # distinct links waiting for their count; more write at once
VIEWS_PER_WRITE = 50  # counts written concurrently (one group commit on SQLite; a bounded pool on PostgreSQL)

HTML_HEADERS = {"Cache-Control": "no-store"}  # the status changes; never serve a stale "Pay" page

_PAGE_QUERY = (
    select(
        LINKS.c.id, LINKS.c.amount_minor, LINKS.c.currency, LINKS.c.description, LINKS.c.reference,
        LINKS.c.status, LINKS.c.expires_at, LINKS.c.paid_at, LINKS.c.livemode,
        MERCHANTS.c.name.label("merchant_name"), MERCHANTS.c.locale.label("merchant_locale"),
        LINKS.c.merchant_id, MERCHANTS.c.brand_color, MERCHANTS.c.logo_version, MERCHANTS.c.support_email,
        MERCHANTS.c.support_phone, MERCHANTS.c.timezone.label("merchant_timezone"), LINKS.c.reusable,
    )
    .join_from(LINKS, MERCHANTS, MERCHANTS.c.id == LINKS.c.merchant_id)
    .where(LINKS.c.id == bindparam("link_id"))
)
_EXISTS_QUERY = select(LINKS.c.id).where(LINKS.c.id == bindparam("link_id"))


# ---------------------------------------------------------------- templates and static files


def make_templates() -> jinja2.Environment:
    """The Jinja2 environment of the web pages: package templates, autoescaping on, compiled once."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("adapters.web", "templates"),
        autoescape=True,
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
    )
    # English unless a render passes its reader's callables (page_i18n): newstyle gettext, so
    # placeholders are named and filled (and escaped) by gettext itself.
    gettext, ngettext = plain_callables("en")
    env.install_gettext_callables(gettext=gettext, ngettext=ngettext,  # type: ignore[attr-defined]  # jinja2.ext.i18n
                                  newstyle=True)
    env.globals.update(css_url=StaticFiles.url("paylinks.css"), icon_url=StaticFiles.url("favicon.svg"),
                       dashboard_css_url=StaticFiles.url("dashboard.css"),
                       dashboard_js_url=StaticFiles.url("dashboard.js"))
    return env


@lru_cache(maxsize=1)
def _static_files() -> dict[str, tuple[bytes, str, str]]:
    """name -> (content, content type, short content hash)."""
    types = {".css": "text/css", ".svg": "image/svg+xml", ".js": "text/javascript"}
    files: dict[str, tuple[bytes, str, str]] = {}
    for entry in resources.files("adapters.web").joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in types:
            body = entry.read_bytes()
            files[entry.name] = (body, types[suffix], hashlib.sha256(body).hexdigest()[:12])
    return files


class StaticFiles:
    """Our few static files, held in memory and served with a content-hash version for long caching."""

    @staticmethod
    def url(name: str) -> str:
        return f"/static/{name}?v={_static_files()[name][2]}"

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/static/{name}", self.serve)]

    async def serve(self, request: web.Request) -> web.Response:
        found = _static_files().get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        body, content_type, version = found
        cache = "public, max-age=31536000, immutable" if request.query.get("v") == version else "public, max-age=300"
        return web.Response(body=body, content_type=content_type, headers={"Cache-Control": cache})


# ---------------------------------------------------------------- display helpers


@lru_cache(maxsize=256)
def page_lang(language: str, shop_locale: str | None = None) -> str:
    """<html lang> of a page in that catalog ("zh_Hant" -> "zh-Hant"), with the shop's territory when the
    page is in the shop's own language (en_SG -> "en-SG": its amounts and dates are written that way)."""
    territory = territory_of(shop_locale) if shop_locale and babel_locale(shop_locale).territory else None
    if territory and match_language(shop_locale) == language:
        return f"{html_lang(language)}-{territory}"
    return html_lang(language)


@lru_cache(maxsize=64)
def _switcher(current: str) -> tuple[dict[str, Any], ...]:
    """The language links under every customer page: `?lang=th` (remembered in a cookie), no script."""
    return tuple({"href": f"?lang={code}", "lang": html_lang(code), "name": AUTONYMS[code],
                  "current": code == current} for code in LANGUAGES)


def page_i18n(language: str, shop_locale: str | None = None, *, switcher: bool = True) -> dict[str, Any]:
    """What a page's template needs to speak `language`: gettext callables, <html lang>, the switcher (not on
    the pages answering a form post, where `?lang=` would name a POST-only address)."""
    return {"lang": page_lang(language, shop_locale), "language": language,
            "switcher": _switcher(language) if switcher else (),
            **jinja_callables(language)}


def request_language(request: web.Request, shop_locale: str | None) -> str:
    """?lang=th (the switcher), else the cookie it left, else Accept-Language, else the shop's locale."""
    for chosen in (request.query.get("lang"), request.cookies.get(LANGUAGE_COOKIE)):
        found = match_language(chosen)
        if found is not None:
            return found
    return negotiate(request.headers.get("Accept-Language"), shop_locale)


def remember_language(request: web.Request, response: web.StreamResponse, language: str) -> None:
    """A switcher choice (`?lang=`) is kept for the customer's next pages."""
    if match_language(request.query.get("lang")) is not None and request.cookies.get(LANGUAGE_COOKIE) != language:
        response.set_cookie(LANGUAGE_COOKIE, language, max_age=LANGUAGE_COOKIE_AGE, path="/", httponly=True,
                            samesite="Lax", secure=request.secure)
    response.headers["Vary"] = "Accept-Language, Cookie"


@dataclass(frozen=True, slots=True)
class PageLink:
    """The columns the pay page shows, read in one query with the merchant's name and locale."""

    id: str
    amount_minor: int
    currency: str
    description: str
    reference: str | None
    status: str
    expires_at: datetime
    paid_at: datetime | None
    livemode: bool
    merchant_name: str
    merchant_locale: str
    # The shop's branding (the dashboard's settings page, `/shop`): None where it is not set.
    merchant_id: str
    brand_color: str | None
    logo_version: str | None
    support_email: str | None
    support_phone: str | None
    merchant_timezone: str | None
    # Sells many times: its page is adapters/web/sell_pages.py.
    reusable: bool = False

    @property
    def amount(self) -> str:
        return format_money(self.amount_minor, self.currency, self.merchant_locale)

    def clock(self, language: str) -> Clock:
        """Times on the shop's clock (its zone, with the zone's name), written in the reader's language."""
        return Clock.of(language=language, shop_locale=self.merchant_locale, timezone=self.merchant_timezone)


# The SQLite fast path builds PageLink positionally from _PAGE_QUERY's columns: keep them in step.
if [c.key for c in _PAGE_QUERY.selected_columns] != [f.name for f in fields(PageLink)]:
    raise RuntimeError("_PAGE_QUERY columns and PageLink fields differ")


def _payment_key(payment: Payment | None) -> tuple[Any, ...] | None:
    """What a receipt shows of its payment (_page, _refund_facts)."""
    if payment is None:
        return None
    return (payment.id, payment.amount_minor, payment.amount_refunded_minor, payment.currency, payment.created_at)


def _applied(link: PageLink, payment: Payment) -> bool:
    """The payment that paid the link: recorded in the very transaction that set paid_at (same instant).

    Its status cannot say so once refunds begin (a refunded double payment is `refunded` too).
    """
    return payment.status != PaymentStatus.REFUND_NEEDED and link.paid_at is not None \
        and payment.created_at == link.paid_at


class SqlitePageReader:
    """The pay page's query on SQLite, on one long-lived connection of the engine's pool.

    Measured here: SQLAlchemy's execute machinery costs ~60 µs a statement and a pool checkout/return
    ~15 µs, while the SQLite lookup itself takes ~5 µs, so on the hottest page they were most of the
    request. The statement is compiled once from _PAGE_QUERY and the columns go through their own
    SQLAlchemy result processors, so the values (aware UTC datetimes) are exactly what Core returns.
    The connection is in autocommit (core.db), so each SELECT sees everything committed before it (WAL
    readers never wait for writers), and fetchall() ends the statement so no read transaction lingers.
    """

    def __init__(self) -> None:
        self._connection: PoolProxiedConnection | None = None
        self._sql = ""
        self._processors: list[Callable[[Any], Any] | None] = []
        # Raw row -> the PageLink made from it: an unchanged row skips the result processors (datetime
        # parsing) and comes back as the same object, which _pay_html then finds at once.
        self._parsed: dict[tuple[Any, ...], PageLink] = {}

    @property
    def ready(self) -> bool:
        return self._connection is not None

    def open(self, sync_conn: Connection) -> None:
        if self._connection is not None:
            return
        dialect = sync_conn.dialect
        self._sql = str(_PAGE_QUERY.compile(dialect=dialect))
        self._processors = [column.type.dialect_impl(dialect).result_processor(dialect, None)
                            for column in _PAGE_QUERY.selected_columns]
        # A connection of the same engine, so it has the same PRAGMAs (WAL, busy_timeout, autocommit).
        self._connection = sync_conn.engine.raw_connection()

    def fetch(self, link_id: str) -> PageLink | None:
        assert self._connection is not None
        try:
            rows = self._connection.driver_connection.execute(self._sql, (link_id,)).fetchall()  # type: ignore[union-attr]  # None only once closed
        except Exception:
            self.close()  # a broken connection is not reused; the next request opens a fresh one
            raise
        if not rows:
            return None
        raw = tuple(rows[0])
        link = self._parsed.get(raw)
        if link is None:
            link = PageLink(*(value if process is None else process(value)
                              for process, value in zip(self._processors, raw, strict=True)))
            if len(self._parsed) >= PAY_HTML_CACHE_SIZE:
                self._parsed.pop(next(iter(self._parsed)))  # oldest first
            self._parsed[raw] = link
        return link

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def preview_version(link: PageLink) -> str:
    """Changes whenever the link preview card would look different (status, amount, name, branding)."""
    key = "|".join(str(v) for v in (link.status, link.amount_minor, link.currency, link.description,
                                    link.merchant_name, link.brand_color, link.logo_version, link.merchant_locale))
    return hashlib.sha256(key.encode()).hexdigest()[:12]


# ---------------------------------------------------------------- the pages


class PayPages:
    def __init__(
        self,
        *,
        db: Database,
        links: LinkService,
        providers: ProviderResolver,
        checkout_origins: Iterable[str] = (),
        templates: jinja2.Environment | None = None,
        refunds: RefundService | None = None,
    ) -> None:
        self.db = db
        self.links = links
        # Pay goes to the shop's own provider account when it has one, else the deployment's.
        self.providers = providers
        # The timeline's link.opened (first view, then a count) and the refunds the pages tell the truth about.
        self.refunds = refunds or RefundService(db, links, clock=links.clock)
        env = templates or make_templates()
        # Compiled now, once per app, so a request only renders.
        self.pay_template = env.get_template("pay.html")
        self.receipt_template = env.get_template("receipt.html")
        self.closed_template = env.get_template("closed.html")
        self.refund_template = env.get_template("refund.html")
        self.not_found_template = env.get_template("not_found.html")
        self.message_template = env.get_template("message.html")
        self._pay_html: dict[tuple[PageLink, str, bool], bytes] = {}
        self._receipt_html: dict[tuple[Any, ...], bytes] = {}
        from adapters.web.sell_pages import SellPages

        self.sell = SellPages(self)
        self._og_cache: dict[tuple[str, str, str], bytes] = {}
        # One thread of our own for Pillow (shut down with the app, not left to the loop's default pool).
        self._drawing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="og-card")
        self._view_tasks: set[asyncio.Task[None]] = set()
        self._pending_views: dict[str, tuple[datetime, int]] = {}  # link id -> (first view, views)
        self._view_flush: asyncio.TimerHandle | None = None
        self._sqlite = SqlitePageReader()
        # Line items and invoice numbers the pages list (adapters/web/invoice_pages.py), per link and status:
        # items never change once made, a number comes with payment (a new status).
        self.invoices = Invoices(db)
        self._items: dict[tuple[str, str, str], ItemsView | None] = {}
        # Where Pay's 303 may go: these origins are in CSP form-action (adapters/web/security.py); every
        # provider a shop may pay through (bots/app.py gathers them).
        self.redirect_origins = frozenset(
            o for o in (origin_of(links.public_base_url), *(origin_of(u) for u in checkout_origins)) if o)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/p/{link_id}", self.page),
            web.post("/p/{link_id}/pay", self.pay),
            web.get("/p/{link_id}/qr.svg", self.qr_svg),
            web.get("/p/{link_id}/qr.png", self.qr_png),
            web.get("/p/{link_id}/og.png", self.og_png),
        ]

    # ---- reading

    async def _read(self, link_id: str) -> PageLink | None:
        if self._sqlite.ready:
            return self._sqlite.fetch(link_id)
        async with self.db.read() as conn:
            if conn.dialect.name == "sqlite":
                await conn.run_sync(self._sqlite.open)
                return self._sqlite.fetch(link_id)
            row = (await conn.execute(_PAGE_QUERY, {"link_id": link_id})).first()
        return PageLink(**row._mapping) if row is not None else None

    async def lifespan(self, _app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: give the SQLite page reader's connection back before the database is disposed."""
        try:
            yield
        finally:
            await self.views_recorded()
            self._sqlite.close()
            self._drawing.shutdown(wait=False, cancel_futures=True)

    async def _exists(self, link_id: str) -> bool:
        async with self.db.read() as conn:
            return (await conn.execute(_EXISTS_QUERY, {"link_id": link_id})).first() is not None

    # ---- GET /p/{id}

    async def page(self, request: web.Request) -> web.Response:
        link_id = request.match_info["link_id"].lower()
        link = await self._read(link_id) if LINK_ID.fullmatch(link_id) else None
        if link is None:
            return self.not_found(request_language(request, None), request)
        language = request_language(request, link.merchant_locale)
        response = await self._page(request, link, language)
        remember_language(request, response, language)
        return response

    async def _page(self, request: web.Request, link: PageLink, language: str) -> web.Response:
        t = tr(language)
        status = self.links.status_of(link)
        if status is LinkStatus.EXPIRED and link.status == LinkStatus.ACTIVE:
            # Overdue but not swept yet: record the expiry now (hooks tell the merchant), show it at once.
            await self.links.get(link.id)
        self._count_view(link.id)
        await self._load_items(link, language)
        if link.reusable:
            sold = await self.sell.page(request, link, status)
            if sold is not None:
                return sold
        payment_ref = request.query.get("payment")
        if payment_ref is not None and PAYMENT_REF.fullmatch(payment_ref):
            returned = next((p for p in await self.links.payments_for(link.id) if p.provider_ref == payment_ref), None)
            if returned is not None and not _applied(link, returned):
                refunds = (await self.refunds.refunds_for([link.id])).get(returned.id, [])
                return self._render(self.refund_template, link, language,
                                    self._refund_context(link, status, returned, refunds, t))
        if status is LinkStatus.ACTIVE:
            return self._pay_page(link, language)
        shop = isolate(link.merchant_name)
        if status in (LinkStatus.PAID, LinkStatus.REFUNDED):
            payment = await self._kept_payment(link)
            refunds = (await self.refunds.refunds_for([link.id])).get(payment.id, []) if payment else []
            # Like the pay page's, the receipt is a pure function of what was just read: an unchanged link,
            # payment and refunds reuse its HTML (a refund, or any change of theirs, is another key).
            key = (link, language, status, _payment_key(payment),
                   tuple((r.amount_minor, r.status, r.completed_at) for r in refunds))
            body = self._receipt_html.get(key)
            if body is None:
                paid_at = link.paid_at or (payment.created_at if payment else None)
                title = (t.gettext("Refunded: %(amount)s to %(shop)s", amount=link.amount, shop=shop)
                         if status is LinkStatus.REFUNDED
                         else t.gettext("Paid: %(amount)s to %(shop)s", amount=link.amount, shop=shop))
                body = self._html(self.receipt_template, link, language, {
                    "title": title,
                    "paid_on": link.clock(language).when(paid_at) if paid_at else "",
                    "payment_id": payment.id if payment else "",
                    **self._refund_facts(link, payment, refunds, language),
                })
                if len(self._receipt_html) >= RECEIPT_HTML_CACHE_SIZE:
                    self._receipt_html.pop(next(iter(self._receipt_html)))  # oldest first
                self._receipt_html[key] = body
            return web.Response(body=body, content_type="text/html", charset="utf-8", headers=HTML_HEADERS)
        if status is LinkStatus.EXPIRED:
            texts = {
                "title": t.gettext("Expired: %(amount)s to %(shop)s", amount=link.amount, shop=shop),
                "badge": t.gettext("Expired"),
                "heading": t.gettext("This payment link has expired"),
                "explanation": t.gettext("It can no longer be paid."),
            }
        else:
            texts = {
                "title": t.gettext("Cancelled: %(amount)s to %(shop)s", amount=link.amount, shop=shop),
                "badge": t.gettext("Cancelled"),
                "heading": t.gettext("This payment link was cancelled"),
                "explanation": t.gettext("%(shop)s cancelled it, so it can no longer be paid.", shop=shop),
            }
        return self._render(self.closed_template, link, language, texts)

    async def _load_items(self, link: PageLink, language: str) -> None:
        key = (link.id, link.status, language)
        if key in self._items:
            return
        info = await self.invoices.of(link.id)
        if len(self._items) >= PAY_HTML_CACHE_SIZE:
            self._items.pop(next(iter(self._items)))  # oldest first
        self._items[key] = items_view(link, info, link.merchant_locale, language) if info is not None else None

    def _pay_page(self, link: PageLink, language: str) -> web.Response:
        # The page is a pure function of the row just read (and the reader's language, and whether the
        # deadline is near enough to show its time), so an unchanged row reuses its HTML; any change
        # (status, amount, merchant name…) is a different key. This keeps the hot path to one read.
        now = self.links.clock()
        soon = link.expires_at - now <= _DAY
        key = (link, language, soon)
        body = self._pay_html.get(key)
        if body is None:
            t = tr(language)
            body = self._html(self.pay_template, link, language, {
                "title": t.gettext("Pay %(amount)s to %(shop)s", amount=link.amount, shop=isolate(link.merchant_name)),
                "expires_on": link.clock(language).deadline(link.expires_at, now),
            })
            if len(self._pay_html) >= PAY_HTML_CACHE_SIZE:
                self._pay_html.pop(next(iter(self._pay_html)))  # oldest first: dicts keep insertion order
            self._pay_html[key] = body
        return web.Response(body=body, content_type="text/html", charset="utf-8", headers=HTML_HEADERS)

    def _render(self, template: jinja2.Template, link: PageLink, language: str,
                extra: dict[str, Any]) -> web.Response:
        return web.Response(body=self._html(template, link, language, extra), content_type="text/html",
                            charset="utf-8", headers=HTML_HEADERS)

    def _html(self, template: jinja2.Template, link: PageLink, language: str, extra: dict[str, Any]) -> bytes:
        context: dict[str, Any] = {
            **page_i18n(language, link.merchant_locale),
            "link_id": link.id,
            "url": self.links.url(link.id),
            "amount": link.amount,
            "description": link.description,
            "reference": link.reference,
            "test_mode": not link.livemode,
            **brand_context(merchant_id=link.merchant_id, name=link.merchant_name, brand_color=link.brand_color,
                            logo_version=link.logo_version, support_email=link.support_email,
                            support_phone=link.support_phone),
            # Cached per link state and branding (adapters/web/preview.py): the URL changes when they do.
            "og_image": f"{self.links.url(link.id)}/og.png?v={preview_version(link)}",
        }
        items = self._items.get((link.id, link.status, language))
        context.update(items=items if items is not None and len(items.totals) > 1 else None,
                       invoice_number=items.number if items is not None else None)
        context.update(extra)  # a page may say something else (the refund page: the payment's amount)
        return template.render(context).encode()

    def _count_view(self, link_id: str) -> None:
        """Count the view after answering: a page never waits for a write (another process may hold it).
        Counts gather for VIEW_FLUSH_S, then one background task writes them."""
        pending = self._pending_views.get(link_id)
        self._pending_views[link_id] = (pending[0], pending[1] + 1) if pending else (self.refunds.clock(), 1)
        if len(self._pending_views) >= MAX_PENDING_VIEWS:
            self._flush_views()
        elif self._view_flush is None:
            self._view_flush = asyncio.get_running_loop().call_later(VIEW_FLUSH_S, self._flush_views)

    def _flush_views(self) -> None:
        if self._view_flush is not None:
            self._view_flush.cancel()
            self._view_flush = None
        views, self._pending_views = self._pending_views, {}
        if views:
            task = asyncio.get_running_loop().create_task(self._record_views(views))
            self._view_tasks.add(task)
            task.add_done_callback(self._view_tasks.discard)

    async def _record_views(self, views: dict[str, tuple[datetime, int]]) -> None:
        items = list(views.items())
        for start in range(0, len(items), VIEWS_PER_WRITE):
            await asyncio.gather(*(self._record_view(link_id, at, count)
                                   for link_id, (at, count) in items[start:start + VIEWS_PER_WRITE]))

    async def _record_view(self, link_id: str, at: datetime, count: int) -> None:
        try:
            await self.refunds.record_view(link_id, at=at, count=count)
        except (DatabaseBusy, IntegrityError):  # a view count is never worth a failed page
            log.info("pay page view not counted link=%s views=%s", link_id, count)

    async def views_recorded(self) -> None:
        """Write the views counted so far and wait for the writes (tests, shutdown)."""
        self._flush_views()
        while self._view_tasks:
            await asyncio.gather(*list(self._view_tasks), return_exceptions=True)

    @staticmethod
    def _refund_facts(link: PageLink, payment: Payment | None, refunds: list[Refund],
                      language: str) -> dict[str, Any]:
        """What the customer's page says of refunds: only what the provider confirmed counts as returned."""
        if payment is None:
            return {"refund_state": ""}
        pending = sum(r.amount_minor for r in refunds if r.status == RefundStatus.PENDING)
        # The payment and its refunds are two reads: a refund settled between them is SUCCEEDED here while
        # the payment read before it does not count it yet (PostgreSQL, a refund webhook meanwhile).
        refunded = max(payment.amount_refunded_minor,
                       sum(r.amount_minor for r in refunds if r.status == RefundStatus.SUCCEEDED))
        done = [r.completed_at for r in refunds if r.status == RefundStatus.SUCCEEDED and r.completed_at]
        if refunded >= payment.amount_minor:
            state = "refunded"
        elif refunded:
            state = "partly_refunded"
        elif pending:
            state = "pending"
        else:
            state = ""
        return {
            "refund_state": state,
            "refunded_amount": format_money(refunded, payment.currency, link.merchant_locale),
            "pending_amount": format_money(pending, payment.currency, link.merchant_locale),
            "refunded_on": link.clock(language).when(max(done)) if done else "",
        }

    def _refund_context(self, link: PageLink, status: LinkStatus, payment: Payment,
                        refunds: list[Refund], t: Tr) -> dict[str, Any]:
        if status in (LinkStatus.PAID, LinkStatus.REFUNDED):
            heading = t.gettext("This link was already paid")
            explanation = t.gettext("Someone paid this link just before you, so your payment was not applied to it.")
        elif status is LinkStatus.ACTIVE:
            heading = t.gettext("Your payment could not be applied")
            explanation = t.gettext("The amount of your payment did not match this link, so it was not applied.")
        else:
            heading = (t.gettext("This link expired before your payment arrived") if status is LinkStatus.EXPIRED
                       else t.gettext("This link was cancelled before your payment arrived"))
            explanation = t.gettext("The link could no longer be paid, so your payment was not applied to it.")
        return {
            "title": heading,
            "heading": heading,
            "explanation": explanation,
            "amount": format_money(payment.amount_minor, payment.currency, link.merchant_locale),
            "payment_id": payment.id,
            **self._refund_facts(link, payment, refunds, t.language),
        }

    async def _kept_payment(self, link: PageLink) -> Payment | None:
        payments = await self.links.payments_for(link.id)
        return next((p for p in payments if _applied(link, p)), None)

    def not_found(self, language: str = "en", request: web.Request | None = None) -> web.Response:
        if request is not None:
            language = request_language(request, None)
        html = self.not_found_template.render(**page_i18n(language),
                                              title=tr(language).gettext("Payment link not found"))
        return web.Response(text=html, status=404, content_type="text/html", headers=HTML_HEADERS)

    # ---- POST /p/{id}/pay

    async def pay(self, request: web.Request) -> web.StreamResponse:
        """Start a checkout for the stored amount; CSRF-harmless, as it only sends the customer to pay."""
        link_id = request.match_info["link_id"].lower()
        link = await self.links.get(link_id) if LINK_ID.fullmatch(link_id) else None
        if link is None:
            return self.not_found(request=request)
        page_url = f"/p/{link.id}"
        if link.reusable:
            return await self.sell.pay(request, link)
        if self.links.status_of(link) is not LinkStatus.ACTIVE:
            # Paid, expired or cancelled: the page explains which; no checkout is created.
            raise web.HTTPSeeOther(page_url)
        chosen = await self.providers.for_merchant(link.merchant_id)
        provider = chosen.provider
        attempt = await self.links.next_checkout_attempt(link.id)
        try:
            checkout = await provider.create_checkout(
                link, return_url=self.links.url(link.id), idempotency_key=f"{link.id}:{attempt}"
            )
        except Exception as exc:  # a provider outage must give the customer a page, not a 500
            # The provider's request id (ProviderError.request_id) is what its support asks for. A classified
            # provider failure (it has a request_id attribute, maybe None) is one line; anything else a traceback.
            if hasattr(exc, "request_id"):
                log.warning("checkout failed link=%s attempt=%d provider=%s request_id=%s status=%s error=%s",
                            link.id, attempt, provider.name, exc.request_id, getattr(exc, "status", None), exc)
            else:
                log.exception("checkout failed link=%s attempt=%d provider=%s request_id=None", link.id, attempt,
                              provider.name)
            t = await self._language_of(request, link.merchant_id)
            html = self.message_template.render(
                **await link_branding(self.db, link.id),
                **page_i18n(t.language, switcher=False), title=t.gettext("The payment could not start"),
                sandbox=False, test_mode=not link.livemode, tone="warn", badge=t.gettext("Try again"),
                heading=t.gettext("The payment could not start"),
                explanation=t.gettext("The payment provider did not answer. Nothing was charged; please try again."),
                back_url=page_url, back_label=t.gettext("Back to the payment"),
            )
            return web.Response(text=html, status=502, content_type="text/html", headers=HTML_HEADERS)
        # Remembered so the checkout can be closed at the provider when the link is cancelled or expires.
        await self.links.record_checkout(link.id, attempt, provider.name, checkout.provider_ref,
                                         account=chosen.account)
        log.info("checkout started link=%s attempt=%d checkout=%s", link.id, attempt, checkout.provider_ref)
        if origin_of(checkout.url) not in self.redirect_origins:
            # A checkout host CSP form-action does not list (providers treat the URL as theirs to pick):
            # browsers would silently refuse a 303 there after the form post, so step over with a page.
            log.info("checkout on an unlisted origin link=%s origin=%s", link.id, origin_of(checkout.url))
            t = await self._language_of(request, link.merchant_id)
            html = self.message_template.render(
                **await link_branding(self.db, link.id),
                **page_i18n(t.language, switcher=False), title=t.gettext("Opening the payment page"),
                sandbox=False, test_mode=not link.livemode, tone="warn", badge=t.gettext("One moment"),
                heading=t.gettext("Opening the payment page"),
                explanation=t.gettext("You are being taken to the payment provider's page."),
                back_url=checkout.url, back_label=t.gettext("Continue to payment"), refresh_url=checkout.url)
            return web.Response(text=html, content_type="text/html", headers=HTML_HEADERS)
        raise web.HTTPSeeOther(checkout.url)

    async def _language_of(self, request: web.Request, merchant_id: str) -> Tr:
        async with self.db.read() as conn:
            locale = (await conn.execute(select(MERCHANTS.c.locale).where(MERCHANTS.c.id == merchant_id))).scalar()
        return tr(request_language(request, locale))

    # ---- the link preview card (og:image)

    async def og_png(self, request: web.Request) -> web.Response:
        link_id = request.match_info["link_id"].lower()
        link = await self._read(link_id) if LINK_ID.fullmatch(link_id) else None
        if link is None:
            return self.not_found(request=request)
        status = self.links.status_of(link)
        # The card is what chat apps show beside the link: in the shop's language, for everyone.
        language = language_of_locale(link.merchant_locale)
        key = (link.id, preview_version(link), status.value)
        body = self._og_cache.get(key)
        if body is None:
            from adapters.web.branding import og_card

            logo = None
            if link.logo_version:
                async with self.db.read() as conn:
                    row = (await conn.execute(
                        select(LOGOS.c.png).where(LOGOS.c.merchant_id == link.merchant_id))).first()
                logo = row.png if row else None
            t = tr(language)
            label = {LinkStatus.ACTIVE: t.gettext("Pay by %(day)s", day=link.clock(language).date(link.expires_at)),
                     LinkStatus.PAID: t.gettext("Paid"), LinkStatus.EXPIRED: t.gettext("Expired"),
                     LinkStatus.CANCELLED: t.gettext("Cancelled"), LinkStatus.REFUNDED: t.gettext("Refunded"),
                     LinkStatus.SOLD_OUT: t.gettext("Sold out")}[status]
            # Pillow's drawing is CPU work: off the event loop.
            render = functools.partial(
                og_card, shop=link.merchant_name, amount=link.amount, description=link.description,
                status_label=label, colour=link.brand_color or "#1d4ed8", logo_png=logo)
            body = await asyncio.get_running_loop().run_in_executor(self._drawing, render)
            if len(self._og_cache) >= OG_CACHE_SIZE:
                self._og_cache.pop(next(iter(self._og_cache)))
            self._og_cache[key] = body
        return web.Response(body=body, content_type="image/png", headers={"Cache-Control": "public, max-age=300"})

    # ---- QR codes

    async def qr_svg(self, request: web.Request) -> web.Response:
        url = await self._qr_url(request)
        if url is None:
            return self.not_found(request=request)
        return web.Response(body=await render_qr(url, "svg", QR_SVG_SCALE), content_type="image/svg+xml",
                            headers={"Cache-Control": "private, max-age=86400"})

    async def qr_png(self, request: web.Request) -> web.Response:
        url = await self._qr_url(request)
        if url is None:
            return self.not_found(request=request)
        return web.Response(body=await render_qr(url, "png", QR_PNG_SCALE), content_type="image/png",
                            headers={"Cache-Control": "private, max-age=86400"})

    async def _qr_url(self, request: web.Request) -> str | None:
        link_id = request.match_info["link_id"].lower()
        if not LINK_ID.fullmatch(link_id) or not await self._exists(link_id):
            return None
        return self.links.url(link_id)

