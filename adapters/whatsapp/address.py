"""WhatsApp addresses ("whatsapp:+6591234567"): the one rule for turning a phone number into one."""

from __future__ import annotations

import re

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def whatsapp_address(number: str) -> str:
    """"+65 9123 4567", "6591234567" or "whatsapp:+6591234567" -> "whatsapp:+6591234567"; ValueError otherwise."""
    raw = number.strip()
    if raw.lower().startswith("whatsapp:"):
        raw = raw[len("whatsapp:"):]
    digits = re.sub(r"[\s\-().]", "", raw)
    if not digits.startswith("+"):
        digits = "+" + digits
    if not _E164.match(digits):
        raise ValueError(f"{number!r} is not a phone number in international form (try +6591234567)")
    return f"whatsapp:{digits}"


def customer_address(contact: str | None) -> str | None:
    """A link's customer phone as an address; None without one. Only numbers written with their country
    code ("+65…") qualify: guessing one for "91234567" could message a stranger."""
    if not contact:
        return None
    number = contact.strip().removeprefix("whatsapp:").strip()
    if not number.startswith("+"):
        return None
    try:
        return whatsapp_address(number)
    except ValueError:
        return None


def member_address(user_id: str) -> str | None:
    """A member's WhatsApp user id (their number) as an address; None when it is not one."""
    try:
        return whatsapp_address(user_id)
    except ValueError:
        return None
