"""The REST API's requests and responses as pydantic models; the OpenAPI document is generated from them.

Requests are validated by pydantic (shapes, types, lengths, unknown fields, text that cannot be stored),
then by the handlers for what JSON Schema cannot say (the currency's decimals, `links.max_amount`, times
relative to now, possible phone numbers), then by LinkService (core/limits.py) for every caller alike.
Responses are built as plain dicts on the hot path (`link_json`); their models here define the schema,
and the tests validate every response the API gives against it.

Every error code the API can answer is listed per route in `ROUTE_ERRORS`, so the document lists them
too; a new code is one entry there (and one in `ERROR_CODES`).
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.config import JsonDict

from core import limits
from core.models import LinkStatus, PaymentStatus, RefundStatus
from core.text import BIDI_CONTROLS_TEXT, has_bidi_controls

API_PREFIX = "/api/v1"
MAX_BODY_BYTES = 32 * 1024
MAX_IDEMPOTENCY_KEY = 255
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_LINK_ID = 64

# Text as it may be stored: no C0 controls or DEL (tab and newline are fine). Lone surrogates, which
# JSON can spell ("\ud800") but UTF-8 cannot store, are refused by pydantic itself (string_unicode).
_CONTROLS = "\\x00-\\x08\\x0b-\\x1f\\x7f"
TEXT_PATTERN = f"^[^{_CONTROLS}]*$"
# Python's str.strip() whitespace, spelt out (ECMA's \s differs), so "not blank" means the same in the
# document as in the handler.
_SPACE = "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
NOT_BLANK_PATTERN = f"^[^{_CONTROLS}]*[^{_CONTROLS}{_SPACE}][^{_CONTROLS}]*$"
# Link text that pages and chats show beside our own (description, reference, customer name) may not hold
# bidi embedding/override/isolate controls either (core.text; LinkService refuses them too).
_LINK_TEXT_CONTROLS = _CONTROLS + "\u202a-\u202e\u2066-\u2069"
LINK_TEXT_PATTERN = f"^[^{_LINK_TEXT_CONTROLS}]*$"
LINK_TEXT_NOT_BLANK_PATTERN = (
    f"^[^{_LINK_TEXT_CONTROLS}]*[^{_LINK_TEXT_CONTROLS}{_SPACE}][^{_LINK_TEXT_CONTROLS}]*$"
)
AMOUNT_PATTERN = r"^[0-9]{1,20}(\.[0-9]{1,20})?$"
DURATION_PATTERN = r"^\s*[0-9]{1,6}\s*[smhdwSMHDW]\s*$"
CURRENCY_PATTERN = r"^([A-Z]{3}|[a-z]{3})$"
LINK_ID_PATTERN = f"^[a-z2-7]{{1,{MAX_LINK_ID}}}$"
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e][\x20-\x7e]*$"  # printable ASCII, no leading space
PAYMENT_ID_PATTERN = r"^pay_[a-z2-7]{1,36}$"
REFUND_REASON_MAX = 500

Text = Annotated[str, Field(pattern=TEXT_PATTERN)]


def _integral_number(value: Any) -> Any:
    # JSON Schema counts 2500.0 as an integer, and so does the API; 2500.5 stays a number and is refused.
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    return value


MinorUnits = Annotated[int, BeforeValidator(_integral_number)]
# A count (stock, ways, quantity): like MinorUnits, 133.0 is 133.
Count = Annotated[int, BeforeValidator(_integral_number)]


class _Strict(BaseModel):
    # strict: no "2500" for an integer, no 25.5 for a string, no true for 1.
    model_config = ConfigDict(extra="forbid", strict=True)


# ---------------------------------------------------------------- requests


class CustomerIn(_Strict):
    name: Annotated[str, Field(max_length=limits.CUSTOMER_NAME_MAX, pattern=LINK_TEXT_PATTERN)] | None = None
    email: Annotated[str, Field(max_length=limits.EMAIL_MAX, pattern=TEXT_PATTERN,
                                json_schema_extra={"format": "email"})] | None = None
    phone: Annotated[str, Field(max_length=limits.PHONE_MAX, pattern=r"^\+?[0-9 ()./-]+$",
                                description="International format (+6591234567); stored as E.164.")] | None = None


MetadataKey = Annotated[str, Field(min_length=1, max_length=limits.METADATA_KEY_MAX, pattern=TEXT_PATTERN)]
MetadataValue = Annotated[str, Field(max_length=limits.METADATA_VALUE_MAX, pattern=TEXT_PATTERN)]


QUANTITY_PATTERN = r"^[0-9]{1,7}(\.[0-9]{1,3})?$"
UNIT_AMOUNT_PATTERN = r"^[0-9]{1,13}(\.[0-9]{1,6})?$"
PERCENT_PATTERN = r"^[0-9]{1,3}(\.[0-9]{1,4})?$"


Quantity = Annotated[MinorUnits, Field(ge=1, le=1_000_000)] | Annotated[str, Field(pattern=QUANTITY_PATTERN)]


class LineItemIn(_Strict):
    name: str = Field(max_length=200, pattern=LINK_TEXT_NOT_BLANK_PATTERN, description="What is sold.")
    quantity: Quantity = Field(
        1, description="An integer, or a decimal string with up to 3 decimals (\"1.5\" hours). Default 1.")
    unit_amount: str = Field(pattern=UNIT_AMOUNT_PATTERN, examples=["25.00"],
                             description="Decimal string, the price of one unit (up to 6 decimals; the line is "
                             "rounded half to even to the currency's minor unit).")
    tax_rate: str = Field(  # type: ignore[assignment]  # absent, never null
        None, pattern=PERCENT_PATTERN, examples=["9"],
        description="Tax as a decimal-string percent from 0 to 100, added on the line's discounted amount.")


class DiscountIn(_Strict):
    """Exactly one of `amount` and `percent`, on the whole invoice before tax."""

    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"oneOf": [{"required": ["amount"]}, {"required": ["percent"]}]})
    amount: str = Field(None, pattern=AMOUNT_PATTERN, examples=["5.00"])  # type: ignore[assignment]
    percent: str = Field(None, pattern=PERCENT_PATTERN, examples=["10"])  # type: ignore[assignment]


class QuantityIn(_Strict):
    adjustable: bool = Field(description="true: the customer picks the quantity on the pay page.")
    min: Count = Field(1, ge=1, le=1000)
    max: Count = Field(  # type: ignore[assignment]  # absent, never null
        None, ge=1, le=1000, description="Default: 10, or the stock if smaller.")


class SplitIn(_Strict):
    ways: Count = Field(ge=2, le=100, description="How many shares; the remainder in minor units goes to the "
                      "first shares, so they sum exactly to the amount.")


class CreateLink(_Strict):
    """Exactly one of `amount`, `amount_minor` and `line_items`; at most one of `expires_at` and `expires_in`.

    A `schedule` is refused here (`use_series`): recurring charges are made with POST /api/v1/series.
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            # A customer-chosen amount (donations) has min_amount instead of an amount.
            "oneOf": [{"required": ["amount"]}, {"required": ["amount_minor"]}, {"required": ["line_items"]},
                      {"required": ["amount_mode", "min_amount"],
                       "properties": {"amount_mode": {"const": "customer_chooses"}},
                       "not": {"anyOf": [{"required": ["amount"]}, {"required": ["amount_minor"]}]}}],
            "not": {"required": ["expires_at", "expires_in"]},
            "dependentRequired": {"discount": ["line_items"]},
            "examples": [{"amount": "25.00", "currency": "SGD", "description": "Chocolate cake",
                          "reference": "order-1042", "expires_in": "3d",
                          "customer": {"name": "Ana", "email": "ana@example.com", "phone": "+6591234567"},
                          "metadata": {"order_id": "1042"}}],
        },
    )

    # Optional fields typed without `| None`: the document says "string" (an explicit null is refused), and
    # leaving them out means absent, so their default None is not of the field's type.
    amount: str = Field(  # type: ignore[assignment]  # absent, never null
        None, pattern=AMOUNT_PATTERN, examples=["25.00"],
        description="Decimal string, e.g. \"25.00\", greater than zero, with at most the currency's ISO 4217 "
        "decimals and at most links.max_amount. JSON numbers are refused so no float ever rounds money.",
    )
    amount_minor: MinorUnits = Field(  # type: ignore[assignment]  # absent, never null
        None, ge=1, le=limits.AMOUNT_MINOR_MAX,
        description="Integer count of minor units (2500 = 25.00 SGD; 1200 = ¥1200), at most links.max_amount.",
    )
    currency: str = Field(  # type: ignore[assignment]  # absent, never null
        None, pattern=CURRENCY_PATTERN, examples=["SGD"],
        description="ISO 4217 code, upper or lower case; default: the merchant's default currency.",
    )
    description: str = Field(
        max_length=limits.DESCRIPTION_MAX, pattern=LINK_TEXT_NOT_BLANK_PATTERN,
        description="What is being paid for; surrounding spaces are trimmed.",
    )
    reference: Annotated[str, Field(max_length=limits.REFERENCE_MAX, pattern=LINK_TEXT_PATTERN)] | None = Field(
        None, description="Your own order number or similar."
    )
    expires_at: str = Field(  # type: ignore[assignment]  # absent, never null
        None, json_schema_extra={"format": "date-time"},
        description="ISO 8601 with a UTC offset, in the future and at most "
        f"{limits.MAX_EXPIRY.days} days away. Default: now + links.default_expiry.",
    )
    expires_in: str = Field(  # type: ignore[assignment]  # absent, never null
        None, pattern=DURATION_PATTERN,
        description=f"A duration such as \"30m\", \"2h\", \"3d\", \"1w\": longer than zero, at most "
        f"{limits.MAX_EXPIRY.days} days.",
    )
    customer: CustomerIn | None = None
    notify: list[Literal["email", "sms", "whatsapp"]] = Field(
        None, max_length=3,  # type: ignore[arg-type]  # absent, never null
        description="Where to send the link to the customer: any of email, sms, whatsapp. Default: every "
        "channel the customer has (customer.email, customer.phone) that this server has enabled; [] sends "
        "nothing. A channel the server has not enabled is skipped.")
    metadata: Annotated[
        dict[MetadataKey, MetadataValue], Field(max_length=limits.METADATA_KEYS_MAX)
    ] | None = Field(None, description="Your own string key/value pairs, returned unchanged.")
    line_items: list[LineItemIn] = Field(
        None, min_length=1,  # type: ignore[arg-type]  # absent, never null max_length=100,
        description="Instead of an amount: the items; the link's amount is their total (see `total`). Each line "
        "is rounded half to even to the currency's minor unit, the discount is spread over the lines in "
        "proportion, then each line's tax is rounded the same way.")
    discount: DiscountIn = Field(  # type: ignore[assignment]  # absent, never null
        None, description="Only with line_items: an amount or a percent off the subtotal, before tax.")
    # Links that sell many times (core/reusable.py).
    reusable: bool = Field(  # type: ignore[assignment]  # absent, never null
        None, description="true: takes payments until cancelled, expired or a limit below is reached (then "
        "`sold_out`); each payment is its own record. Implied by quantity, amount_mode customer_chooses and split.")
    max_payments: Count = Field(  # type: ignore[assignment]  # absent, never null
        None, ge=1, le=1_000_000, description="At most this many payments.")
    stock: Count = Field(  # type: ignore[assignment]  # absent, never null
        None, ge=1, le=1_000_000, description="At most this many units (with quantity) are sold.")
    max_total: str = Field(  # type: ignore[assignment]  # absent, never null
        None, pattern=AMOUNT_PATTERN, description="Decimal string: stop once this much was collected.")
    quantity: QuantityIn = Field(  # type: ignore[assignment]  # absent, never null
        None, description="Let the customer pick how many (the total is amount × quantity; stock bounds it).")
    amount_mode: Literal["fixed", "customer_chooses"] = Field(
        None,  # type: ignore[arg-type]  # absent, never null
        description="customer_chooses: the customer enters the amount (donations, tips); give min_amount "
        "instead of amount.")
    min_amount: str = Field(  # type: ignore[assignment]  # absent, never null
        None, pattern=AMOUNT_PATTERN, description="Decimal string: the smallest amount a customer may choose.")
    max_amount: str = Field(  # type: ignore[assignment]  # absent, never null
        None, pattern=AMOUNT_PATTERN, description="Decimal string: the largest amount a customer may choose.")
    suggested_amounts: list[Annotated[str, Field(pattern=AMOUNT_PATTERN)]] = Field(
        None, max_length=4,  # type: ignore[arg-type]  # absent, never null
        description="Up to four decimal strings offered as buttons on the pay page.")
    split: SplitIn = Field(  # type: ignore[assignment]  # absent, never null
        None, description="Split the amount into shares; the link is paid when all are in.")


