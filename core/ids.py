"""Identifiers. Public link ids are unguessable: 130 bits from the OS CSPRNG."""

from __future__ import annotations

import base64
import secrets


def _b32(nbytes: int) -> str:
    return base64.b32encode(secrets.token_bytes(nbytes)).decode().rstrip("=").lower()


def link_id() -> str:
    # 17 bytes = 136 bits -> 28 base32 chars; lowercase letters and digits only, easy to read aloud.
    return _b32(17)


def prefixed(prefix: str, nbytes: int = 8) -> str:
    return f"{prefix}_{_b32(nbytes)}"


def api_secret(prefix: str) -> str:
    """`prefix` is "pl_test_" or "pl_live_" (core.merchants): which kind of key it is shows at a glance."""
    return f"{prefix}{secrets.token_urlsafe(32)}"


def invite_code() -> str:
    # Typed by hand into a chat: short, no ambiguous characters, still 40 bits and single-use with a TTL.
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(8))
