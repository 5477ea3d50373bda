"""Security headers for every response of the web app.

The pay pages carry a capability URL (whoever has the link can pay it) and a Pay button, so they must
not be framed (clickjacking), must not leak their URL in a Referer, and run no script at all: the CSP
allows only our own stylesheet and images. A handler that sets one of these headers itself keeps its
own value (setdefault), so a future page with other needs can say so explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware


def content_security_policy(public_base_url: str) -> str:
    # form-action must also allow the public origin: the Pay form's 303 goes to the checkout URL built
    # from public_base_url, and browsers check form-action on redirects too (someone browsing by
    # "localhost" while public_base_url says "127.0.0.1" would otherwise be blocked).
    parts = urlsplit(public_base_url)
    public_origin = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    form_action = f"'self' {public_origin}".strip()
    return (
        "default-src 'none'; style-src 'self'; img-src 'self'; "
        f"form-action {form_action}; base-uri 'none'; frame-ancestors 'none'"
    )


def security_header_values(public_base_url: str) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": content_security_policy(public_base_url),
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


def security_headers(public_base_url: str) -> Middleware:
    """Middleware adding the headers to returned responses and to raised HTTP errors (404s, 405s)."""
    headers = security_header_values(public_base_url)

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