CREATE_FIELDS = frozenset(CreateLink.model_fields)
CUSTOMER_FIELDS = tuple(CustomerIn.model_fields)


class CreateRefund(_Strict):
    """Everything optional: an empty body refunds all that is left of the link's one refundable payment."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "examples": [{"amount": "10.00", "reason": "one cake was missing"}]})

    amount: str = Field(  # type: ignore[assignment]  # absent, never null
        None, pattern=AMOUNT_PATTERN, examples=["10.00"],
        description="Decimal string in the payment's currency, with at most its ISO 4217 decimals, greater than "
        "zero and at most what is left to refund. Default: all that is left.",
    )
    reason: Annotated[str, Field(max_length=REFUND_REASON_MAX, pattern=LINK_TEXT_PATTERN)] | None = Field(
        None, description="Why, for your records (shown in the timeline).")
    payment_id: str = Field(  # type: ignore[assignment]  # absent, never null
        None, pattern=PAYMENT_ID_PATTERN,
        description="Which payment (`payments[].id`); required when the link has more than one refundable "
        "payment (someone paid twice).",
    )


class StatusFilter(StrEnum):
    """`status=` on the list: a link status, or empty for no filter."""

    ANY = ""
    ACTIVE = LinkStatus.ACTIVE.value
    PAID = LinkStatus.PAID.value
    EXPIRED = LinkStatus.EXPIRED.value
    CANCELLED = LinkStatus.CANCELLED.value
    REFUNDED = LinkStatus.REFUNDED.value
    SOLD_OUT = LinkStatus.SOLD_OUT.value


# ---------------------------------------------------------------- responses

_DATE_TIME: JsonDict = {"format": "date-time", "description": "ISO 8601, UTC (`…Z`)"}


class CustomerOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None
    email: str | None
    phone: str | None = Field(description="E.164, e.g. +6591234567")


_AMOUNT_OUT = r"^[0-9]+(\.[0-9]+)?$"


class RefundOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern="^re_[a-z2-7]+$")
    payment_id: str = Field(pattern=PAYMENT_ID_PATTERN)
    amount: str = Field(pattern=_AMOUNT_OUT)
    amount_minor: MinorUnits = Field(ge=1)
    currency: str = Field(pattern="^[A-Z]{3}$")
    status: RefundStatus = Field(description="`pending` until the provider confirms (`succeeded`) or refuses "
                                             "(`failed`, with its reason in `failure_reason`).")
    reason: str | None
    failure_reason: str | None = Field(description="The provider's words when it refused; on a pending refund, "
                                                   "why it is still being asked.")
    created_at: str = Field(json_schema_extra=_DATE_TIME)
    completed_at: str | None = Field(json_schema_extra=_DATE_TIME)


class PaymentOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=PAYMENT_ID_PATTERN)
    status: PaymentStatus = Field(description="`refund_needed`: money taken that cannot count (paid twice, or "
                                              "after the link closed), to be given back.")
    amount: str = Field(pattern=_AMOUNT_OUT)
    amount_minor: MinorUnits = Field(ge=1)
    amount_refunded: str = Field(pattern=_AMOUNT_OUT)
    amount_refunded_minor: MinorUnits = Field(ge=0)
    currency: str = Field(pattern="^[A-Z]{3}$")
    provider: str
    provider_ref: str
    payer_name: str | None
    paid_at: str = Field(json_schema_extra=_DATE_TIME)
    refunds: list[RefundOut]
    promo_code: str | None = Field(description="The promo code the customer paid with (null: none); `amount` "
                                               "is after its discount.")
    discount: str = Field(pattern=_AMOUNT_OUT, description="What the promo code took off (\"0.00\": none).")
    discount_minor: MinorUnits = Field(ge=0)


class TimelineEventOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(description="link.created, link.opened (details.views counts every view), "
                                  "checkout.started, payment.succeeded, alert.delivered (per chat), reminder.sent "
                                  "(details.how: manual or before expiry; details.to: the channels), delivery.failed "
                                  "(an alert, customer message or webhook given up on), message.sent (to the customer: "
                                  "details.platform, details.as), message.delivered and message.failed (the "
                                  "platform's later report; details.error_code), refund.requested, "
                                  "refund.succeeded, refund.failed, payment.failed, dispute.created, link.expired, "
                                  "link.cancelled; more may come.")
    at: str = Field(json_schema_extra=_DATE_TIME)
    details: dict[str, Any]


class EventList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: list[TimelineEventOut] = Field(description="Oldest first.")


class LineItemOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    quantity: str = Field(pattern=r"^[0-9]+(\.[0-9]+)?$")
    unit_amount: str = Field(pattern=r"^[0-9]+(\.[0-9]+)?$")
    tax_rate: str = Field(pattern=r"^[0-9]+(\.[0-9]+)?$", description="Percent.")
    amount: str = Field(pattern=_AMOUNT_OUT, description="quantity x unit_amount, rounded half to even.")
    amount_minor: MinorUnits = Field(ge=0)
    discount: str = Field(pattern=_AMOUNT_OUT, description="This line's share of the invoice's discount.")
    discount_minor: MinorUnits = Field(ge=0)
    tax: str = Field(pattern=_AMOUNT_OUT)
    tax_minor: MinorUnits = Field(ge=0)
    total: str = Field(pattern=_AMOUNT_OUT, description="amount - discount + tax; the lines add up to `total`.")
    total_minor: MinorUnits = Field(ge=0)


class QuantityOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    adjustable: bool
    min: int
    max: int


class SplitOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ways: int
    paid: int = Field(description="Shares paid so far.")
    shares: list[str] = Field(description="Each share's amount, the remainder first.")


class Link(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern="^[a-z2-7]{26,}$",
                    description="Public id (≥128 random bits); also the last segment of `url`.")
    url: str = Field(json_schema_extra={"format": "uri"}, description="`{public_base_url}/p/{id}`: the pay page.")
    status: LinkStatus = Field(description="The effective status: an active link past `expires_at` reads `expired`.")
    amount: str = Field(pattern=r"^[0-9]+(\.[0-9]+)?$",
                        description="Decimal string with the currency's ISO 4217 decimals (\"25.00\", \"1200\" JPY).")
    amount_minor: MinorUnits = Field(ge=1)
    currency: str = Field(pattern="^[A-Z]{3}$")
    description: str
    reference: str | None
    customer: CustomerOut
    metadata: dict[str, str]
    created_at: str = Field(json_schema_extra=_DATE_TIME)
    expires_at: str = Field(json_schema_extra=_DATE_TIME)
    paid_at: str | None = Field(json_schema_extra=_DATE_TIME)
    cancelled_at: str | None = Field(json_schema_extra=_DATE_TIME)
    livemode: bool = Field(description="false: a test-mode link (sandbox, Stripe test keys, PortOne sandbox); "
                                       "no real money moves.")
    amount_refunded: str = Field(pattern=_AMOUNT_OUT, description="Refunded so far (confirmed by the provider).")
    amount_refunded_minor: MinorUnits = Field(ge=0)
    payments: list[PaymentOut] = Field(description="Oldest first, each with its refunds.")
    invoice_number: str | None = Field(description="INV-2026-0001: given to a link with line items when it is "
                                       "made, and to any other link when it is paid; unique per shop.")
    line_items: list[LineItemOut] | None = Field(description="null: a link with one amount.")
    subtotal: str = Field(pattern=_AMOUNT_OUT, description="The lines' amounts before discount and tax; a link "
                          "with one amount: the amount.")
    subtotal_minor: MinorUnits = Field(ge=0)
    discount: str = Field(pattern=_AMOUNT_OUT)
    discount_minor: MinorUnits = Field(ge=0)
    tax: str = Field(pattern=_AMOUNT_OUT)
    tax_minor: MinorUnits = Field(ge=0)
    total: str = Field(pattern=_AMOUNT_OUT, description="subtotal - discount + tax; equals `amount`.")
    total_minor: MinorUnits = Field(ge=1)
    reusable: bool = Field(description="true: takes many payments (core/reusable.py).")
    max_payments: int | None
    stock: int | None
    max_total: str | None = Field(pattern=_AMOUNT_OUT)
    max_total_minor: MinorUnits | None
    quantity: QuantityOut | None = Field(description="null: one unit per payment.")
    amount_mode: Literal["fixed", "customer_chooses"]
    min_amount: str | None = Field(pattern=_AMOUNT_OUT)
    min_amount_minor: MinorUnits | None
    max_amount: str | None = Field(pattern=_AMOUNT_OUT)
    max_amount_minor: MinorUnits | None
    suggested_amounts: list[str]
    suggested_amounts_minor: list[int]
    split: SplitOut | None
    payments_count: int = Field(ge=0, description="Payments that counted.")
    units_sold: int = Field(ge=0)
    amount_collected: str = Field(pattern=_AMOUNT_OUT)
    amount_collected_minor: MinorUnits = Field(ge=0)


class LinkList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: list[Link]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null on the last page."
    )


# ---------------------------------------------------------------- recurring series

SERIES_ID_PATTERN = "^ser_[a-z2-7]{1,40}$"


class ScheduleIn(_Strict):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "examples": [{"every": "month", "count": 6, "start_at": "2027-01-31T09:00:00+08:00"}]})
    every: Literal["week", "month", "year"] = Field(description="The period's unit, on the shop's calendar.")
    interval: MinorUnits = Field(1, ge=1, le=52, description="Every `interval` weeks / months / years (2: fortnightly "
                          "with `week`).")
    count: MinorUnits = Field(None, ge=1, le=1000,  # type: ignore[assignment]  # absent, never null
                       description="How many links in all; absent: until `until`, or until cancelled.")
    until: str = Field(  # type: ignore[assignment]  # absent, never null
        None, pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", json_schema_extra={"format": "date"},
        description="The last day (shop's time zone) a period may start.")
    start_at: str = Field(  # type: ignore[assignment]  # absent, never null
        None, json_schema_extra={"format": "date-time"},
        description="ISO 8601 with a UTC offset: the first period (its link is made then), at most a year away. "
        "Default: now. Months follow the calendar in the shop's time zone: the 31st becomes the month's last "
        "day; the local time of day is kept across DST changes.")


# A link that sells many times (core/reusable.py): each period of a series is one bill, so these are refused
# there (unknown_field) rather than dropped.
REUSABLE_FIELDS = ("reusable", "max_payments", "stock", "max_total", "quantity", "amount_mode", "min_amount",
                   "max_amount", "suggested_amounts", "split")


def _series_schema(schema: JsonDict) -> None:
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for name in REUSABLE_FIELDS:
            properties.pop(name, None)
    schema.update({
        "oneOf": [{"required": ["amount"]}, {"required": ["amount_minor"]}, {"required": ["line_items"]}],
        "not": {"required": ["expires_at"]},
        "dependentRequired": {"discount": ["line_items"]},
        "examples": [{"amount": "150.00", "currency": "SGD", "description": "Tuition",
                      "customer": {"phone": "+6591234567"}, "schedule": {"every": "month", "count": 6}}]})


class CreateSeries(CreateLink):
    """A link's fields (without `expires_at`: each link uses `expires_in` or links.default_expiry, and
    without those of links that sell many times) plus the `schedule`. Each period a link is made from them
    and sent to the customer."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_series_schema)
    schedule: ScheduleIn


class SeriesLinkOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period: int = Field(ge=1, description="1 for the first link.")
    link_id: str
    due_at: str = Field(json_schema_extra=_DATE_TIME)


class ScheduleOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    every: Literal["week", "month", "year"]
    interval: int = Field(ge=1)
    count: int | None
    until: str | None
    start_at: str = Field(json_schema_extra=_DATE_TIME)


class Series(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=SERIES_ID_PATTERN)
    status: Literal["active", "completed", "cancelled"]
    schedule: ScheduleOut
    timezone: str = Field(description="The shop's time zone the calendar is counted in.")
    amount: str = Field(pattern=_AMOUNT_OUT)
    amount_minor: MinorUnits = Field(ge=1)
    currency: str = Field(pattern="^[A-Z]{3}$")
    description: str
    reference: str | None
    customer: CustomerOut
    links_made: int = Field(ge=0)
    next_at: str | None = Field(json_schema_extra=_DATE_TIME, description="When the next link is made; null "
                                "once completed or cancelled.")
    created_at: str = Field(json_schema_extra=_DATE_TIME)
    cancelled_at: str | None = Field(json_schema_extra=_DATE_TIME)
    links: list[SeriesLinkOut] = Field(description="The links made so far, oldest first.")


class SeriesList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: list[Series] = Field(description="Newest first (at most 100).")


