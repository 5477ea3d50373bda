"""A thin aiohttp client for the PortOne Global API calls paylinks makes (there is no official Python SDK).

Every call carries `Authorization: Bearer <JWT>` (a fresh short-lived token, see signing.make_jwt) and
`X-Portone-Client-Key`. Failures are classified (adapters.payments.common): timeouts, connection
errors, 5xx, 429 and unreadable answers are ProviderUnavailable; 401/403 ProviderAuthError; other
refusals ProviderRejected. Error messages carry PortOne's status code/reason and request id, never the
secret key or the token.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from adapters.payments.common import ProviderAuthError, ProviderRejected, ProviderUnavailable
from adapters.payments.portone import DEFAULT_API_BASE_URL, signing
from adapters.payments.portone.mapping import PROVIDER, CreatedLink, PortOneMappingError, parse_create_response

DEFAULT_TIMEOUT_S = 15.0
# Headers a gateway in front of PortOne may use for its request id (PortOne documents none).
_REQUEST_ID_HEADERS = ("X-Request-Id", "X-Portone-Request-Id", "Request-Id", "X-Amzn-Requestid",
                       "X-Amzn-Trace-Id")
_MAX_ERROR_TEXT = 200
CREDENTIAL_CHECK_REF = "paylinks-credential-check"


class PortOneClient:
    def __init__(self, *, client_key: str, secret_key: str, api_base_url: str = DEFAULT_API_BASE_URL,
                 timeout_s: float = DEFAULT_TIMEOUT_S, session: aiohttp.ClientSession | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if not client_key or not secret_key:
            raise ValueError("PortOne client_key and secret_key are required")
        self.client_key = client_key
        self._secret_key = secret_key
        self.api_base_url = api_base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session = session
        self._owns_session = session is None
        self._clock = clock

    def __repr__(self) -> str:  # never the secret
        return f"PortOneClient(client_key={self.client_key!r}, api_base_url={self.api_base_url!r})"

    # ---------------------------------------------------------------- calls

    async def create_payment_link(self, body: Mapping[str, Any]) -> CreatedLink:
        """POST /api/paymentLink with a body from mapping.create_body."""
        answer = await self._request("POST", "/api/paymentLink", body)
        try:
            return parse_create_response(answer)
        except PortOneMappingError as exc:
            raise ProviderUnavailable(str(exc), provider=PROVIDER) from None

    async def fetch_status(self, payment_link_ref: str) -> dict[str, Any]:
        """GET /api/paymentLink/{ref}/fetch-status; the whole answer (mapping.outcome_from_fetch_status reads it)."""
        return await self._request("GET", f"/api/paymentLink/{_segment(payment_link_ref)}/fetch-status")

    async def cancel_payment_link(self, payment_link_ref: str) -> dict[str, Any]:
        """PUT /api/paymentLink/{ref}/status/cancelled (the only status PortOne lets us set)."""
        return await self._request("PUT", f"/api/paymentLink/{_segment(payment_link_ref)}/status/cancelled")

    async def refund(self, order_ref: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/refund/{order_ref} with a body from mapping.refund_body."""
        return await self._request("POST", f"/api/refund/{_segment(order_ref)}", body)

    async def fetch_refunds(self, order_ref: str) -> dict[str, Any]:
        """GET /api/refund/{order_ref}: every refund of the transaction (how a refund webhook is confirmed)."""
        return await self._request("GET", f"/api/refund/{_segment(order_ref)}")

    async def check_credentials(self) -> None:
        """A signed status call for a link that does not exist: PortOne answers "not found" (or a status)
        when the key and secret are good, 401 when they are not.

        Raises ProviderAuthError for bad credentials, ProviderUnavailable when PortOne cannot be asked now.
        (Inferred from the docs' error codes; confirm against PortOne's sandbox.)
        """
        try:
            await self.fetch_status(CREDENTIAL_CHECK_REF)
        except ProviderRejected:
            return

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    # ---------------------------------------------------------------- plumbing

    def _headers(self) -> dict[str, str]:
        token = signing.make_jwt(self.client_key, self._secret_key, now=self._clock())
        return {"Authorization": f"Bearer {token}", "X-Portone-Client-Key": self.client_key,
                "Accept": "application/json"}

    async def _request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        url = self.api_base_url + path
        what = f"{method} {path}"
        try:
            async with self._session.request(method, url, json=body, headers=self._headers(),
                                             timeout=self.timeout, allow_redirects=False) as response:
                raw = await response.read()
                status = response.status
                request_id = _request_id(response.headers)
                retry_after = _retry_after(response.headers.get("Retry-After"))
        except TimeoutError:
            raise ProviderUnavailable(f"PortOne did not answer {what} in time", provider=PROVIDER) from None
        except aiohttp.ClientError as exc:
            raise ProviderUnavailable(f"PortOne could not be reached ({type(exc).__name__})",
                                      provider=PROVIDER) from None
        answer = _json_object(raw)
        code, reason = _code_and_reason(answer)
        detail = self._scrub(", ".join(part for part in (code, reason) if part) or f"HTTP {status}")
        if status == 429 or status >= 500:
            raise ProviderUnavailable(f"PortOne is unavailable ({detail})", provider=PROVIDER,
                                      request_id=request_id, status=status, code=code,
                                      retry_after_s=retry_after)
        if status in (401, 403):
            raise ProviderAuthError(f"PortOne refused the credentials ({detail})", provider=PROVIDER,
                                    request_id=request_id, status=status, code=code)
        if status >= 300 or (code and not code.startswith("2")):
            raise ProviderRejected(f"PortOne refused the request ({detail})", provider=PROVIDER,
                                   request_id=request_id, status=status, code=code)
        if answer is None:
            raise ProviderUnavailable("PortOne's answer is not JSON", provider=PROVIDER,
                                      request_id=request_id, status=status)
        return answer

    def _scrub(self, text: str) -> str:
        # PortOne echoes some input in messages; make sure a secret can never ride along.
        return text.replace(self._secret_key, "[secret]")[:_MAX_ERROR_TEXT]


def _segment(value: str) -> str:
    if not value:
        raise ValueError("a PortOne reference is required")
    return urllib.parse.quote(value, safe="")


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _code_and_reason(answer: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    if answer is None:
        return None, None
    code = answer.get("status_code")
    reason = answer.get("status_reason") or answer.get("status_message")
    message = answer.get("message")
    parts = [str(p) for p in (reason, message) if isinstance(p, str) and p]
    return (str(code) if isinstance(code, str | int) and not isinstance(code, bool) else None,
            ": ".join(parts) or None)


def _request_id(headers: Mapping[str, str]) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value[:100]
    return None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 3600 else None
