"""The seller's dashboard: server-rendered pages under /dashboard, and the landing page at /.

Works without JavaScript (one small script only adds a copy button). Every page reads the session from
the database (core.signin), every POST checks the session's CSRF token, and owner-only pages refuse
staff. Irreversible actions (cancel, refund, revoke, remove) show a confirmation page first.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import jinja2
from aiohttp import BodyPartReader, web
from sqlalchemy import delete, func, select, update

from adapters.jinja_i18n import jinja_callables
from adapters.payments.accounts import ProviderDirectory
from adapters.web import branding
from adapters.web.api import ApiError, LinksApi, amount_str
from adapters.web.api_keys import ApiMerchant
from adapters.web.dashboard.providers import ProviderPages
from adapters.web.dashboard.session import (
    CSRF_FIELD,
    SIGNIN_COOKIE,
    Forbidden,
    NotSignedIn,
    check_csrf,
    check_signin_csrf,
    clear_cookie,
    current,
    owner_only,
    set_cookie,
    set_signin_cookie,
)
from adapters.web.export import csv_chunks, stream_csv
from adapters.web.link_filters import FilterError, parse_filter
from adapters.web.pages import LINK_ID
from core import chat_errors, i18n, limits
from core.audit import Actor, AuditLog
from core.i18n import N_
from core.link_search import API_ORIGIN, LinkFilter, LinkSearch
from core.links import LinkError, LinkService
from core.members import Identity, MemberError, MemberService
from core.merchants import MerchantError, MerchantService
from core.models import (
    AlertSubscription,
    ChatQuestion,
    DashboardSession,
    DashboardSignin,
    Invite,
    LinkStatus,
    Member,
    MemberRole,
    Merchant,
    MerchantLogo,
    Payment,
    PaymentLink,
    PaymentStatus,
    Refund,
    RefundStatus,
)
from core.money import Money, MoneyError, format_money, is_currency
from core.ports import ProviderResolver
from core.provider_accounts import ProviderAccounts
from core.refunds import RefundRequest, RefundService
from core.signin import Session, SigninError, SigninService
from core.sql import table
from core.timeline import TimelineEvent, timeline

log = logging.getLogger("paylinks.web.dashboard")

LINKS = table(PaymentLink)
PAYMENTS = table(Payment)
MERCHANTS = table(Merchant)
MEMBERS = table(Member)
INVITES = table(Invite)
ALERTS = table(AlertSubscription)
LOGOS = table(MerchantLogo)
SESSIONS = table(DashboardSession)
SIGNINS = table(DashboardSignin)
QUESTIONS = table(ChatQuestion)

PAGE_SIZE = 25
NOTIFY_CHANNELS = ("email", "sms", "whatsapp")  # the API's `notify` (api_models.CreateLink)
FILTER_PARAMS = ("q", "status", "currency", "from", "to", "origin")
NO_STORE = {"Cache-Control": "no-store"}
CHART_DAYS = 30
STATUS_TONES = {"active": "warn", "paid": "ok", "expired": "bad", "cancelled": "bad", "refunded": "bad",
                "sold_out": "ok"}
# Payments that were sales (later refunded in part or in full); not a second payment of a paid link.
_SOLD = (PaymentStatus.SUCCEEDED.value, PaymentStatus.PARTIALLY_REFUNDED.value, PaymentStatus.REFUNDED.value)
# The timeline's event types (core/timeline.py) as the page names them.
# msgids (N_), translated where the page shows them.
EVENT_WORDS = {
    "link.created": N_("Made"), "link.opened": N_("Pay page opened"), "checkout.started": N_("Checkout opened"),
    "payment.succeeded": N_("Paid"), "payment.failed": N_("Payment failed"), "dispute.created": N_("Disputed"),
    "alert.delivered": N_("Alert delivered"), "refund.requested": N_("Refund asked"),
    "refund.succeeded": N_("Refunded"), "refund.failed": N_("Refund failed"), "link.expired": N_("Expired"),
    "link.cancelled": N_("Cancelled"), "message.sent": N_("Sent to the customer"),
    "message.delivered": N_("Delivered to the customer"), "message.failed": N_("Not delivered to the customer"),
}
# The audit log's actions (core/audit.py) as its page names them; the code stays beside the label.
AUDIT_WORDS = {
    "signin": N_("Signed in to the dashboard"), "signin.link": N_("Sign-in link made"),
    "signout.everywhere": N_("Signed out everywhere"), "link.created": N_("Link made"),
    "link.cancelled": N_("Link cancelled"), "link.refunded": N_("Payment refunded"),
    "link.resent": N_("Link sent again"), "links.imported": N_("Links imported"),
    "shop.updated": N_("Shop settings changed"), "key.created": N_("API key created"),
    "key.revoked": N_("API key revoked"), "invite.created": N_("Invite code made"),
    "member.joined": N_("Joined the team"), "member.removed": N_("Removed from the team"),
    "alerts.off": N_("Alerts turned off"), "webhook.created": N_("Webhook endpoint added"),
    "webhook.deleted": N_("Webhook endpoint deleted"), "provider.changed": N_("Payment provider changed"),
}
# The links filter's problems (adapters/web/link_filters.py codes) as the form explains them.
FILTER_PROBLEMS = {
    "invalid_date": N_("Give a date such as 2026-12-01."), "invalid_status": N_("Choose a status from the list."),
    "invalid_currency": N_("Give a three-letter ISO 4217 code, e.g. SGD."),
    "invalid_origin": N_("Choose where the links were made from the list."),
}
REFUND_STATUS_WORDS = {"pending": N_("refund pending"), "succeeded": N_("refund succeeded"),
                       "failed": N_("refund failed")}


def link_status_word(t: i18n.Tr, status: str) -> str:
    """A link's status as its badge reads (the value stays in URLs and filters)."""
    words = {"active": t.pgettext("link status", "active"), "paid": t.pgettext("link status", "paid"),
             "expired": t.pgettext("link status", "expired"), "cancelled": t.pgettext("link status", "cancelled"),
             "refunded": t.pgettext("link status", "refunded"), "sold_out": t.pgettext("link status", "sold out")}
    return words.get(status, status)


def role_word(t: i18n.Tr, role: str) -> str:
    """A member's role as the dashboard names it (the layout's badge, the team page)."""
    return t.pgettext("member role", "owner") if role == MemberRole.OWNER.value else t.pgettext("member role", "staff")


def payment_status_word(t: i18n.Tr, status: str) -> str:
    words = {"succeeded": t.pgettext("payment status", "succeeded"),
             "refund_needed": t.pgettext("payment status", "refund needed"),
             "partially_refunded": t.pgettext("payment status", "partially refunded"),
             "refunded": t.pgettext("payment status", "refunded")}
    return words.get(status, status.replace("_", " "))


