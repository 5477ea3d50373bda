"""Identifiers. Public link ids are unguessable: 130 bits from the OS CSPRNG."""

from __future__ import annotations

import secrets

_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 base32, lowercase
# Every pair of base32 digits (10 bits): one lookup per two characters. base64.b32encode is pure Python
# here, and a link id is made on every link creation.
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)


def _b32(nbytes: int) -> str:
    """`nbytes` random bytes in lowercase unpadded base32: what base64.b32encode(…).rstrip("=").lower() writes."""
    return b32(secrets.token_bytes(nbytes))


def b32(raw: bytes) -> str:
    chars = -(-len(raw) * 8 // 5)
    pairs = -(-chars // 2)
    # The bits, left-aligned on whole digits (base32 pads the last digit with zero bits), as 10-bit pairs.
    number = int.from_bytes(raw, "big") << (pairs * 10 - len(raw) * 8)
    text = "".join([_PAIRS[(number >> shift) & 1023] for shift in range(pairs * 10 - 10, -1, -10)])
    return text[:chars]


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