# ---------------------------------------------------------------- merchant webhooks

WEBHOOK_ENDPOINT_ID_PATTERN = "^we_[a-z2-7]{1,40}$"
DELIVERY_ID_PATTERN = "^[0-9]{1,18}$"
WEBHOOK_EVENT_TYPES = ("link.created", "link.paid", "payment.succeeded", "link.expired", "link.cancelled",
                       "payment.refunded")


WebhookEventType = Literal["link.created", "link.paid", "payment.succeeded", "link.expired", "link.cancelled",
                           "payment.refunded"]


class CreateWebhookEndpoint(_Strict):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "examples": [{"url": "https://shop.example/hooks/paylinks", "events": ["link.paid", "payment.refunded"]}]})
    url: str = Field(min_length=8, max_length=2000, pattern=r"^https?://[^\x00-\x20\x7f]+$",
                     description="Where events are POSTed: https (http only in test mode); "
                     "loopback, link-local and private addresses are refused unless [webhooks] allow_private.")
    events: list[WebhookEventType] = Field(min_length=1, max_length=len(WEBHOOK_EVENT_TYPES),
                                           description="The events to send there (each once).")


class WebhookEndpointOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=WEBHOOK_ENDPOINT_ID_PATTERN)
    url: str
    events: list[str]
    status: Literal["enabled", "disabled"] = Field(
        description="disabled: every attempt failed for [webhooks] disable_after; a resend enables it again.")
    disabled_reason: str | None
    failing_since: str | None = Field(json_schema_extra=_DATE_TIME)
    created_at: str = Field(json_schema_extra=_DATE_TIME)


