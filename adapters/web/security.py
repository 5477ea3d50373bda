"""Security headers for every response of the web app.

The pay pages carry a capability URL (whoever has the link can pay it) and a Pay button, so they must
not be framed (clickjacking), must not leak their URL in a Referer, and run no script at all: the CSP
allows only our own stylesheet and images. A handler that sets one of these headers itself keeps its
own value (setdefault), so a future page with other needs can say so explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware


def origin_of(url: str) -> str:
    """"https://checkout.stripe.com" of "https://checkout.stripe.com/c/pay/cs_…"; "" when not a URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else ""


def content_security_policy(public_base_url: str, checkout_origins: Iterable[str] = ()) -> str:
    # form-action must also allow the public origin: the Pay form's 303 goes to the checkout URL built
    # from public_base_url, and browsers check form-action on redirects too (someone browsing by
    # "localhost" while public_base_url says "127.0.0.1" would otherwise be blocked). For the same reason
    # it lists the payment provider's hosted checkout (checkout.stripe.com, checkout.portone.cloud):
    # without it the browser silently refuses to follow Pay's 303 there.
    origins = [origin_of(public_base_url), *(origin_of(o) for o in checkout_origins)]
    form_action = " ".join(dict.fromkeys(["'self'", *(o for o in origins if o)]))
    return (
        "default-src 'none'; style-src 'self'; img-src 'self'; "
        f"form-action {form_action}; base-uri 'none'; frame-ancestors 'none'"
    )


def security_header_values(public_base_url: str, checkout_origins: Iterable[str] = ()) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": content_security_policy(public_base_url, checkout_origins),
        "X-Frame-Options": "DENY",
        # The link id in the URL is the capability to pay; never send it to another site.
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    }
    if public_base_url.startswith("https://"):
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return headers


def _apply(response: web.StreamResponse, headers: Mapping[str, str]) -> None:
    for name, value in headers.items():
        response.headers.setdefault(name, value)


def security_headers(public_base_url: str, checkout_origins: Iterable[str] = ()) -> Middleware:
    """Middleware adding the headers to returned responses and to raised HTTP errors (404s, 405s)."""
    headers = security_header_values(public_base_url, checkout_origins)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            _apply(exc, headers)  # aiohttp 3's HTTPException is also a Response
            raise
        _apply(response, headers)
        return response

    return middleware
