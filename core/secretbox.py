"""Secrets we must be able to read back (webhook signing secrets) are kept sealed with AES-256-GCM.

The key is `[webhooks] secret_key` (32 bytes, URL-safe base64); left empty on SQLite, a key file is made
beside the database on first use (`paylinks-secret.key`, mode 0600), so the embedded default works
without a setting while the database file alone never reveals a secret.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = "v1"
KEY_FILE_NAME = "paylinks-secret.key"


class SecretBoxError(ValueError):
    """A key that is missing or malformed, or a sealed value this key cannot open."""


def new_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _decode_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except ValueError:
        raise SecretBoxError("the secret key is not URL-safe base64") from None
    if len(key) != 32:
        raise SecretBoxError("the secret key must be 32 bytes (44 characters of URL-safe base64)")
    return key


class SecretBox:
    def __init__(self, key: str) -> None:
        self._aead = AESGCM(_decode_key(key))

    def seal(self, plaintext: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), _VERSION.encode())
        return f"{_VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, sealed: str) -> str:
        version, _, data = sealed.partition(".")
        if version != _VERSION:
            raise SecretBoxError("sealed with an unknown version")
        raw = base64.urlsafe_b64decode(data)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], _VERSION.encode()).decode()
        except InvalidTag:
            raise SecretBoxError("sealed with another key ([webhooks] secret_key changed?)") from None


def key_from_file(path: Path) -> str:
    """The key kept in `path`, made (readable by this user only) when it does not exist yet."""
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    key = new_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    return key