class WebhookEndpointCreated(WebhookEndpointOut):
    secret: str = Field(pattern="^whsec_[A-Za-z0-9+/=]+$",
                        description="The Standard Webhooks signing secret; shown only in this answer.")


class WebhookEndpointList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: list[WebhookEndpointOut]


class WebhookDelivery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int = Field(ge=1, description="The delivery's id (for resend).")
    event_id: str = Field(description="The event's id, sent as `webhook-id` (the same on a resend).")
    type: str
    status: Literal["pending", "sent", "dead"]
    attempts: int = Field(ge=0)
    response_code: int | None = Field(description="The HTTP status of the last attempt; null: none yet, or "
                                      "no answer (timeout, connection refused, address not allowed).")
    last_error: str | None
    link_id: str | None
    created_at: str = Field(json_schema_extra=_DATE_TIME)
    next_attempt_at: str | None = Field(json_schema_extra=_DATE_TIME)
    sent_at: str | None = Field(json_schema_extra=_DATE_TIME)


class WebhookDeliveryList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: list[WebhookDelivery]


# ---------------------------------------------------------------- errors

# Every code the API answers, with what it means (the document lists them per route).
ERROR_CODES: dict[str, str] = {
    "invalid_json": "The body is not a JSON object.",
    "invalid_type": "A field has the wrong JSON type.",
    "missing_field": "A required field is missing.",
    "unknown_field": "A field the API does not know.",
    "invalid_amount": "Not an amount, zero, or more decimals than the currency has.",
    "amount_too_large": "More than links.max_amount.",
    "invalid_currency": "Not an ISO 4217 currency code.",
    "invalid_description": "The description is empty or too long.",
    "missing_description": "The description is blank.",
    "invalid_expiry": "Not a time or duration, in the past, or beyond the maximum expiry.",
    "too_long": "A text is longer than allowed.",
    "invalid_text": "A text holds control characters or unpaired surrogates.",
    "invalid_email": "Not an email address.",
    "invalid_phone": "Not an international phone number.",
    "invalid_metadata": "A metadata key or value does not fit.",
    "too_many_keys": "Too many metadata keys.",
    "not_chargeable": "The payment provider cannot charge this amount in this currency (field names which).",
    "invalid_idempotency_key": "Idempotency-Key is not 1 to 255 printable ASCII characters.",
    "idempotency_conflict": "The Idempotency-Key was used before with a different body.",
    "invalid_status": "status is not a link status.",
    "invalid_limit": "limit is not an integer in range.",
    "invalid_livemode": "livemode is not true or false.",
    "invalid_cursor": "cursor does not name a link of yours.",
    "invalid_date": "from / to must be dates such as 2026-12-01.",
    "invalid_origin": "origin must be a chat platform's name or \"api\".",
    "unauthorized": "Missing, malformed, unknown or revoked API key.",
    "not_found": "No such link (or series) among yours, or no such endpoint.",
    "not_active": "The link is not active (already paid, expired or cancelled), or the series has ended.",
    "not_refundable": "The link (or payment) has nothing left to refund.",
    "payment_required": "The link has more than one refundable payment: say which with payment_id.",
    "invalid_payment": "payment_id does not name a payment of this link.",
    "method_not_allowed": "The endpoint does not accept that method.",
    "body_too_large": f"The body is larger than {MAX_BODY_BYTES} bytes.",
    "rate_limited": "Too many requests; retry after `Retry-After` seconds.",
    "database_busy": "The database is busy; retry after `Retry-After` seconds.",
    "internal_error": "Unexpected failure; the message carries an error id for the logs.",
    "invalid_url": "The webhook URL is not an allowed http(s) URL (https in live mode; no private addresses).",
    "invalid_events": "events names no event, or one that does not exist.",
    "too_many_endpoints": "The shop has as many webhook endpoints as allowed.",
    "endpoint_disabled": "The webhook endpoint is disabled (a resend enables it again).",
    "webhooks_not_configured": "The server has no [webhooks] secret_key (needed with PostgreSQL).",
    "invalid_line_items": "A line item (or the discount) does not fit; field names which.",
    "use_series": "A schedule was given to /api/v1/links: recurring charges are made with POST /api/v1/series.",
    "invalid_schedule": "The schedule does not fit (field names which part).",
    "invalid_quantity": "quantity does not fit (max below min, min above the stock).",
    "invalid_amount_mode": "amount_mode and the fields that go with it disagree.",
    "invalid_split": "split cannot work with this amount or these limits.",
    "invalid_code": "code is not 2 to 40 letters, digits, - or _.",
    "invalid_discount": "Not exactly one of percent_off and amount_off (with currency), or not above zero.",
    "invalid_percent": "percent_off is not a decimal string above 0 and at most 100.",
    "promo_exists": "The shop already has a promo code with this code.",
    "too_many_promos": "The shop has as many promo codes as allowed.",
    "invalid_link": "link_ids names a link that is not yours.",
}

