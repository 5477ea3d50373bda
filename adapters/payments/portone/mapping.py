"""Pure mapping between our links and PortOne Global's payment-link objects (no I/O).

Money crosses here: we keep integer minor units, PortOne takes and answers MAJOR units as a JSON number.
The conversion is exact (Decimal), done once at this edge; a JSON number is produced from the Decimal
only when it is written (`json_number`), never computed with float arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from adapters.payments.common import OutcomeStatus, ProviderOutcome
from adapters.payments.portone import signing
from core import money
from core.models import PaymentLink

PROVIDER = "portone"
Environment = Literal["sandbox", "live"]
ENVIRONMENTS: tuple[str, ...] = ("sandbox", "live")
# PortOne signs amounts with two decimals at most (see signing.amount_text): a three-decimal currency
# would be rounded inside the signature, so it is refused instead.
MAX_EXPONENT = 2
DESCRIPTION_MAX = 255  # the spec sets no limit; PortOne's checkout page shows one line

_STATUS: dict[str, OutcomeStatus] = {
    # payment-link lifecycle (docs: Created -> Processing -> Success | Expired; Created -> Cancelled)
    "created": OutcomeStatus.PENDING,
    "processing": OutcomeStatus.PENDING,
    "pending": OutcomeStatus.PENDING,
    "initiated": OutcomeStatus.PENDING,
    "success": OutcomeStatus.PAID,
    "succeeded": OutcomeStatus.PAID,
    "paid": OutcomeStatus.PAID,
    "expired": OutcomeStatus.EXPIRED,
    "cancelled": OutcomeStatus.CANCELLED,
    "canceled": OutcomeStatus.CANCELLED,
    "deleted": OutcomeStatus.CANCELLED,  # the spec's fetch-status description names "Deleted"
    # transaction statuses (payment webhook / redirect)
    "failed": OutcomeStatus.FAILED,
    "failure": OutcomeStatus.FAILED,
    "declined": OutcomeStatus.FAILED,
    "error": OutcomeStatus.FAILED,
}


class PortOneMappingError(ValueError):
    """A link PortOne cannot take (currency, amount), or a PortOne body we cannot read. Safe to show."""

    def __init__(self, message: str, *, field: str = "amount") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class CreatedLink:
    """PortOne's answer to POST /api/paymentLink."""

    ref: str  # payment_link_ref
    url: str  # payment_link: where the customer goes (opaque)


# ---------------------------------------------------------------- money


def check_chargeable(amount_minor: int, currency: str) -> None:
    """Raise PortOneMappingError if PortOne cannot be asked for this amount in this currency."""
    try:
        exp = money.exponent(currency)
    except money.MoneyError as exc:
        raise PortOneMappingError(str(exc), field="currency") from None
    if exp > MAX_EXPONENT:
        raise PortOneMappingError(
            f"PortOne cannot charge {currency.upper()}: amounts with {exp} decimals are not supported",
            field="currency")
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool) or amount_minor <= 0:
        raise PortOneMappingError("the amount must be a positive whole number of minor units")


def major_amount(amount_minor: int, currency: str) -> Decimal:
    """2500 THB satang -> Decimal("25.00"); 140000 VND -> Decimal("140000")."""
    check_chargeable(amount_minor, currency)
    return Decimal(amount_minor).scaleb(-money.exponent(currency))


def json_number(value: Decimal) -> int | float:
    """The JSON number for an exact decimal: an int when whole, else the float whose repr is that decimal.

    float(Decimal("100.50")) is 100.5 and json.dumps writes "100.5": with at most 15 significant digits
    the float's shortest repr is the decimal itself, which is checked rather than assumed.
    """
    if value == value.to_integral_value():
        return int(value)
    number = float(value)
    if Decimal(repr(number)) != value:
        raise PortOneMappingError("amount has too many digits for PortOne")
    return number


def minor_amount(value: Any, currency: str) -> int:
    """A PortOne major-unit amount (JSON number or text) -> integer minor units, exactly or not at all."""
    if isinstance(value, bool) or value is None:
        raise PortOneMappingError("amount is missing")
    try:
        exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
        exp = money.exponent(currency)
    except (InvalidOperation, money.MoneyError):
        raise PortOneMappingError("amount or currency is not readable", field="amount") from None
    if not exact.is_finite():
        raise PortOneMappingError("amount is not a number")
    minor = exact.scaleb(exp)
    if minor != minor.to_integral_value():
        raise PortOneMappingError(f"amount {value} has more decimals than {currency.upper()} allows")
    return int(minor)


# ---------------------------------------------------------------- our ids


def merchant_order_id(link_id: str, attempt: int) -> str:
    """PortOne's merchant_order_id for one Pay press: unique per attempt, our link id readable in it."""
    return f"{link_id}_{attempt}"


def parse_merchant_order_id(value: object) -> tuple[str, int] | None:
    """(link id, attempt) from a merchant_order_ref we made; None for anything else."""
    if not isinstance(value, str):
        return None
    link_id, sep, attempt = value.rpartition("_")
    if not sep or not link_id or not attempt.isdigit() or not attempt.isascii():
        return None
    return link_id, int(attempt)