def audit_detail_names(t: i18n.Tr) -> dict[str, str]:
    """What the audit log's details name (core/audit.py's callers); a name not here is shown as stored."""
    return {
        "link_id": t.pgettext("audit log detail", "Link"), "refund_id": t.pgettext("audit log detail", "Refund"),
        "amount": t.pgettext("audit log detail", "Amount"), "currency": t.pgettext("audit log detail", "Currency"),
        "status": t.pgettext("audit log detail", "Status"), "code": t.pgettext("audit log detail", "Invite code"),
        "role": t.pgettext("audit log detail", "Role"), "member": t.pgettext("audit log detail", "Member"),
        "fields": t.pgettext("audit log detail", "Changed"), "key_id": t.pgettext("audit log detail", "Key"),
        "created": t.pgettext("audit log detail", "Links made"),
        "sent": t.pgettext("audit log detail", "Sent to customers"),
        "endpoint_id": t.pgettext("audit log detail", "Endpoint"), "url": t.pgettext("audit log detail", "URL"),
        "chat": t.pgettext("audit log detail", "Chat"), "provider": t.pgettext("audit log detail", "Provider"),
        "previous": t.pgettext("audit log detail", "Previous provider"),
        "environment": t.pgettext("audit log detail", "Environment"),
        "country": t.pgettext("audit log detail", "Country"),
        "secrets_changed": t.pgettext("audit log detail", "Secrets changed"),
        "sessions": t.pgettext("audit log detail", "Sessions ended"),
    }


def audit_detail(t: i18n.Tr, action: str, detail: dict[str, Any] | None) -> str:
    """An audit entry's details as the page shows them: each name in the reader's language with its value
    (ids, amounts and URLs as stored; a role, a refund's status and yes/no in words)."""
    said = []
    for key, value in sorted((detail or {}).items()):
        if isinstance(value, bool):
            shown = t.gettext("Yes") if value else t.gettext("No")
        elif isinstance(value, list):
            shown = ", ".join(str(v) for v in value)
        elif key == "role":
            shown = role_word(t, str(value))
        elif key == "status" and action == "link.refunded" and value in REFUND_STATUS_WORDS:
            shown = t.gettext(REFUND_STATUS_WORDS[value])
        else:
            shown = str(value)
        name = audit_detail_names(t).get(key, key)
        said.append(t.pgettext("audit log detail", "%(name)s: %(value)s", name=name, value=shown))
    return "; ".join(said)


def shop_zone(merchant: Merchant) -> tzinfo:
    return i18n.shop_zone(merchant.timezone, merchant.locale)


@dataclass(frozen=True, slots=True)
class Row:
    """Totals of one currency over one period."""

    currency: str
    gross: str
    refunded: str
    net: str
    count: int
    open_amount: str
    open_count: int
    test: bool = False  # test-mode money (the sandbox, a provider's test keys), shown apart from live