# The columns of GET /api/v1/links/export.csv and /dashboard/export.csv, in order (appended to, never renamed).
EXPORT_COLUMNS = (
    "link_id", "created_at", "status", "livemode", "origin", "description", "reference", "customer_name",
    "customer_email", "customer_phone", "currency", "amount", "payment_id", "payment_status", "paid_at",
    "amount_paid", "amount_refunded", "provider", "provider_ref", "expires_at",
    # Invoices (core/invoices.py): items as "2 x Chocolate cake @ 25.00 (tax 9%)", joined by "; ".
    "invoice_number", "items", "subtotal", "discount", "tax", "total",
    # Promo codes (core/promos.py): the code a payment was made with and what it took off (amount_paid is after).
    "promo_code", "promo_discount",
)

_BODY_CODES = (
    "invalid_json", "invalid_type", "missing_field", "unknown_field", "invalid_amount", "amount_too_large",
    "invalid_currency", "invalid_description", "missing_description", "invalid_expiry", "too_long",
    "invalid_text", "invalid_email", "invalid_phone", "invalid_metadata", "too_many_keys",
    "not_chargeable", "invalid_idempotency_key", "invalid_line_items", "use_series",
)
# Answered by every authenticated route (the rate limiter and the database may refuse any request).
COMMON_ERRORS: dict[int, tuple[str, ...]] = {
    401: ("unauthorized",),
    429: ("rate_limited",),
    500: ("internal_error",),
    503: ("database_busy",),
}
# status -> codes, per operationId; COMMON_ERRORS are added to each.
ROUTE_ERRORS: dict[str, dict[int, tuple[str, ...]]] = {
    "createLink": {400: (*_BODY_CODES, "invalid_limit", "invalid_quantity", "invalid_amount_mode", "invalid_split"),
                   409: ("idempotency_conflict",), 413: ("body_too_large",)},
    "listLinks": {400: ("invalid_status", "invalid_livemode", "invalid_limit", "invalid_cursor")},
    "getLink": {404: ("not_found",)},
    "exportLinks": {400: ("invalid_status", "invalid_currency", "invalid_date", "invalid_origin")},
    "cancelLink": {404: ("not_found",), 409: ("not_active",)},
    "createWebhookEndpoint": {400: ("invalid_json", "invalid_type", "missing_field", "unknown_field", "too_long",
                                    "invalid_url", "invalid_events"),
                              409: ("too_many_endpoints",), 413: ("body_too_large",),
                              503: ("webhooks_not_configured",)},
    "listWebhookEndpoints": {},
    "getWebhookEndpoint": {404: ("not_found",)},
    "deleteWebhookEndpoint": {404: ("not_found",)},
    "testWebhookEndpoint": {404: ("not_found",), 409: ("endpoint_disabled",)},
    "listWebhookDeliveries": {404: ("not_found",)},
    "resendWebhookDelivery": {404: ("not_found",)},
    "refundLink": {400: ("invalid_json", "invalid_type", "unknown_field", "invalid_amount", "amount_too_large",
                         "too_long", "invalid_text", "payment_required", "invalid_payment",
                         "invalid_idempotency_key"),
                   404: ("not_found",), 409: ("not_refundable", "idempotency_conflict"), 413: ("body_too_large",)},
    "listLinkEvents": {404: ("not_found",)},
    "createSeries": {400: (*_BODY_CODES, "invalid_schedule"), 413: ("body_too_large",)},
    "listSeries": {},
    "getSeries": {404: ("not_found",)},
    "cancelSeries": {404: ("not_found",), 409: ("not_active",)},
    "createPromoCode": {400: ("invalid_json", "invalid_type", "missing_field", "unknown_field", "invalid_code",
                              "invalid_discount", "invalid_percent", "invalid_amount", "invalid_currency",
                              "invalid_limit", "invalid_expiry", "invalid_link"),
                        409: ("promo_exists", "too_many_promos"), 413: ("body_too_large",)},
    "listPromoCodes": {},
    "getPromoCode": {404: ("not_found",)},
    "deletePromoCode": {404: ("not_found",)},
}
# Headers that come with an error status.
ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer realm=\"paylinks\"`"}},
    429: {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait."}},
    503: {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait."}},
}


def errors_for(operation_id: str) -> dict[int, tuple[str, ...]]:
    merged = dict(COMMON_ERRORS)
    for status, codes in ROUTE_ERRORS.get(operation_id, {}).items():
        merged[status] = tuple(dict.fromkeys((*codes, *COMMON_ERRORS.get(status, ()))))
    return merged


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(description="Stable machine-readable code (listed per response).")
    message: str = Field(description="For people; may change.")
    field: str | None = Field(
        description="The field (dotted: `customer.email`), query parameter or header at fault "
        "(`amount`, `limit`, `Idempotency-Key`, `Authorization`, `body`…)."
    )


class Error(BaseModel):
    model_config = ConfigDict(extra="forbid")
    error: ErrorDetail


# pydantic error type -> our code; the field decides the rest (see `first_error`).
_TYPE_CODES = {
    "extra_forbidden": "unknown_field",
    "missing": "missing_field",
    "string_too_long": "too_long",
    "string_too_short": "too_long",
    "string_unicode": "invalid_text",
    "too_long": "too_many_keys",
}
_PATTERN_CODES = {
    "amount": "invalid_amount",
    "payment_id": "invalid_payment",
    "currency": "invalid_currency",
    "expires_in": "invalid_expiry",
    "description": "missing_description",
    "customer.phone": "invalid_phone",
}
_NUMBER_CODES = {"amount_minor": "invalid_amount"}
_LIMIT_FIELDS = frozenset({"max_payments", "stock", "quantity.min", "quantity.max", "split.ways", "max_redemptions"})


def first_error(exc: ValidationError) -> tuple[str, str, str]:
    """(code, message, field) for the first problem pydantic found, the field as a dotted path."""
    error = exc.errors(include_url=False, include_context=False)[0]
    loc = [str(part) for part in error["loc"]]
    kind = error["type"]
    if loc and loc[0] == "metadata":
        # Metadata keys are the client's own data, not field names; metadata is the field.
        if kind == "too_long":
            code = "too_many_keys"
        elif kind.startswith("string_too"):
            code = "invalid_metadata" if "[key]" in loc else "too_long"
        elif kind in ("string_unicode", "string_pattern_mismatch"):
            code = "invalid_text"
        elif kind.endswith("_type"):
            code = "invalid_type"
        else:
            code = "invalid_metadata"
        return code, f"metadata: {error['msg']}", "metadata"
    field = ".".join(loc) or "body"
    if loc and loc[0] in ("line_items", "discount") and (kind in ("too_short", "too_long") or (
            kind not in _TYPE_CODES and not kind.endswith("_type"))):
        return "invalid_line_items", f"{field}: {error['msg']}", field[:80]
    if kind in _TYPE_CODES:
        code = _TYPE_CODES[kind]
    elif kind == "string_pattern_mismatch":
        code = _PATTERN_CODES.get(field, "invalid_text")
        if code == "missing_description" and isinstance(error.get("input"), str) and error["input"].strip():
            code = "invalid_text"  # not blank: a control or direction character in it
    elif kind in ("greater_than_equal", "less_than_equal") and field in _LIMIT_FIELDS:
        code = "invalid_limit"  # a count out of range (stock, ways, quantity, redemptions)
    elif kind in ("greater_than_equal", "less_than_equal"):
        code = "amount_too_large" if kind == "less_than_equal" else _NUMBER_CODES.get(field, "invalid_amount")
    elif kind.endswith("_type") or kind in ("model_type", "dict_type"):
        code = "invalid_type"
    else:
        code = "invalid_type"
    if code == "missing_field":
        message = f"{field} is required"
    elif code == "unknown_field":
        message = f"{field[:60]!r} is not a field here (see /api/v1/openapi.json)"
    elif code == "invalid_text" and kind == "string_pattern_mismatch":
        given = error.get("input")
        if isinstance(given, str) and has_bidi_controls(given):
            message = f"{field} contains {BIDI_CONTROLS_TEXT}, which could make the text around it read differently"
        else:
            message = f"{field} contains control characters"
    elif code == "invalid_text":
        message = f"{field} contains characters that are not valid Unicode text"
    elif code == "missing_description":
        message = "description is required (what is being paid for) and must not be blank"
    else:
        message = f"{field}: {error['msg']}"
    return code, message, field[:80]


# Literal so the document states the one value of this header.
ReplayedHeader = Literal["true"]


# ---------------------------------------------------------------- promo codes

PROMO_CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{1,39}$"


class CreatePromoCode(_Strict):
    """Exactly one of `percent_off` and `amount_off` (with `currency`)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "oneOf": [{"required": ["percent_off"], "not": {"required": ["amount_off"]}},
                  {"required": ["amount_off", "currency"], "not": {"required": ["percent_off"]}}],
        "examples": [{"code": "SAVE10", "percent_off": "10", "max_redemptions": 100}]})
    code: str = Field(pattern=PROMO_CODE_PATTERN, description="Case-insensitive; stored upper case.")
    percent_off: str = Field(  # type: ignore[assignment]  # absent, never null
        None, pattern=r"^[0-9]{1,3}(\.[0-9]{1,2})?$", description="Decimal string, more than 0, at most 100.")
    amount_off: str = Field(  # type: ignore[assignment]  # absent, never null
        None, pattern=AMOUNT_PATTERN, description="Decimal string in `currency`.")
    currency: str = Field(None, pattern=CURRENCY_PATTERN)  # type: ignore[assignment]  # absent, never null
    max_redemptions: Count = Field(None, ge=1, le=1_000_000)  # type: ignore[assignment]  # absent, never null
    expires_at: str = Field(  # type: ignore[assignment]  # absent, never null
        None, json_schema_extra={"format": "date-time"}, description="ISO 8601 with a UTC offset, in the future.")
    link_ids: list[Annotated[str, Field(pattern=LINK_ID_PATTERN)]] = Field(
        None, max_length=100,  # type: ignore[arg-type]  # absent, never null
        description="Only these links of yours; default: all of them.")


class PromoCodeOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str
    percent_off: str | None
    amount_off: str | None = Field(pattern=_AMOUNT_OUT)
    amount_off_minor: MinorUnits | None
    currency: str | None
    max_redemptions: int | None
    times_redeemed: int = Field(ge=0, description="Paid checkouts that used the code.")
    expires_at: str | None = Field(json_schema_extra=_DATE_TIME)
    link_ids: list[str] | None
    created_at: str = Field(json_schema_extra=_DATE_TIME)


class PromoCodeList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: list[PromoCodeOut] = Field(description="Newest first.")
