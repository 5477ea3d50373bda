"""The sandbox provider's hosted checkout page, served by paylinks under /sandbox/.

It plays the part of a real gateway's page: the customer types a test card; on success the "gateway"
posts the signed webhook to /webhooks/sandbox over real HTTP, exactly as an outside provider would, and
only then sends the customer back to the shop's return URL. The checkout token in the URL is signed,
so nobody can point this page at another amount. Card numbers are never logged or echoed back.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import jinja2
from aiohttp import web
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_incrementing,
)

from adapters.payments.sandbox.provider import CardResult, CheckoutSession, SandboxProvider, classify_card
from adapters.web.pages import make_templates, page_i18n, remember_language, request_language
from core.i18n import N_, tr
from core.money import format_money

log = logging.getLogger("paylinks.sandbox")

HTML_HEADERS = {"Cache-Control": "no-store"}
EXPIRY = re.compile(r"\s*(\d{1,2})\s*/?\s*(\d{2}|\d{4})\s*")
WEBHOOK_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class CardProblem:
    field: str  # the form field to mark invalid
    title: str  # catalog msgids (core.i18n): the page shows them in the customer's language
    detail: str
    status: int  # 422: fix the input; 402: the card was refused


NOT_A_NUMBER = CardProblem(
    "card_number", N_("That is not a card number."),
    N_("Type the 16 digits on the card; spaces are fine. In the sandbox use 4242 4242 4242 4242."), 422,
)
USE_TEST_CARD = CardProblem(
    "card_number", N_("Use a test card."),
    N_("The sandbox takes no real cards. Use 4242 4242 4242 4242 to pay, or 4000 0000 0000 0002 to see a "
       "decline."),
    422,
)
BAD_EXPIRY = CardProblem("expiry", N_("Check the expiry date."), N_("Write it as MM/YY, for example 12/34."), 422)
EXPIRED_CARD = CardProblem("expiry", N_("This card has expired."),
                           N_("Use a date in the future, for example 12/34."), 422)
BAD_CVC = CardProblem("cvc", N_("Check the CVC."), N_("It is the 3 or 4 digits on the back of the card."), 422)
DECLINED = CardProblem(
    "card_number", N_("Your card was declined."),
    N_("Nothing was charged. Try again with another card (in the sandbox: 4242 4242 4242 4242)."), 402,
)


def check_expiry(text: str, now: datetime) -> CardProblem | None:
    match = EXPIRY.fullmatch(text)
    if match is None:
        return BAD_EXPIRY
    month, year = int(match.group(1)), int(match.group(2))
    if len(match.group(2)) == 2:
        year += 2000
    if not 1 <= month <= 12:
        return BAD_EXPIRY
    if (year, month) < (now.year, now.month):
        return EXPIRED_CARD
    return None


def check_card(number: str, expiry: str, cvc: str, now: datetime) -> CardProblem | None:
    """The first problem with what the customer typed, or None when the sandbox approves the card."""
    result = classify_card(number)
    if result is CardResult.INVALID:
        return NOT_A_NUMBER
    if result is CardResult.NOT_A_TEST_CARD:
        return USE_TEST_CARD
    problem = check_expiry(expiry, now)
    if problem is not None:
        return problem
    if not (cvc.strip().isascii() and cvc.strip().isdigit() and len(cvc.strip()) in (3, 4)):
        return BAD_CVC
    return DECLINED if result is CardResult.DECLINED else None


def with_query(url: str, name: str, value: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{name}={value}"


class SandboxCheckout:
    def __init__(
        self, provider: SandboxProvider, *, webhook_url: str, templates: jinja2.Environment | None = None,
        branding: Callable[[str], Awaitable[dict[str, Any]]] | None = None,
    ) -> None:
        self.provider = provider
        self.webhook_url = webhook_url
        # The shop's name, colour, logo and support contact by link id (adapters/web/branding.link_branding):
        # the customer sees whose payment this is on the checkout too.
        self.branding = branding
        env = templates or make_templates()
        self.checkout_template = env.get_template("checkout.html")
        self.message_template = env.get_template("message.html")
        self._client: aiohttp.ClientSession | None = None

    async def lifespan(self, _app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: the HTTP client that delivers webhooks lives exactly as long as the app."""
        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        try:
            yield
        finally:
            await self._client.close()
            self._client = None

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/sandbox/checkout/{token}", self.show),
            web.post("/sandbox/checkout/{token}", self.submit),
        ]

    # ---- pages

    async def _brand(self, session: CheckoutSession) -> dict[str, Any]:
        return await self.branding(session.link_id) if self.branding is not None else {}

    async def _session(self, request: web.Request) -> tuple[CheckoutSession, dict[str, Any]] | web.Response:
        """The checkout and its shop's branding, or the page that says why there is none."""
        session = self.provider.decode_session(request.match_info["token"])
        if session is None:
            return self._message(request, 404, N_("Not found"), N_("Checkout not found"),
                                 N_("This checkout link is not valid. Go back to the shop's payment link and press "
                                    "Pay."))
        brand = await self._brand(session)
        if self.provider.is_expired(session):
            return self._message(request, 410, N_("Expired"), N_("This checkout has expired"),
                                 N_("Nothing was charged. Go back to the payment link and press Pay again."),
                                 back_url=session.return_url, brand=brand)
        return session, brand

    async def show(self, request: web.Request) -> web.Response:
        found = await self._session(request)
        if isinstance(found, web.Response):
            return found
        session, brand = found
        return self._form(request, session, brand=brand)

    async def submit(self, request: web.Request) -> web.StreamResponse:
        found = await self._session(request)
        if isinstance(found, web.Response):
            return found
        session, brand = found
        form = await request.post()
        number, expiry, cvc = (str(form.get(k, ""))[:64] for k in ("card_number", "expiry", "cvc"))
        name = " ".join(str(form.get("name", "")).split())[:100]
        problem = check_card(number, expiry, cvc, self.provider.clock())
        if problem is not None:
            log.info("sandbox card refused checkout=%s reason=%s", session.ref, problem.title)
            return self._form(request, session, problem=problem, expiry=expiry, name=name, brand=brand)
        return await self._charge(request, session, brand, payer_name=name or None)

    async def _charge(self, request: web.Request, session: CheckoutSession, brand: dict[str, Any], *,
                      payer_name: str | None) -> web.StreamResponse:
        charge_id, event_id = self.provider.charge_ids(session)
        body, headers = self.provider.build_webhook(session, charge_id=charge_id, event_id=event_id,
                                                    payer_name=payer_name)
        status = await self._deliver(body, headers, session)
        if status is None or not 200 <= status < 300:
            log.warning("sandbox webhook not accepted checkout=%s link=%s status=%s",
                        session.ref, session.link_id, status)
            return self._message(
                request, 502, N_("Not confirmed"), N_("The shop did not confirm the payment"),
                N_("In the sandbox a charge only counts once the shop confirms it, so nothing was charged. "
                   "Please try again in a moment."),
                back_url=session.return_url, brand=brand,
            )
        log.info("sandbox charge confirmed checkout=%s charge=%s link=%s", session.ref, charge_id, session.link_id)
        raise web.HTTPSeeOther(with_query(session.return_url, "payment", charge_id))

    async def _deliver(self, body: bytes, headers: dict[str, str], session: CheckoutSession) -> int | None:
        """POST the webhook like a gateway would; retries connection errors and 5xx a few times."""
        if self._client is None:
            raise RuntimeError("SandboxCheckout.lifespan is not running (add it to the app's cleanup_ctx)")
        client = self._client

        def log_failure(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            if exc is not None:
                log.warning("sandbox webhook delivery failed checkout=%s attempt=%d error=%s",
                            session.ref, state.attempt_number, type(exc).__name__)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(WEBHOOK_ATTEMPTS),
            wait=wait_incrementing(start=0.2, increment=0.2),  # 0.2 s, then 0.4 s
            retry=retry_if_exception_type((aiohttp.ClientError, TimeoutError))
            | retry_if_result(lambda status: status is None or status >= 500),
            after=log_failure,
            # Out of attempts: the last status (a 5xx), or None when the shop never answered.
            retry_error_callback=lambda state: None if state.outcome is None or state.outcome.failed
            else state.outcome.result(),
        )

        async def post() -> int:
            async with client.post(self.webhook_url, data=body, headers=headers,
                                   allow_redirects=False) as response:
                await response.read()
                return response.status

        status: int | None = await retrying(post)
        return status

    # ---- rendering

    @staticmethod
    def _language(request: web.Request, brand: dict[str, Any] | None) -> tuple[str, str | None]:
        """The customer's language as the pay pages choose it (?lang, its cookie, Accept-Language, the
        shop's locale), and the shop's locale."""
        shop_locale = (brand or {}).get("merchant_locale")
        return request_language(request, shop_locale), shop_locale

    def _form(self, request: web.Request, session: CheckoutSession, *, problem: CardProblem | None = None,
              expiry: str = "", name: str = "", brand: dict[str, Any] | None = None) -> web.Response:
        language, shop_locale = self._language(request, brand)
        t = tr(language)
        amount = format_money(session.amount_minor, session.currency, shop_locale or "en")
        error = None if problem is None else {"field": problem.field, "title": t.gettext(problem.title),
                                              "detail": t.gettext(problem.detail)}
        html = self.checkout_template.render(
            **(brand or {}),
            # The switcher's `?lang=` links only where this address takes a GET (not on the answer to the form).
            **page_i18n(language, shop_locale, switcher=request.method == "GET"),
            title=t.gettext("Sandbox checkout: pay %(amount)s", amount=amount),
            amount=amount,
            description=session.description,
            action=request.path,
            cancel_url=session.return_url,
            error=error,
            expiry=expiry,
            name=name,
        )
        response = web.Response(text=html, status=problem.status if problem else 200, content_type="text/html",
                                headers=HTML_HEADERS)
        remember_language(request, response, language)
        return response

    def _message(self, request: web.Request, status: int, badge: str, heading: str, explanation: str, *,
                 back_url: str = "", brand: dict[str, Any] | None = None) -> web.Response:
        """A page that says why there is no form; badge, heading and explanation are catalog msgids."""
        language, shop_locale = self._language(request, brand)
        t = tr(language)
        html = self.message_template.render(
            **(brand or {}), **page_i18n(language, shop_locale, switcher=False),
            title=t.gettext(heading), sandbox=True, tone="bad", badge=t.gettext(badge), heading=t.gettext(heading),
            explanation=t.gettext(explanation), back_url=back_url,
            back_label=t.gettext("Back to the payment") if back_url else "",
        )
        return web.Response(text=html, status=status, content_type="text/html", headers=HTML_HEADERS)