def return_url(public_base_url: str, link_id: str) -> str:
    return f"{public_base_url.rstrip('/')}/p/{link_id}/return/portone"


def expiry_date(when: datetime) -> str:
    """UTC ISO 8601 with milliseconds and Z, as in PortOne's examples ("2024-07-28T18:30:00.000Z")."""
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)  # our SQLite columns come back naive UTC
    utc = aware.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


# ---------------------------------------------------------------- create


def create_body(link: PaymentLink, attempt: int, *, client_key: str, secret_key: str, environment: str,
                country_code: str, public_base_url: str, merchant_name: str) -> dict[str, Any]:
    """The JSON body of POST /api/paymentLink for one attempt at paying `link`, signed."""
    if environment not in ENVIRONMENTS:
        raise PortOneMappingError(f"environment must be one of {', '.join(ENVIRONMENTS)}", field="environment")
    country = (country_code or "").strip().upper()
    if len(country) != 2 or not country.isalpha() or not country.isascii():
        raise PortOneMappingError("country_code must be a two-letter country code", field="country_code")
    currency = money.normalize_currency(link.currency)
    amount = major_amount(link.amount_minor, currency)
    order_id = merchant_order_id(link.id, attempt)
    url = return_url(public_base_url, link.id)
    signature = signing.request_signature(
        client_key=client_key, secret_key=secret_key, amount=amount, currency=currency,
        merchant_order_id=order_id, success_url=url, failure_url=url)
    return {
        "portone_key": client_key,
        "merchant_details": {"name": merchant_name[:100] or "paylinks", "promo_discount": 0,
                             "shipping_charges": 0},
        "merchant_order_id": order_id,
        "signature_hash": signature,
        "amount": json_number(amount),
        "currency": currency,
        "country_code": country,
        "description": link.description[:DESCRIPTION_MAX],
        "success_url": url,
        "failure_url": url,
        "pending_url": url,
        "expiry_date": expiry_date(link.expires_at),
        "source": "api",
        "environment": environment,
        # Echoed in PortOne's console and exports, so a payment can be traced to our link and shop.
        "user_configured_field1": link.id,
        "user_configured_field2": link.merchant_id,
    }


def parse_create_response(body: object) -> CreatedLink:
    """Both shapes seen in PortOne's docs: flat `{payment_link_ref, payment_link}` or inside `content`."""
    content = _content(body)
    ref = content.get("payment_link_ref") or content.get("paymentLinkRef")
    url = content.get("payment_link") or content.get("paymentLink")
    if not isinstance(ref, str) or not ref or not isinstance(url, str) or not url.startswith(("https://",
                                                                                             "http://")):
        raise PortOneMappingError("PortOne's answer has no payment_link_ref / payment_link", field="response")
    return CreatedLink(ref=ref, url=url)


# ---------------------------------------------------------------- outcomes


def outcome_status(status: object) -> OutcomeStatus:
    """PortOne's status words, compared case-insensitively; anything unknown is PENDING (never paid)."""
    if not isinstance(status, str):
        return OutcomeStatus.PENDING
    return _STATUS.get(status.strip().lower(), OutcomeStatus.PENDING)


def outcome_from_fetch_status(body: object, *, provider_ref: str) -> ProviderOutcome:
    """GET /api/paymentLink/{ref}/fetch-status -> our outcome.

    fetch-status carries no amount (the spec's PaymentLinkContent has none): amount and currency are
    None unless PortOne adds them; the webhook's signed amount is what gets checked against the link.
    """
    content = _content(body)
    ref = content.get("paymentLinkRef") or content.get("payment_link_ref") or provider_ref
    if ref != provider_ref:
        raise PortOneMappingError("fetch-status answered for another payment link", field="response")
    status = outcome_status(content.get("status"))
    parsed = parse_merchant_order_id(content.get("merchantOrderRef") or content.get("merchant_order_ref"))
    payment_ref = None
    transactions = content.get("transactionsList")
    if isinstance(transactions, list):
        for txn in transactions:
            if isinstance(txn, Mapping) and outcome_status(txn.get("status")) is OutcomeStatus.PAID:
                ref_value = txn.get("orderRef") or txn.get("order_ref")
                payment_ref = ref_value if isinstance(ref_value, str) and ref_value else None
                break
    amount_minor, currency = _amount_if_any(content)
    return ProviderOutcome(
        provider=PROVIDER, status=status, provider_ref=provider_ref, link_id=parsed[0] if parsed else None,
        amount_minor=amount_minor, currency=currency, payment_ref=payment_ref,
        raw_status=str(content.get("status") or "")[:50])


