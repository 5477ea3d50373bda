"""Business limits in one place: the API, the chat grammar, the CLI and LinkService read them here."""

from __future__ import annotations

from datetime import timedelta

from email_validator import EmailNotValidError, validate_email

DESCRIPTION_MAX = 500  # characters
REFERENCE_MAX = 100  # characters
MAX_EXPIRY = timedelta(days=365)


def normalise_email(text: str) -> str:
    """The address as it should be stored (domain lower-cased); ValueError with a human message if invalid."""
    try:
        # No DNS look-up: links are made offline too, and tests never touch the network.
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"“{text}” is not an email address: {exc}") from None