class Dashboard:
    def __init__(self, *, links: LinkService, merchants: MerchantService, members: MemberService,
                 signins: SigninService, audit: AuditLog, templates: jinja2.Environment,
                 secure_cookie: bool, resend: Callable[[PaymentLink], Awaitable[bool]] | None = None,
                 can_resend: Callable[[PaymentLink], bool] | None = None, refunds: RefundService | None = None,
                 providers: ProviderResolver | None = None, accounts: ProviderAccounts | None = None,
                 public_base_url: str = "") -> None:
        self.links = links
        self.db = links.db
        self.merchants = merchants
        self.members = members
        self.signins = signins
        self.audit = audit
        self.search = LinkSearch(links.db)
        self.templates = templates
        self.secure_cookie = secure_cookie
        self.resend_link = resend
        self.can_resend = can_resend or (lambda link: False)
        self.refunds = refunds  # None: no Refund button (refunds happen at the provider)
        self.providers = providers  # the shop's own provider account decides test or live API keys
        self.api = LinksApi(links, merchants)  # the same validation as POST /api/v1/links
        # The provider page needs the directory (the check `merchant set-provider` makes) and the accounts.
        self.provider_pages = (ProviderPages(self, providers, accounts, public_base_url=public_base_url)
                               if isinstance(providers, ProviderDirectory) and accounts is not None else None)

    def routes(self) -> list[web.RouteDef]:
        get, post = web.get, web.post
        return [
            get("/", self.landing),
            get("/dashboard/signin/{token}", self.signin_page),
            post("/dashboard/signin/{token}", self.signin),
            post("/dashboard/signout", self.signout),
            get("/dashboard", self.page(self.overview)),
            get("/dashboard/links", self.page(self.links_list)),
            get("/dashboard/links/new", self.page(self.new_link)),
            post("/dashboard/links/new", self.page(self.create_link)),
            get("/dashboard/links/{link_id}", self.page(self.link_detail)),
            get("/dashboard/links/{link_id}/cancel", self.page(self.confirm_cancel)),
            post("/dashboard/links/{link_id}/cancel", self.page(self.cancel)),
            get("/dashboard/links/{link_id}/resend", self.page(self.confirm_resend)),
            post("/dashboard/links/{link_id}/resend", self.page(self.resend)),
            get("/dashboard/links/{link_id}/refund", self.page(self.confirm_refund, owner=True)),
            post("/dashboard/links/{link_id}/refund", self.page(self.refund, owner=True)),
            get("/dashboard/export.csv", self.page(self.export)),
            get("/dashboard/settings", self.page(self.settings_page)),
            post("/dashboard/settings", self.page(self.save_settings, multipart=True)),
            get("/dashboard/audit", self.page(self.audit_page, owner=True)),
            get("/dashboard/keys", self.page(self.keys_page, owner=True)),
            post("/dashboard/keys", self.page(self.create_key, owner=True)),
            get("/dashboard/keys/{key_id}/revoke", self.page(self.confirm_revoke, owner=True)),
            post("/dashboard/keys/{key_id}/revoke", self.page(self.revoke_key, owner=True)),
            get("/dashboard/team", self.page(self.team_page, owner=True)),
            post("/dashboard/team/invite", self.page(self.create_invite, owner=True)),
            get("/dashboard/team/{member_id}/remove", self.page(self.confirm_remove, owner=True)),
            post("/dashboard/team/{member_id}/remove", self.page(self.remove_member, owner=True)),
            get("/dashboard/alerts", self.page(self.alerts_page)),
            post("/dashboard/alerts/{alert_id}/off", self.page(self.alert_off, owner=True)),
            get("/brand/{merchant_id}.css", self.brand_css),
            get("/brand/{merchant_id}/logo.png", self.logo),
            *(self.provider_pages.routes(self.page) if self.provider_pages is not None else []),
        ]

    # ------------------------------------------------------------ plumbing

    def page(self, handler: Callable[..., Awaitable[web.StreamResponse]], *, owner: bool = False,
             multipart: bool = False) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """The session (or the sign-in explanation), the shop, CSRF on POST, owners-only pages."""
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                session = await current(request, self.signins)
            except NotSignedIn:
                return self.render("dashboard/landing.html", request, None, None, status=401,
                                   title=N_("Sign in to your dashboard"), signed_out=True)
            merchant = await self.merchants.get(session.merchant_id)
            if merchant is None:
                raise web.HTTPNotFound()
            try:
                if owner:
                    owner_only(session)
                if request.method == "POST" and not multipart:  # a multipart handler checks it itself
                    form = await request.post()
                    check_csrf(form, session)
                return await handler(request, session, merchant)
            except Forbidden as refused:
                return self.render("dashboard/denied.html", request, session, merchant, status=403,
                                   title=N_("Not allowed"), message=refused.translated(self.tr(request, merchant)))
        return wrapped

    @staticmethod
    def tr(request: web.Request, merchant: Merchant | None) -> i18n.Tr:
        """The page's language: the shop's once signed in, else the browser's (Accept-Language)."""
        return i18n.tr(i18n.language_of_locale(merchant.locale) if merchant is not None else
                       i18n.negotiate(request.headers.get("Accept-Language"), None))

    def refusal(self, request: web.Request, merchant: Merchant, error: LinkError) -> str:
        """A service's refusal (its `message` is the API's English, for developers) in the page's language."""
        with i18n.speaking(self.tr(request, merchant).language):
            return chat_errors.link_error_text(error, page=True)

    def render(self, name: str, request: web.Request, session: Session | None, merchant: Merchant | None, *,
               status: int = 200, title_values: dict[str, object] | None = None, **context: Any) -> web.Response:
        """`title` is a msgid (N_) translated here (its placeholders filled from `title_values`); the rest of
        the context is already text to show."""
        t = self.tr(request, merchant)
        if isinstance(context.get("title"), str):
            context["title"] = t.gettext(context["title"], **(title_values or {}))
        values = {"lang": t.html_lang, **jinja_callables(t.language), **context}
        html = self.templates.get_template(name).render(
            session=session, merchant=merchant, csrf=session.csrf_token if session else "", csrf_field=CSRF_FIELD,
            path=request.path, brand_css=self._brand_url(merchant), **values)
        return web.Response(text=html, status=status, content_type="text/html", headers={
            **NO_STORE, "Content-Security-Policy": self.csp})

    csp = ("default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; form-action 'self'; "
           "base-uri 'none'; frame-ancestors 'none'")

    @staticmethod
    def _brand_url(merchant: Merchant | None) -> str | None:
        if merchant is None or not merchant.brand_color:
            return None
        return f"/brand/{merchant.id}.css?v={merchant.brand_color.lstrip('#')}"

    def actor(self, request: web.Request, session: Session, name: str) -> Actor:
        return Actor(name, "web", session.member_id, request.remote)

    async def acting(self, request: web.Request, session: Session, merchant: Merchant) -> Actor:
        return self.actor(request, session, await self.who(session, merchant))

    async def who(self, session: Session, merchant: Merchant | None = None) -> str:
        """Who acts, as the audit log and refunds keep it: in the shop's language (it is written once)."""
        if merchant is None:
            merchant = await self.merchants.get(session.merchant_id)
        t = i18n.tr(i18n.language_of_locale(merchant.locale) if merchant is not None else None)
        if session.member_id is None:
            return t.gettext("Operator (CLI sign-in link)")
        async with self.db.read() as conn:
            row = (await conn.execute(select(MEMBERS.c.display_name, MEMBERS.c.platform)
                                      .where(MEMBERS.c.id == session.member_id))).first()
        if row is None:
            return t.gettext("Member")
        return t.gettext("%(name)s (%(platform)s)", name=row.display_name or t.gettext("Member"),
                         platform=row.platform)

    def money(self, amount_minor: int, currency: str, merchant: Merchant) -> str:
        return format_money(amount_minor, currency, merchant.locale)

    def when(self, moment: datetime | None, merchant: Merchant) -> str:
        if moment is None:
            return ""
        # The one clock (core.i18n): the shop's zone and its short name, as on receipts and in alerts.
        return i18n.Clock.of(language=i18n.language_of_locale(merchant.locale), shop_locale=merchant.locale,
                             timezone=merchant.timezone).when(moment)

    # ------------------------------------------------------------ landing and sign-in

    async def landing(self, request: web.Request) -> web.Response:
        return self.render("dashboard/landing.html", request, None, None, title="paylinks", signed_out=False)

    async def signin_page(self, request: web.Request) -> web.Response:
        # A GET never spends the token: chat apps fetch links to preview them. The button POSTs, with a
        # token that is also in a cookie of this browser (double submit): another site cannot make a visitor's
        # browser sign in to the attacker's shop with the attacker's own link (login CSRF).
        csrf = request.cookies.get(SIGNIN_COOKIE, "")
        if not 20 <= len(csrf) <= 64:
            csrf = secrets.token_urlsafe(24)
        response = self.render("dashboard/signin.html", request, None, None, title=N_("Sign in"),
                               token=request.match_info["token"][:100], signin_csrf=csrf)
        set_signin_cookie(response, csrf, secure=self.secure_cookie)
        return response

    async def signin(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        form = await request.post()
        try:
            check_signin_csrf(form, request.cookies.get(SIGNIN_COOKIE, ""))
        except Forbidden as refused:  # before the link is looked at: a forged POST never spends it
            return self.render("dashboard/denied.html", request, None, None, status=403, title=N_("Not allowed"),
                               message=refused.translated(self.tr(request, None)))
        try:
            if not 20 <= len(token) <= 100:
                raise SigninError(N_("This sign-in link is not valid. Send /dashboard in your chat for a new one."))
            secret, session = await self.signins.use_link(token, client_address=request.remote)
        except SigninError as error:
            return self.render("dashboard/signin.html", request, None, None, status=400,
                               title=N_("Sign-in refused"), token="",
                               error=self.tr(request, None).gettext(error.message))
        await self.audit.record(session.merchant_id, "signin", self.actor(request, session, await self.who(session)))
        response = web.HTTPSeeOther("/dashboard")
        set_cookie(response, secret, secure=self.secure_cookie)
        return response

    async def signout(self, request: web.Request) -> web.StreamResponse:
        try:
            session = await current(request, self.signins)
        except NotSignedIn:
            raise web.HTTPSeeOther("/") from None
        form = await request.post()
        try:
            check_csrf(form, session)
        except Forbidden as refused:
            return self.render("dashboard/denied.html", request, None, None, status=403, title=N_("Not allowed"),
                               message=refused.translated(self.tr(request, None)))
        everywhere = form.get("everywhere") == "1"
        if everywhere:
            ended = await self.signins.end_everywhere(session)
            await self.audit.record(session.merchant_id, "signout.everywhere",
                                    self.actor(request, session, await self.who(session)), sessions=ended)
        else:
            await self.signins.end(request.cookies.get("paylinks_session", ""))
        response = web.HTTPSeeOther("/")
        clear_cookie(response)
        return response

    # ------------------------------------------------------------ overview

    async def overview(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        await self.links.expire_due(merchant_id=merchant.id)
        zone = shop_zone(merchant)
        now = self.links.clock()
        today = datetime.combine(now.astimezone(zone).date(), datetime.min.time(), zone)
        t = self.tr(request, merchant)
        periods = [(t.gettext("Today"), today), (t.gettext("Last 7 days"), today - timedelta(days=6)),
                   (t.gettext("Last 30 days"), today - timedelta(days=CHART_DAYS - 1))]
        tables = [(label, await self._totals(merchant, start.astimezone(UTC), now)) for label, start in periods]
        chart = await self._chart(merchant, today, zone, t)
        return self.render("dashboard/overview.html", request, session, merchant, title=N_("Overview"),
                           tables=tables, chart=chart)

    async def _totals(self, merchant: Merchant, since: datetime, until: datetime) -> list[Row]:
        """Per currency, live money first; test-mode money on rows of its own, never added to live totals."""
        async with self.db.read() as conn:
            paid = (await conn.execute(
                select(PAYMENTS.c.livemode, PAYMENTS.c.currency, func.count(),
                       func.coalesce(func.sum(PAYMENTS.c.amount_minor), 0),
                       func.coalesce(func.sum(PAYMENTS.c.amount_refunded_minor), 0))
                .join_from(PAYMENTS, LINKS, LINKS.c.id == PAYMENTS.c.link_id)
                .where(LINKS.c.merchant_id == merchant.id, PAYMENTS.c.status.in_(_SOLD),
                       PAYMENTS.c.created_at >= since, PAYMENTS.c.created_at <= until)
                .group_by(PAYMENTS.c.livemode, PAYMENTS.c.currency))).all()
            opened = (await conn.execute(
                select(LINKS.c.livemode, LINKS.c.currency, func.count(),
                       func.coalesce(func.sum(LINKS.c.amount_minor), 0))
                .where(LINKS.c.merchant_id == merchant.id, LINKS.c.status == LinkStatus.ACTIVE.value,
                       LINKS.c.created_at >= since)
                .group_by(LINKS.c.livemode, LINKS.c.currency))).all()
        gross = {(bool(r[0]), r[1]): (int(r[2]), int(r[3]), int(r[4])) for r in paid}
        open_ = {(bool(r[0]), r[1]): (int(r[2]), int(r[3])) for r in opened}
        rows = []
        for live, currency in sorted(set(gross) | set(open_), key=lambda k: (not k[0], k[1])):
            count, total, refunded = gross.get((live, currency), (0, 0, 0))
            open_count, open_total = open_.get((live, currency), (0, 0))
            rows.append(Row(currency, self.money(total, currency, merchant), self.money(refunded, currency, merchant),
                            self.money(total - refunded, currency, merchant), count,
                            self.money(open_total, currency, merchant), open_count, test=not live))
        return rows

    async def _chart(self, merchant: Merchant, today: datetime, zone: tzinfo, t: i18n.Tr) -> dict[str, Any]:
        """Paid per day for the last 30 days in the shop's default currency, as bars and as a table."""
        start = today - timedelta(days=CHART_DAYS - 1)
        currency = merchant.default_currency
        async with self.db.read() as conn:
            rows = (await conn.execute(
                select(PAYMENTS.c.created_at, PAYMENTS.c.amount_minor, PAYMENTS.c.livemode)
                .join_from(PAYMENTS, LINKS, LINKS.c.id == PAYMENTS.c.link_id)
                .where(LINKS.c.merchant_id == merchant.id, PAYMENTS.c.status.in_(_SOLD),
                       PAYMENTS.c.currency == currency, PAYMENTS.c.created_at >= start.astimezone(UTC)))).all()
        # Live money, or test-mode money while the shop has none: never the two added together.
        live = any(row.livemode for row in rows)
        per_day = [0] * CHART_DAYS
        for created_at, amount, livemode in rows:
            if bool(livemode) is not live:
                continue
            index = (created_at.astimezone(zone).date() - start.date()).days
            if 0 <= index < CHART_DAYS:
                per_day[index] += int(amount)
        top = max(per_day) or 1
        width, height, bar = 600, 160, 600 / CHART_DAYS
        days = []
        for n, amount in enumerate(per_day):
            day = (start + timedelta(days=n)).date()
            h = round(amount / top * (height - 10)) if amount else 0
            days.append({"label": day.isoformat(), "amount": self.money(amount, currency, merchant),
                         "x": round(n * bar + 2, 1), "y": height - h, "h": h, "w": round(bar - 4, 1)})
        total = self.money(sum(per_day), currency, merchant)
        best = max(range(CHART_DAYS), key=lambda i: per_day[i])
        span = {"currency": currency, "start": days[0]["label"], "end": days[-1]["label"], "total": total}
        if per_day[best] and live:
            summary = t.gettext("Paid in %(currency)s per day from %(start)s to %(end)s: %(total)s in all; the best "
                                "day was %(best_day)s with %(best_amount)s.", **span, best_day=days[best]["label"],
                                best_amount=days[best]["amount"])
        elif per_day[best]:
            summary = t.gettext("Test mode: paid in %(currency)s per day from %(start)s to %(end)s: %(total)s in "
                                "all; the best day was %(best_day)s with %(best_amount)s.", **span,
                                best_day=days[best]["label"], best_amount=days[best]["amount"])
        elif live:
            summary = t.gettext("Paid in %(currency)s per day from %(start)s to %(end)s: %(total)s in all; "
                                "nothing was paid.", **span)
        else:
            summary = t.gettext("Test mode: paid in %(currency)s per day from %(start)s to %(end)s: %(total)s in "
                                "all; nothing was paid.", **span)
        return {"test": not live, "days": days, "width": width, "height": height, "currency": currency,
                "summary": summary}

    # ------------------------------------------------------------ links

    def _filter(self, request: web.Request, merchant: Merchant) -> tuple[LinkFilter, dict[str, str]]:
        zone = shop_zone(merchant)
        try:
            return parse_filter(request.query, zone if isinstance(zone, ZoneInfo) else ZoneInfo("UTC")), {}
        except FilterError as error:
            # The API's English (for developers) becomes the seller's own words beside the filter.
            problem = FILTER_PROBLEMS.get(error.code)
            shown = self.tr(request, merchant).gettext(problem) if problem else error.message
            return LinkFilter(), {error.field: shown}

    async def links_list(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        await self.links.expire_due(merchant_id=merchant.id)
        where, errors = self._filter(request, merchant)
        cursor = request.query.get("cursor") or None
        if cursor is not None and not LINK_ID.fullmatch(cursor):
            cursor = None
        found, next_cursor = await self.search.page(merchant.id, where, limit=PAGE_SIZE, cursor=cursor)
        kept = {k: v for k, v in request.query.items() if k in FILTER_PARAMS and v}
        rows = [self._link_row(link, merchant) for link in found]
        t = self.tr(request, merchant)
        return self.render(
            "dashboard/links.html", request, session, merchant, title=N_("Links"), rows=rows, errors=errors,
            query=kept, next_cursor=next_cursor, next_query={**kept, "cursor": next_cursor or ""},
            first_page=cursor is None,
            currencies=await self.search.currencies(merchant.id), origins=await self.search.origins(merchant.id),
            statuses=[(s.value, link_status_word(t, s.value)) for s in LinkStatus],
        )

    def _link_row(self, link: PaymentLink, merchant: Merchant) -> dict[str, Any]:
        status = self.links.status_of(link).value
        t = i18n.tr(i18n.language_of_locale(merchant.locale))
        return {"id": link.id, "amount": self.money(link.amount_minor, link.currency, merchant),
                "description": link.description, "reference": link.reference, "status": status,
                "status_text": link_status_word(t, status),
                "tone": STATUS_TONES[status], "created": self.when(link.created_at, merchant),
                "customer": link.customer_name or link.customer_email or link.customer_phone or "",
                "origin": link.origin_platform or API_ORIGIN, "test": not link.livemode}

    async def _own_link(self, request: web.Request, merchant: Merchant) -> PaymentLink:
        link_id = request.match_info["link_id"].lower()
        link = await self.links.get(link_id, merchant.id) if LINK_ID.fullmatch(link_id) else None
        if link is None:
            raise web.HTTPNotFound()
        return link

    async def link_detail(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        link = await self._own_link(request, merchant)
        payments = await self.links.payments_for(link.id)
        promos = await self.links.reservations.promos_of([p.id for p in payments]) if link.reusable else {}
        status = self.links.status_of(link)
        events = await timeline(self.db, link, status)
        refunds = await self.refunds.refunds_for([link.id]) if self.refunds is not None else {}
        refundable = ({c.payment.id for c in await self.refunds.refundable(link.id)}
                      if self.refunds is not None and session.is_owner else set())
        t = self.tr(request, merchant)
        return self.render(
            "dashboard/link.html", request, session, merchant, title=N_("Link %(id)s"),
            title_values={"id": link.id[:8]},
            link=link, row=self._link_row(link, merchant), url=self.links.url(link.id),
            expires=self.when(link.expires_at, merchant),
            timeline=[(t.gettext(EVENT_WORDS[e.type]) if e.type in EVENT_WORDS else e.type, self.when(e.at, merchant),
                       self._event_note(e, merchant, t, link.origin_platform)) for e in events],
            payments=[{"id": p.id, "amount": self.money(p.amount_minor, p.currency, merchant),
                       "status": payment_status_word(t, str(p.status)), "at": self.when(p.created_at, merchant),
                       "provider": p.provider, "ref": p.provider_ref, "payer": p.payer_name or "",
                       "refunded": self.money(p.amount_refunded_minor, p.currency, merchant)
                       if p.amount_refunded_minor else "",
                       "refunds": [self._refund_row(r, merchant, t) for r in refunds.get(p.id, [])],
                       "promo": promos[p.id].code if p.id in promos else "",
                       "promo_off": self.money(promos[p.id].discount_minor, p.currency, merchant)
                       if p.id in promos else "",
                       "can_refund": p.id in refundable} for p in payments],
            can_cancel=status is LinkStatus.ACTIVE,
            can_resend=status is LinkStatus.ACTIVE and self.resend_link is not None and self.can_resend(link),
            notice=request.query.get("done", ""),
        )

    def _event_note(self, event: TimelineEvent, merchant: Merchant, t: i18n.Tr, origin: str | None) -> str:
        """The timeline's small print: each part a phrase of its own, joined by " · "."""
        details = event.details
        parts = []
        if "amount_minor" in details and event.type != "link.created":
            parts.append(self.money(int(details["amount_minor"]), str(details["currency"]), merchant))
        if event.type == "link.created":
            parts.append(t.gettext("from %(origin)s", origin=origin) if origin
                         else t.gettext("from the API"))
        if details.get("views", 0) > 1:
            parts.append(t.ngettext("%(count)s view", "%(count)s views", int(details["views"])))
        if event.type == "checkout.started":
            parts.append(t.gettext("attempt %(attempt)s with %(provider)s", attempt=details.get("attempt"),
                                   provider=details.get("provider")))
        if event.type in ("alert.delivered", "message.sent", "message.delivered", "message.failed"):
            parts.append(str(details.get("platform", "")))
        if details.get("error_code"):
            parts.append(t.gettext("error %(code)s", code=details["error_code"]))
        if details.get("payer_name"):
            parts.append(t.gettext("by %(name)s", name=details["payer_name"]))
        if details.get("status") == PaymentStatus.REFUND_NEEDED.value:
            parts.append(t.gettext("paid twice: to refund"))
        if details.get("reason"):
            parts.append(str(details["reason"])[:200])
        return " · ".join(p for p in parts if p)

    def _refund_row(self, refund: Refund, merchant: Merchant, t: i18n.Tr) -> dict[str, str]:
        status = str(refund.status)
        return {"id": refund.id, "amount": self.money(refund.amount_minor, refund.currency, merchant),
                "status": status, "at": self.when(refund.created_at, merchant),
                "status_text": t.gettext(REFUND_STATUS_WORDS[status]) if status in REFUND_STATUS_WORDS
                else t.gettext("refund %(status)s", status=status),
                "reason": refund.failure_reason or refund.reason or "",
                "tone": {RefundStatus.SUCCEEDED.value: "ok", RefundStatus.FAILED.value: "bad"}.get(
                    str(refund.status), "warn")}

    # ------------------------------------------------------------ refunds (owner only)

    async def _refund_choice(self, request: web.Request, merchant: Merchant) -> tuple[PaymentLink, Any]:
        """The link and the payment to refund (?payment= or the form's payment_id, else the only one)."""
        link = await self._own_link(request, merchant)
        if self.refunds is None:
            raise Forbidden(N_("Refunds are not set up here; refund from your payment provider's dashboard."))
        choices = await self.refunds.refundable(link.id)
        wanted = request.query.get("payment", "")
        if request.method == "POST":
            form = await request.post()
            wanted = str(form.get("payment_id", "")) or wanted
        chosen = [c for c in choices if c.payment.id == wanted] if wanted else choices
        if not chosen:
            raise Forbidden(N_("There is nothing left to refund on this link."))
        if len(chosen) > 1:
            raise Forbidden(N_("This link has more than one payment to refund: use the Refund button of one "
                               "payment."))
        return link, chosen[0]

    def _refund_page(self, request: web.Request, session: Session, merchant: Merchant, link: PaymentLink,
                     choice: Any, *, values: dict[str, str], errors: dict[str, str], status: int = 200) -> web.Response:
        payment = choice.payment
        most = self.money(choice.refundable_minor, payment.currency, merchant)
        payer = payment.payer_name or ""  # none: the page says "the customer"
        return self.render(
            "dashboard/refund.html", request, session, merchant, status=status, title=N_("Refund this payment?"),
            link=link, payment_id=payment.id, most=most, payer=payer,
            most_plain=Money(choice.refundable_minor, payment.currency).amount_str(),
            paid=self.money(payment.amount_minor, payment.currency, merchant), currency=payment.currency,
            values=values, errors=errors,
            # One refund however often the form is sent (a double click, a reload after a timeout).
            attempt=values.get("attempt") or secrets.token_urlsafe(16))

    async def confirm_refund(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        link, choice = await self._refund_choice(request, merchant)
        return self._refund_page(request, session, merchant, link, choice, values={}, errors={})

    async def refund(self, request: web.Request, session: Session, merchant: Merchant) -> web.StreamResponse:
        link, choice = await self._refund_choice(request, merchant)
        assert self.refunds is not None
        form = await request.post()
        values = {k: str(v).strip()[:200] for k, v in form.items() if isinstance(v, str) and k != CSRF_FIELD}
        payment = choice.payment
        amount_minor = choice.refundable_minor
        if values.get("amount"):
            try:
                amount_minor = Money.parse(values["amount"], payment.currency).amount_minor
            except MoneyError as error:
                example = Money(choice.refundable_minor, payment.currency).amount_str()
                with i18n.speaking(self.tr(request, merchant).language):
                    message = chat_errors.money_error_text(error, example)
                return self._refund_page(request, session, merchant, link, choice, values=values, status=422,
                                         errors={"amount": message})
        attempt = values.get("attempt", "")
        if not 10 <= len(attempt) <= 64:
            attempt = secrets.token_urlsafe(16)
        who = await self.who(session, merchant)
        try:
            refund, created = await self.refunds.request(RefundRequest(
                link_id=link.id, merchant_id=merchant.id, amount_minor=amount_minor, payment_id=payment.id,
                reason=values.get("reason") or None, requested_by=f"dashboard:{session.member_id or 'operator'}",
                requested_by_name=who, idempotency_key=f"dashboard:{attempt}", request_hash=None))
        except LinkError as error:
            field = "amount" if error.field == "amount" else "form"
            shown = (self.tr(request, merchant).gettext("You can refund at most %(most)s.", most=self.money(
                choice.refundable_minor, payment.currency, merchant)) if error.code == "amount_too_large"
                else self.refusal(request, merchant, error))
            return self._refund_page(request, session, merchant, link, choice, values=values, status=422,
                                     errors={field: shown})
        if created:
            await self.audit.record(merchant.id, "link.refunded", self.actor(request, session, who), link_id=link.id,
                                    refund_id=refund.id, amount=amount_str(refund.amount_minor, refund.currency),
                                    currency=refund.currency, status=str(refund.status))
        done = {RefundStatus.SUCCEEDED.value: "refunded", RefundStatus.FAILED.value: "refund_failed"}.get(
            str(refund.status), "refund_asked")
        raise web.HTTPSeeOther(f"/dashboard/links/{link.id}?done={done}")

    async def confirm_cancel(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        link = await self._own_link(request, merchant)
        t = self.tr(request, merchant)
        return self.render("dashboard/confirm.html", request, session, merchant, title=N_("Cancel this link?"),
                           heading=t.gettext("Cancel this link?"),
                           explanation=t.gettext("%(amount)s — %(description)s. The customer will no longer be able "
                                                 "to pay it. This cannot be undone.",
                                                 amount=self.money(link.amount_minor, link.currency, merchant),
                                                 description=link.description),
                           action=f"/dashboard/links/{link.id}/cancel", confirm=t.gettext("Yes, cancel the link"),
                           back=f"/dashboard/links/{link.id}")

    async def cancel(self, request: web.Request, session: Session, merchant: Merchant) -> web.StreamResponse:
        link = await self._own_link(request, merchant)
        try:
            await self.links.cancel(link.id, merchant.id)
        except LinkError as error:
            return self.render("dashboard/denied.html", request, session, merchant, status=409,
                               title=N_("Not cancelled"), message=self.refusal(request, merchant, error))
        await self.audit.record(merchant.id, "link.cancelled", await self.acting(request, session, merchant),
                                link_id=link.id, amount=amount_str(link.amount_minor, link.currency),
                                currency=link.currency)
        raise web.HTTPSeeOther(f"/dashboard/links/{link.id}?done=cancelled")

    def _resendable(self, link: PaymentLink) -> None:
        if self.resend_link is None or self.links.status_of(link) is not LinkStatus.ACTIVE or not self.can_resend(link):
            raise Forbidden(N_("This link cannot be sent again: it is not open, or the customer has no chat "
                               "address."))

    async def confirm_resend(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        link = await self._own_link(request, merchant)
        self._resendable(link)
        t = self.tr(request, merchant)
        amount = self.money(link.amount_minor, link.currency, merchant)
        if link.customer_name:
            explanation = t.gettext("%(amount)s — %(description)s. %(name)s gets the payment link again at "
                                    "%(phone)s.", amount=amount, description=link.description,
                                    name=link.customer_name, phone=link.customer_phone)
        else:
            explanation = t.gettext("%(amount)s — %(description)s. The customer gets the payment link again at "
                                    "%(phone)s.", amount=amount, description=link.description,
                                    phone=link.customer_phone)
        return self.render("dashboard/confirm.html", request, session, merchant, title=N_("Send the link again?"),
                           heading=t.gettext("Send the link again?"), explanation=explanation,
                           action=f"/dashboard/links/{link.id}/resend", confirm=t.gettext("Yes, send it again"),
                           back=f"/dashboard/links/{link.id}", danger=False)

    async def resend(self, request: web.Request, session: Session, merchant: Merchant) -> web.StreamResponse:
        link = await self._own_link(request, merchant)
        self._resendable(link)
        assert self.resend_link is not None  # _resendable refused otherwise
        await self.resend_link(link)
        await self.audit.record(merchant.id, "link.resent", await self.acting(request, session, merchant),
                                link_id=link.id)
        raise web.HTTPSeeOther(f"/dashboard/links/{link.id}?done=resent")

    async def new_link(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        return self.render("dashboard/new_link.html", request, session, merchant, title=N_("New link"),
                           values={"currency": merchant.default_currency, "notify": ",".join(NOTIFY_CHANNELS)},
                           errors={}, channels=NOTIFY_CHANNELS)

    async def create_link(self, request: web.Request, session: Session, merchant: Merchant) -> web.StreamResponse:
        form = await request.post()
        values = {k: str(v).strip() for k, v in form.items() if isinstance(v, str) and k != CSRF_FIELD}
        payload: dict[str, Any] = {"description": values.get("description", "")}
        if values.get("amount"):
            payload["amount"] = values["amount"]
        if values.get("currency"):
            payload["currency"] = values["currency"].upper()
        for key in ("reference", "expires_in"):
            if values.get(key):
                payload[key] = values[key]
        errors: dict[str, str] = {}
        t = self.tr(request, merchant)
        if values.get("expires_at"):
            try:
                local = datetime.fromisoformat(values["expires_at"])
                zone = shop_zone(merchant)
                payload["expires_at"] = (local if local.tzinfo else local.replace(tzinfo=zone)).isoformat()
            except ValueError:
                errors["expires_at"] = t.gettext("Give a date and time, e.g. 2026-12-31 18:00.")
        customer = {k: values[f"customer_{k}"] for k in ("name", "email", "phone") if values.get(f"customer_{k}")}
        if customer:
            payload["customer"] = customer
        metadata: dict[str, str] = {}
        for number, line in enumerate(values.get("metadata", "").splitlines(), start=1):
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                errors["metadata"] = t.gettext("Line %(number)s: write each entry as key=value, e.g. order_id=1042.",
                                               number=number)
                break
            metadata[key.strip()] = value.strip()
        if metadata:
            payload["metadata"] = metadata
        # The API's notify: the channels ticked (none ticked: the customer is sent nothing).
        notify = [str(v) for v in form.getall("notify", []) if v in NOTIFY_CHANNELS]
        if values.get("notify_shown"):
            payload["notify"] = sorted(set(notify))
        values["notify"] = ",".join(notify)
        if "amount" not in payload:
            errors["amount"] = t.gettext("Give the amount, e.g. 25.00.")
        else:
            try:  # read here (as the API does) so the form can say what is wrong in the seller's words
                Money.parse(payload["amount"], payload.get("currency") or merchant.default_currency)
            except MoneyError as error:
                with i18n.speaking(t.language):
                    errors[_form_field(error.field)] = chat_errors.money_error_text(
                        error, chat_errors.example_amount(payload.get("currency") or merchant.default_currency))
        if not errors:
            try:
                draft, _amount_field, _expiry_field = self.api._draft(
                    ApiMerchant(merchant.id, merchant.default_currency), payload)
                link, _created = await self.links.create(draft)
            except (ApiError, LinkError) as error:  # the API's checks of the body, the service's own
                currency = payload.get("currency") or merchant.default_currency
                errors[_form_field(error.field)] = (
                    t.gettext("A link may ask for at most %(most)s.", most=self.money(
                        limits.max_amount_minor(self.links.max_amount, currency), currency, merchant))
                    if error.code == "amount_too_large" and is_currency(currency)
                    else self.refusal(request, merchant, LinkError(error.code, error.message, field=error.field)))
            else:
                await self.audit.record(merchant.id, "link.created",
                                        await self.acting(request, session, merchant), link_id=link.id)
                raise web.HTTPSeeOther(f"/dashboard/links/{link.id}?done=created")
        return self.render("dashboard/new_link.html", request, session, merchant, status=422, title=N_("New link"),
                           values=values, errors=errors, channels=NOTIFY_CHANNELS)

    async def export(self, request: web.Request, session: Session, merchant: Merchant) -> web.StreamResponse:
        where, errors = self._filter(request, merchant)
        if errors:
            raise web.HTTPSeeOther("/dashboard/links")
        chunks = csv_chunks(self.search, merchant.id, where, self.links.status_of)
        return await stream_csv(request, chunks, f"paylinks-{merchant.id}.csv")

    # ------------------------------------------------------------ settings (branding)

    async def settings_page(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        return self._settings(request, session, merchant, {}, {}, notice=request.query.get("done", ""))

    def _settings(self, request: web.Request, session: Session, merchant: Merchant, values: dict[str, str],
                  errors: dict[str, str], *, status: int = 200, suggestion: str | None = None,
                  notice: str = "") -> web.Response:
        shown = {
            "name": merchant.name, "brand_color": merchant.brand_color or "", "support_email":
            merchant.support_email or "", "support_phone": merchant.support_phone or "", "locale": merchant.locale,
            "timezone": merchant.timezone or "", "default_currency": merchant.default_currency, **values,
        }
        return self.render("dashboard/settings.html", request, session, merchant, status=status,
                           title=N_("Shop settings"),
                           values=shown, errors=errors, suggestion=suggestion, notice=notice,
                           zone_now=str(shop_zone(merchant)))

    async def save_settings(self, request: web.Request, session: Session, merchant: Merchant) -> web.StreamResponse:
        values, logo_bytes, too_big = await self._settings_form(request)
        check_csrf(values, session)
        owner_only(session)
        values.pop(CSRF_FIELD, None)
        errors: dict[str, str] = {}
        changes: dict[str, Any] = {}
        suggestion = None
        t = self.tr(request, merchant)
        name = values.get("name", "")
        if not name:
            errors["name"] = t.gettext("Give the shop a name, e.g. Cake Corner.")
        else:
            changes["name"] = name[:200]
        colour = values.get("brand_color", "")
        if colour:
            try:
                changes["brand_color"] = branding.check_brand_colour(colour)
            except branding.BrandingError as error:
                errors["brand_color"], suggestion = error.translated(t), error.suggestion
        else:
            changes["brand_color"] = None
        changes["support_email"] = values.get("support_email") or None
        if changes["support_email"]:
            try:
                changes["support_email"] = limits.normalise_email(changes["support_email"])
            except ValueError as exc:
                errors["support_email"] = self.refusal(request, merchant,
                                                       LinkError("invalid_email", str(exc), field="support_email"))
        phone = values.get("support_phone") or None
        if phone:
            import phonenumbers
            try:
                number = phonenumbers.parse(phone, None)
                ok = phonenumbers.is_possible_number(number)
            except phonenumbers.NumberParseException:
                ok = False
            if not ok:
                errors["support_phone"] = t.gettext("Give an international number, e.g. +65 9123 4567.")
            else:
                phone = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        changes["support_phone"] = phone
        zone = values.get("timezone") or None
        if zone and zone not in available_timezones():
            errors["timezone"] = t.gettext("Give an IANA time zone, e.g. Asia/Singapore.")
        changes["timezone"] = zone
        currency = values.get("default_currency", "").upper()
        if not is_currency(currency):
            errors["default_currency"] = t.gettext("Give a three-letter ISO 4217 code, e.g. SGD.")
        locale = values.get("locale", "")
        logo_png = None
        if too_big:
            errors["logo"] = t.gettext("The logo is larger than 1 MB; upload a smaller PNG or JPEG.")
        elif logo_bytes:
            try:
                logo_png = branding.reencode_logo(logo_bytes)
            except branding.BrandingError as error:
                errors["logo"] = error.translated(t)
        if errors:
            return self._settings(request, session, merchant, values, errors, status=422, suggestion=suggestion)
        try:
            await self.merchants.update(merchant.id, currency=currency, locale=locale or merchant.locale)
        except MerchantError as error:
            field = "default_currency" if error.field == "currency" else error.field
            with i18n.speaking(t.language):
                shown = chat_errors.merchant_error_text(error, page=True)
            return self._settings(request, session, merchant, values, {field: shown}, status=422)
        now = self.links.clock()
        async with self.db.write() as conn:
            if logo_png is not None:
                changes["logo_version"] = hashlib.sha256(logo_png).hexdigest()[:12]
                await conn.execute(delete(LOGOS).where(LOGOS.c.merchant_id == merchant.id))
                await conn.execute(LOGOS.insert().values(merchant_id=merchant.id, png=logo_png, updated_at=now))
            if values.get("remove_logo") == "1" and logo_png is None:
                changes["logo_version"] = None
                await conn.execute(delete(LOGOS).where(LOGOS.c.merchant_id == merchant.id))
            await conn.execute(update(MERCHANTS).where(MERCHANTS.c.id == merchant.id).values(**changes))
            await self.audit.record(merchant.id, "shop.updated", await self.acting(request, session, merchant),
                                    conn=conn, fields=sorted(k for k in changes if k != "logo_version")
                                    + (["logo"] if "logo_version" in changes else []))
        raise web.HTTPSeeOther("/dashboard/settings?done=saved")

    @staticmethod
    async def _settings_form(request: web.Request) -> tuple[dict[str, str], bytes, bool]:
        """The settings form read as a stream (the logo may be larger than the app's body limit):
        (text fields, the logo's bytes, whether the logo was over LOGO_MAX_BYTES)."""
        values: dict[str, str] = {}
        logo = b""
        too_big = False
        if not request.content_type.startswith("multipart/"):
            form = await request.post()
            return {k: str(v).strip() for k, v in form.items() if isinstance(v, str)}, b"", False
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            if part.name == "logo":
                chunks, size = [], 0
                while chunk := await part.read_chunk(64 * 1024):
                    size += len(chunk)
                    if size > branding.LOGO_MAX_BYTES:
                        too_big = True
                    elif not too_big:
                        chunks.append(chunk)
                logo = b"" if too_big else b"".join(chunks)
            elif len(values) < 30:
                values[part.name] = (await part.read(decode=True))[:2000].decode("utf-8", "replace").strip()
        return values, logo, too_big

    async def brand_css(self, request: web.Request) -> web.Response:
        merchant = await self.merchants.get(request.match_info["merchant_id"][:40])
        if merchant is None or not merchant.brand_color:
            raise web.HTTPNotFound()
        colour = merchant.brand_color
        body = f":root {{ --accent: {colour}; --accent-hover: {branding.hover_colour(colour)}; }}\n"
        return web.Response(text=body, content_type="text/css", headers={"Cache-Control": "public, max-age=300"})

    async def logo(self, request: web.Request) -> web.Response:
        async with self.db.read() as conn:
            row = (await conn.execute(select(LOGOS.c.png).where(
                LOGOS.c.merchant_id == request.match_info["merchant_id"][:40]))).first()
        if row is None:
            raise web.HTTPNotFound()
        return web.Response(body=row.png, content_type="image/png", headers={"Cache-Control": "public, max-age=300"})

    # ------------------------------------------------------------ audit, keys, team, alerts

    async def audit_page(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        before = request.query.get("before", "")
        events = await self.audit.recent(merchant.id, limit=50,
                                         before_id=int(before) if before.isascii() and before.isdigit() else None)
        t = self.tr(request, merchant)
        return self.render("dashboard/audit.html", request, session, merchant, title=N_("Audit log"),
                           events=[{"at": self.when(e.at, merchant), "action": e.action,
                                    "label": t.gettext(AUDIT_WORDS[e.action]) if e.action in AUDIT_WORDS else "",
                                    "actor": e.actor,
                                    "platform": e.platform or "", "address": e.address or "",
                                    "detail": audit_detail(t, e.action, e.detail)}
                                   for e in events],
                           older=events[-1].id if len(events) == 50 else None)

    async def keys_page(self, request: web.Request, session: Session, merchant: Merchant,
                        secret: str | None = None) -> web.Response:
        keys = await self.merchants.list_api_keys(merchant.id)
        t = self.tr(request, merchant)
        return self.render("dashboard/keys.html", request, session, merchant, title=N_("API keys"), secret=secret,
                           keys=[{"id": k.id, "shown": f"{k.prefix}…{k.hint}",
                                  "created": self.when(k.created_at, merchant),
                                  "used": self.when(k.last_used_at, merchant) or t.gettext("never"),
                                  "revoked": self.when(k.revoked_at, merchant)} for k in keys])

    async def create_key(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        test = not self.links.livemode
        if self.providers is not None:  # the shop's own provider account, else the deployment's
            test = (await self.providers.for_merchant(merchant.id)).provider.test_mode
        key, secret = await self.merchants.create_api_key(merchant.id, test=test)
        await self.audit.record(merchant.id, "key.created", await self.acting(request, session, merchant),
                                key_id=key.id)
        return await self.keys_page(request, session, merchant, secret=secret)

    async def _own_key(self, request: web.Request, merchant: Merchant) -> Any:
        key_id = request.match_info["key_id"]
        for key in await self.merchants.list_api_keys(merchant.id):
            if key.id == key_id:
                return key
        raise web.HTTPNotFound()

    async def confirm_revoke(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        key = await self._own_key(request, merchant)
        t = self.tr(request, merchant)
        return self.render("dashboard/confirm.html", request, session, merchant, title=N_("Revoke this key?"),
                           heading=t.gettext("Revoke this key?"),
                           explanation=t.gettext("%(key)s stops working on the next request, in every process. "
                                                 "Programs using it will be refused. This cannot be undone.",
                                                 key=f"{key.prefix}…{key.hint}"),
                           action=f"/dashboard/keys/{key.id}/revoke", confirm=t.gettext("Yes, revoke the key"),
                           back="/dashboard/keys")

    async def revoke_key(self, request: web.Request, session: Session, merchant: Merchant) -> web.StreamResponse:
        key = await self._own_key(request, merchant)
        _key, revoked = await self.merchants.revoke_api_key(key.id)
        if revoked:
            await self.audit.record(merchant.id, "key.revoked", await self.acting(request, session, merchant),
                                    key_id=key.id)
        raise web.HTTPSeeOther("/dashboard/keys")

    async def team_page(self, request: web.Request, session: Session, merchant: Merchant,
                        error: str = "") -> web.Response:
        members = [m for m in await self.members.members_of(merchant.id)
                   if not m.platform_user_id.startswith("workspace:")]
        now = self.links.clock()
        async with self.db.read() as conn:
            invites = (await conn.execute(select(INVITES).where(
                INVITES.c.merchant_id == merchant.id, INVITES.c.used_at.is_(None), INVITES.c.expires_at > now)
                .order_by(INVITES.c.created_at))).all()
        return self.render("dashboard/team.html", request, session, merchant, title=N_("Team"), error=error,
                           members=[{"id": m.id, "name": m.display_name or m.platform_user_id, "platform": m.platform,
                                     "role": m.role, "role_text": role_word(self.tr(request, merchant), m.role),
                                     "since": self.when(m.created_at, merchant),
                                     "me": m.id == session.member_id} for m in members],
                           invites=[{"code": i.code, "expires": self.when(i.expires_at, merchant)} for i in invites])

    async def create_invite(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        member = Member.model_construct(id=session.member_id, merchant_id=merchant.id, role=MemberRole.OWNER)
        try:
            invite = await self.members.create_invite(Identity(merchant, member))
        except MemberError as error:
            return await self.team_page(request, session, merchant,
                                        error=error.translated(self.tr(request, merchant)).replace("**", ""))
        await self.audit.record(merchant.id, "invite.created", await self.acting(request, session, merchant),
                                code=invite.code)
        raise web.HTTPSeeOther("/dashboard/team")

    async def _own_member(self, request: web.Request, merchant: Merchant) -> Member:
        text = request.match_info["member_id"]
        if text.isascii() and text.isdigit():
            for member in await self.members.members_of(merchant.id):
                if member.id == int(text):
                    return member
        raise web.HTTPNotFound()

    async def confirm_remove(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        member = await self._own_member(request, merchant)
        t = self.tr(request, merchant)
        return self.render("dashboard/confirm.html", request, session, merchant, title=N_("Remove from the team?"),
                           heading=t.gettext("Remove from the team?"),
                           explanation=t.gettext("%(name)s (%(platform)s) will no longer act for this shop and is "
                                                 "signed out of the dashboard. Their links stay. They can join again "
                                                 "only with a new invite code.",
                                                 name=member.display_name or member.platform_user_id,
                                                 platform=member.platform),
                           action=f"/dashboard/team/{member.id}/remove", confirm=t.gettext("Yes, remove"),
                           back="/dashboard/team")

    async def remove_member(self, request: web.Request, session: Session, merchant: Merchant) -> web.StreamResponse:
        member = await self._own_member(request, merchant)
        if member.id == session.member_id:
            return await self.team_page(request, session, merchant, error=self.tr(request, merchant).gettext(
                "You cannot remove yourself."))
        assert member.id is not None
        async with self.db.write() as conn:
            await conn.execute(delete(SESSIONS).where(SESSIONS.c.member_id == member.id))
            await conn.execute(delete(SIGNINS).where(SIGNINS.c.member_id == member.id))
            await conn.execute(delete(QUESTIONS).where(QUESTIONS.c.member_id == member.id))
            await conn.execute(update(LINKS).where(LINKS.c.created_by_member_id == member.id)
                               .values(created_by_member_id=None))
            await conn.execute(update(INVITES).where(INVITES.c.created_by_member_id == member.id)
                               .values(created_by_member_id=None))
            await conn.execute(update(INVITES).where(INVITES.c.used_by_member_id == member.id)
                               .values(used_by_member_id=None))
            await conn.execute(delete(MEMBERS).where(MEMBERS.c.id == member.id))
            actor = await self.acting(request, session, merchant)
            await self.audit.record(merchant.id, "member.removed", actor, conn=conn,
                                    member=f"{member.display_name} ({member.platform})", role=member.role)
        raise web.HTTPSeeOther("/dashboard/team")

    async def alerts_page(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        async with self.db.read() as conn:
            rows = (await conn.execute(select(ALERTS).where(ALERTS.c.merchant_id == merchant.id)
                                       .order_by(ALERTS.c.created_at))).all()
        return self.render("dashboard/alerts.html", request, session, merchant, title=N_("Alerts"),
                           alerts=[{"id": r.id, "platform": r.platform, "address": r.address,
                                    "since": self.when(r.created_at, merchant)} for r in rows])

    async def alert_off(self, request: web.Request, session: Session, merchant: Merchant) -> web.StreamResponse:
        text = request.match_info["alert_id"]
        async with self.db.write() as conn:
            row = (await conn.execute(select(ALERTS).where(
                ALERTS.c.id == (int(text) if text.isascii() and text.isdigit() else -1),
                ALERTS.c.merchant_id == merchant.id))).first()
            if row is None:
                raise web.HTTPNotFound()
            await conn.execute(delete(ALERTS).where(ALERTS.c.id == row.id))
            await self.audit.record(merchant.id, "alerts.off", await self.acting(request, session, merchant),
                                    conn=conn, chat=f"{row.platform} {row.address}")
        raise web.HTTPSeeOther("/dashboard/alerts")


def _form_field(field: str | None) -> str:
    """The API's field name -> the form's (customer.email -> customer_email, amount_minor -> amount)."""
    if not field:
        return "form"
    field = field.replace(".", "_")
    return {"amount_minor": "amount", "body": "form"}.get(field, field)


__all__ = ["Dashboard", "shop_zone"]