def outcome_from_webhook(body: Mapping[str, Any], *, environment: str | None = None) -> ProviderOutcome:
    """A payment-link webhook body (verify its signature first: signing.verify_payment_link_webhook)."""
    ref = body.get("link_ref")
    if not isinstance(ref, str) or not ref:
        raise PortOneMappingError("webhook has no link_ref", field="link_ref")
    currency = body.get("currency")
    if not isinstance(currency, str) or not money.is_currency(currency):
        raise PortOneMappingError("webhook has no valid currency", field="currency")
    parsed = parse_merchant_order_id(body.get("merchant_order_ref"))
    payer = body.get("customer_name")
    return ProviderOutcome(
        provider=PROVIDER, status=outcome_status(body.get("status")), provider_ref=ref,
        link_id=parsed[0] if parsed else None, amount_minor=minor_amount(body.get("amount"), currency),
        currency=currency.upper(), payment_ref=None,
        livemode=None if environment is None else environment == "live",
        payer_name=payer[:200] if isinstance(payer, str) and payer else None,
        raw_status=str(body.get("status") or "")[:50])


def outcome_from_payment_webhook(body: Mapping[str, Any]) -> ProviderOutcome:
    """A transaction (payment_status) webhook body (verify first: signing.verify_payment_webhook).

    The one PortOne message that names both the transaction's `order_ref` and its `channel_key`, which
    a refund needs (POST /api/refund/{order_ref} with `channel`).
    """
    order_ref = body.get("order_ref")
    if not isinstance(order_ref, str) or not order_ref:
        raise PortOneMappingError("payment webhook has no order_ref", field="order_ref")
    currency = body.get("currency")
    if not isinstance(currency, str) or not money.is_currency(currency):
        raise PortOneMappingError("payment webhook has no valid currency", field="currency")
    link_ref = body.get("payment_link_ref")
    parsed = parse_merchant_order_id(body.get("merchant_order_ref"))
    environment = body.get("environment")
    payer = body.get("buyer_name")
    channel = body.get("channel_key")
    return ProviderOutcome(
        provider=PROVIDER, status=outcome_status(body.get("status")),
        provider_ref=link_ref if isinstance(link_ref, str) and link_ref else order_ref,
        link_id=parsed[0] if parsed else None, amount_minor=minor_amount(body.get("amount"), currency),
        currency=currency.upper(), payment_ref=order_ref,
        livemode=environment == "live" if environment in ENVIRONMENTS else None,
        payer_name=payer[:200] if isinstance(payer, str) and payer else None,
        raw_status=str(body.get("status") or "")[:50],
        channel=channel if isinstance(channel, str) and channel else None)


def outcome_from_redirect(query: Mapping[str, str], *, provider_ref: str) -> ProviderOutcome:
    """The customer's redirect (verify first: signing.verify_redirect). Shown, never recorded as paid."""
    parsed = parse_merchant_order_id(query.get("merchant_order_ref"))
    amount_minor: int | None = None
    currency = query.get("currency")
    if currency and money.is_currency(currency) and query.get("amount"):
        try:
            amount_minor = minor_amount(query["amount"], currency)
        except PortOneMappingError:
            amount_minor = None
    return ProviderOutcome(
        provider=PROVIDER, status=outcome_status(query.get("status")), provider_ref=provider_ref,
        link_id=parsed[0] if parsed else None, amount_minor=amount_minor,
        currency=currency.upper() if amount_minor is not None and currency else None,
        payment_ref=query.get("order_ref") or None, raw_status=str(query.get("status") or "")[:50])


def refund_body(*, amount_minor: int, currency: str, channel: str, environment: str, reason: str,
                full: bool) -> dict[str, Any]:
    """The body of POST /api/refund/{order_ref}; `channel` is the payment's channel_key."""
    amount = major_amount(amount_minor, currency)
    return {
        "amount": json_number(amount),
        "channel": channel,
        "description": reason[:255],
        "environment": environment,
        "refund_type": "full" if full else "partial",
        "refund_reason": reason[:255],
    }


_REFUND_STATES = {"SUCCESS": "succeeded", "SUCCEEDED": "succeeded", "COMPLETED": "succeeded",
                  "FAILED": "failed", "FAILURE": "failed", "REJECTED": "failed", "CANCELLED": "failed"}


def refund_state(status: object) -> str:
    """PortOne's refund_status -> "succeeded" | "failed" | "pending" (anything else is still in progress)."""
    return _REFUND_STATES.get(str(status or "").strip().upper(), "pending")


def refund_details(body: object) -> list[Mapping[str, Any]]:
    """The refundDetails of a create-refund or fetch-refunds answer (all refunds of the transaction)."""
    content = _content(body)
    details = content.get("refundDetails")
    if not isinstance(details, list):
        raise PortOneMappingError("PortOne's refund answer has no refundDetails", field="refundDetails")
    return [d for d in details if isinstance(d, Mapping)]


def refund_ref_of(detail: Mapping[str, Any]) -> str | None:
    ref = detail.get("refund_id") or detail.get("psp_refund_id")
    return str(ref)[:200] if ref else None


def _content(body: object) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise PortOneMappingError("PortOne's answer is not a JSON object", field="response")
    inner = body.get("content")
    return inner if isinstance(inner, Mapping) else body


def _amount_if_any(content: Mapping[str, Any]) -> tuple[int | None, str | None]:
    currency = content.get("currency")
    if content.get("amount") is None or not isinstance(currency, str) or not money.is_currency(currency):
        return None, None
    try:
        return minor_amount(content["amount"], currency), currency.upper()
    except PortOneMappingError:
        return None, None
