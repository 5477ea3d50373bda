"""core.models.construct builds what model_construct builds; core.ids' base32 is RFC 4648's."""

from __future__ import annotations

import base64
import os
import re
from datetime import timedelta

import pytest

from core import ids, reusable
from core.models import LinkStatus, Payment, PaymentLink, PaymentStatus, construct, values_of
from tests.clock import T0


def link_row() -> dict[str, object]:
    """A full payment_link row, in column order (as select(LINKS) gives it)."""
    return {
        "id": "lnk", "merchant_id": "mer_1", "amount_minor": 2500, "currency": "SGD", "description": "cake",
        "reference": None, "customer_name": None, "customer_email": None, "customer_phone": None,
        "status": LinkStatus.ACTIVE, "created_at": T0, "expires_at": T0 + timedelta(days=7), "paid_at": None,
        "cancelled_at": None, "meta": {"order": "42"}, "origin_platform": None, "origin_address": None,
        "origin_message": None, "created_by_member_id": None, "checkout_attempts": 0, "idempotency_key": None,
        "request_hash": None, "livemode": False, "reminded_at": None, "auto_reminded_at": None,
        **reusable.columns(None),
    }


def same(a: object, b: object) -> None:
    for attribute in ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__"):
        assert getattr(a, attribute) == getattr(b, attribute), attribute
    assert list(vars(a)) == list(vars(b))  # the same field order: model_dump and JSON keep it


def test_a_full_row_is_built_directly_as_model_construct_builds_it() -> None:
    row = link_row()
    assert tuple(row) == tuple(PaymentLink.model_fields)  # the fast path is the one taken
    built = construct(PaymentLink, row)
    same(built, PaymentLink.model_construct(**row))
    assert built.model_dump() == PaymentLink.model_construct(**row).model_dump()
    assert built.amount_minor == 2500 and built.status is LinkStatus.ACTIVE
    # Its own dict: changing the row afterwards does not change the link.
    row["description"] = "changed"
    assert built.description == "cake"


@pytest.mark.parametrize("change", ["missing", "reordered", "extra"])
def test_anything_but_a_full_row_goes_through_model_construct(change: str) -> None:
    row = link_row()
    if change == "missing":
        del row["meta"]
    elif change == "reordered":
        row = dict(reversed(row.items()))
    else:
        row["unknown"] = 1
    same(construct(PaymentLink, row), PaymentLink.model_construct(**row))


def test_other_models_too() -> None:
    row = {name: None for name in Payment.model_fields} | {"status": PaymentStatus.SUCCEEDED, "amount_minor": 5}
    same(construct(Payment, row), Payment.model_construct(**row))


def test_base32_is_rfc_4648_lowercase_unpadded() -> None:
    for size in range(0, 41):
        for _ in range(50):
            raw = os.urandom(size)
            assert ids.b32(raw) == base64.b32encode(raw).decode().rstrip("=").lower()
    assert re.fullmatch(r"[a-z2-7]{28}", ids.link_id())
    assert re.fullmatch(r"evt_[a-z2-7]{20}", ids.prefixed("evt", 12))


def test_values_of_reads_what_the_attributes_hold() -> None:
    for link in (construct(PaymentLink, link_row()), PaymentLink.model_construct(**link_row()),
                 PaymentLink(**link_row())):
        values = values_of(link)
        assert {name: values[name] for name in PaymentLink.model_fields} == \
            {name: getattr(link, name) for name in PaymentLink.model_fields}
