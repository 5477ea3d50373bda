"""Limits against abuse, as one aiohttp middleware in front of every route (`[limits]` settings).

- Public pages: every POST (any method but GET/HEAD/OPTIONS) under /p/ and /sandbox/ (Pay, the
  checkout form) counts against the client's `public_per_ip`. Reading a page is never limited: it
  writes nothing and is the hot path.
- Webhooks (every other POST outside /api/): only failed authentications count, against
  `bad_auth_per_ip` (an answer of 400, 401 or 403: a bad signature or secret). A client that used up
  that allowance gets 429 on these routes until it recovers; a genuine platform never gets there.
- The API: every request counts against its key's `api_per_key`, and an answer of 401 (no key, a bad or
  revoked key) against the client's `bad_auth_per_ip`. A client over that allowance gets 429 for any key
  except those that recently worked, so one stale key in a merchant's system cannot lock out its good one.

Refusals are 429 with Retry-After (whole seconds): under /api/ the API's JSON error
`{"error": {"code": "rate_limited", "message", "field": null}}`, on webhooks the same JSON, on pages a
small page saying to wait. Limits apply to every client, loopback included. The client is the connection's
address or, behind `server.trusted_proxies`, the X-Forwarded-For hop those proxies vouch for (see
core.ratelimit). Counters live in this process; several processes each enforce their own.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from core.i18n import tr
from core.ratelimit import ClientAddresses, LimitsConfig, MonotonicClock, RateLimiter, parse_trusted_proxies

log = logging.getLogger("paylinks.web.limits")

API_PREFIX = "/api/"
PUBLIC_PREFIXES = ("/p/", "/sandbox/")
SAFE_METHODS = frozenset({hdrs.METH_GET, hdrs.METH_HEAD, hdrs.METH_OPTIONS})
# Answers of a webhook route that mean the caller did not prove who it is.
WEBHOOK_AUTH_FAILURES = frozenset({400, 401, 403})
KNOWN_GOOD_KEYS = 10_000  # API keys whose last answer was not 401, by hash

# (seconds to wait, the page to go back to, the reader's language) -> HTML
PageRenderer = Callable[[int, str, str], bytes]


def retry_after(wait_s: float) -> str:
    return str(max(1, math.ceil(wait_s)))


class RateLimits:
    """The limiters and the middleware that applies them (build one per app)."""

    def __init__(
        self,
        settings: LimitsConfig,
        *,
        trusted_proxies: list[str] | tuple[str, ...] = (),
        page_429: PageRenderer | None = None,
        page_headers: dict[str, str] | None = None,
        monotonic: MonotonicClock = time.monotonic,
    ) -> None:
        self.public = RateLimiter.from_setting(settings.public_per_ip, monotonic=monotonic)
        self.bad_auth = RateLimiter.from_setting(settings.bad_auth_per_ip, monotonic=monotonic)
        self.per_key = RateLimiter.from_setting(settings.api_per_key, monotonic=monotonic)
        self.clients = ClientAddresses(parse_trusted_proxies(list(trusted_proxies)))
        self.page_429 = page_429 or _plain_page
        self.page_headers = dict(page_headers or {})
        self._good_keys: dict[int, None] = {}

    def client(self, request: web.Request) -> str:
        return self.clients.key(request.remote, request.headers.getall(hdrs.X_FORWARDED_FOR, []))

    @property
    def middleware(self) -> Middleware:
        @web.middleware
        async def rate_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
            path = request.path
            if path.startswith(API_PREFIX):
                return await self._api(request, handler)
            if request.method in SAFE_METHODS:
                return await handler(request)
            if path.startswith(PUBLIC_PREFIXES):
                return await self._public(request, handler)
            return await self._webhook(request, handler)

        return rate_limits

    # ---- the three kinds of route

    async def _public(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.public is not None:
            client = self.client(request)
            wait = self.public.hit(client)
            if wait:
                log.info("rate limited kind=public client=%s", client)
                # Back to the page the form was on: /p/{id} for its Pay button, the checkout for its form.
                from adapters.web.pages import request_language  # the pay pages' own choice of language

                return self._page_response(wait, request.path.removesuffix("/pay"),
                                           request_language(request, None))
        return await handler(request)

    async def _webhook(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.bad_auth is None:
            return await handler(request)
        client = self.client(request)
        wait = self.bad_auth.wait(client)
        if wait:
            log.info("rate limited kind=bad_auth route=webhook client=%s", client)
            return self._json_response(wait, "too many requests that failed authentication; wait and try again")
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status in WEBHOOK_AUTH_FAILURES:
                self.bad_auth.hit(client)
            raise
        if response.status in WEBHOOK_AUTH_FAILURES:
            self.bad_auth.hit(client)
        return response

    async def _api(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get(hdrs.AUTHORIZATION)
        # What these tables hold for a key: the header's hash (64 bits, salted per process by Python),
        # never the key itself, and a tenth of the cost of a SHA-256.
        digest = hash(header) if header else None
        client = ""
        if self.bad_auth is not None and (digest is None or digest not in self._good_keys):
            client = self.client(request)
            wait = self.bad_auth.wait(client)
            if wait:
                log.info("rate limited kind=bad_auth route=api client=%s", client)
                return self._json_response(wait, "too many requests with a missing or bad API key; wait and try again")
        if digest is not None and self.per_key is not None:
            wait = self.per_key.hit(digest)
            if wait:
                log.info("rate limited kind=api_key")
                return self._json_response(wait, f"more than {self.per_key.rate} requests with this API key; "
                                       "wait and try again")
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # api_errors turns these into JSON; in case it is not mounted
            if exc.status == 401:
                self._refused(digest, client or self.client(request))
            raise
        if response.status == 401:
            self._refused(digest, client or self.client(request))
        elif digest is not None and digest not in self._good_keys:
            if len(self._good_keys) >= KNOWN_GOOD_KEYS:
                self._good_keys.pop(next(iter(self._good_keys)))
            self._good_keys[digest] = None
        return response

    def _refused(self, digest: int | None, client: str) -> None:
        if digest is not None:
            self._good_keys.pop(digest, None)
        if self.bad_auth is not None:
            self.bad_auth.hit(client)

    def _json_response(self, wait_s: float, message: str) -> web.Response:
        body = {"error": {"code": "rate_limited", "message": message, "field": None}}
        return web.Response(
            body=json.dumps(body).encode(), status=429, content_type="application/json",
            headers={**self.page_headers, "Retry-After": retry_after(wait_s), "Cache-Control": "no-store"},
        )

    def _page_response(self, wait_s: float, back_path: str, language: str) -> web.Response:
        seconds = int(retry_after(wait_s))
        return web.Response(
            body=self.page_429(seconds, back_path, language), status=429, content_type="text/html", charset="utf-8",
            headers={**self.page_headers, "Retry-After": str(seconds), "Cache-Control": "no-store"},
        )


def _plain_page(seconds: int, _back_path: str, language: str) -> bytes:
    t = tr(language)
    heading = t.gettext("Too many tries in a short time")
    wait = t.ngettext("Please wait %(count)s second, then try again.", "Please wait %(count)s seconds, then try again.",
                      seconds)
    return f"<!doctype html><html lang=\"{t.html_lang}\"><title>{heading}</title><p>{heading}. {wait}</p>".encode()


def rate_limits(settings: LimitsConfig, *, trusted_proxies: list[str], public_base_url: str) -> RateLimits:
    """The app's limits, with its 429 page in the look of the other pages (bots/app.py mounts it)."""
    from adapters.web.pages import make_templates, page_i18n
    from adapters.web.security import security_header_values

    template = make_templates().get_template("message.html")

    def page(seconds: int, back_path: str, language: str) -> bytes:
        t = tr(language)
        return template.render(
            **page_i18n(language, switcher=False), title=t.gettext("Too many tries in a short time"), sandbox=False,
            tone="warn",
            badge=t.gettext("Please wait"), heading=t.gettext("Too many tries in a short time"),
            explanation=t.ngettext(
                "To keep payments safe, this page takes only so many tries at once. Nothing was charged. "
                "Please wait %(count)s second, then try again.",
                "To keep payments safe, this page takes only so many tries at once. Nothing was charged. "
                "Please wait %(count)s seconds, then try again.", seconds),
            back_url=back_path, back_label=t.gettext("Back to the payment"),
        ).encode()

    return RateLimits(settings, trusted_proxies=trusted_proxies, page_429=page,
                      page_headers=security_header_values(public_base_url))
