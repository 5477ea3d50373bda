"""Secrets at rest: stored values encrypted with Fernet under `[security] secret_key`.

A stored value is `fernet:` + a Fernet token. Reading tolerates legacy plaintext (rows written before
encryption, e.g. chat bot tokens): such a value is returned as it is, and the next write or
`paylinks rotate-secrets` encrypts it. Rotation: the old key moves to `[security] previous_secret_keys`;
MultiFernet reads with any of the keys and `rotate` re-encrypts under the first.

When `[security] secret_key` is empty, the key lives in `paylinks.key` (mode 0600) beside the SQLite
database, created by the first command that needs it. A PostgreSQL deployment usually runs several
processes, possibly on several machines, so a key file made by one of them could differ from another's:
there the key must be configured, and `SecretBox` refuses with a message naming the setting.

The key must be backed up with the database: without it the stored secrets cannot be read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

log = logging.getLogger("paylinks.secrets")

PREFIX = "fernet:"
KEY_FILE_NAME = "paylinks.key"
SETTING = "security.secret_key (PAYLINKS_SECURITY__SECRET_KEY)"


class SecretsError(Exception):
    """The secrets cannot be read or written (no key, a wrong key); the message names the setting."""


def generate_key() -> str:
    return Fernet.generate_key().decode()


def _fernet(key: str, what: str) -> Fernet:
    try:
        return Fernet(key.strip().encode())
    except (ValueError, TypeError):
        raise SecretsError(f"{what}: not a Fernet key (32 url-safe base64-encoded bytes; make one with "
                           "`python -c \"from cryptography.fernet import Fernet; print(Fernet.generate_key()"
                           ".decode())\"`)") from None


def key_file_for(database_url: str) -> Path | None:
    """Where the key file lives for this database: beside a SQLite file; None for other databases."""
    if not database_url.startswith("sqlite"):
        return None
    _, _, rest = database_url.partition(":///")
    path = rest.split("?", 1)[0]
    if not path or path == ":memory:":
        return Path.cwd() / KEY_FILE_NAME
    return Path(path).expanduser().resolve().parent / KEY_FILE_NAME


def _read_or_create_key_file(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole under a temporary name, then linked into place: another process starting at the same
    # moment either wins the link (and we read its key) or finds the complete file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (generate_key() + "\n").encode())
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)
        created = True
    except FileExistsError:
        created = False
    finally:
        temporary.unlink(missing_ok=True)
    if created:
        # Said once, by the process that made it: the operator must back it up with the database.
        log.warning("created a new secret key in %s (mode 0600); back it up together with the database, "
                    "without it the stored secrets cannot be read", path)
    return path.read_text().strip()


class SecretBox:
    """Encrypts and decrypts stored secrets. The key is loaded on first use, not when built."""

    def __init__(self, *, secret_key: str = "", previous_keys: Sequence[str] = (),
                 key_file: Path | None = None) -> None:
        self._secret_key = secret_key
        self._previous_keys = tuple(k for k in previous_keys if k)
        self._key_file = key_file
        self._multi: MultiFernet | None = None
        self._primary: Fernet | None = None

    def __repr__(self) -> str:  # never the keys
        return f"SecretBox(key_file={self._key_file!s}, previous_keys={len(self._previous_keys)})"

    def _keys(self) -> MultiFernet:
        if self._multi is None:
            if self._secret_key:
                primary = _fernet(self._secret_key, "security.secret_key")
            elif self._key_file is not None:
                primary = _fernet(_read_or_create_key_file(self._key_file), str(self._key_file))
            else:
                raise SecretsError(f"{SETTING} is required to store secrets in this database (several "
                                   "processes must share one key; put the same key in every one's settings)")
            previous = [_fernet(k, "security.previous_secret_keys") for k in self._previous_keys]
            self._primary = primary
            self._multi = MultiFernet([primary, *previous])
        return self._multi

    @staticmethod
    def is_encrypted(stored: str) -> bool:
        return stored.startswith(PREFIX)

    def encrypt(self, plaintext: str) -> str:
        return PREFIX + self._keys().encrypt(plaintext.encode()).decode()

    def encrypt_if_plain(self, value: str | None) -> str | None:
        """For writing a value that may already be stored encrypted (a copy of a stored row)."""
        if value is None or value == "" or self.is_encrypted(value):
            return value
        return self.encrypt(value)

    def decrypt(self, stored: str | None) -> str | None:
        """The plaintext; a legacy plaintext value comes back unchanged."""
        if stored is None or not self.is_encrypted(stored):
            return stored
        try:
            return self._keys().decrypt(stored[len(PREFIX):].encode()).decode()
        except InvalidToken:
            raise SecretsError(f"a stored secret cannot be decrypted with {SETTING} or "
                               "security.previous_secret_keys; was the key changed without keeping the old one "
                               "in security.previous_secret_keys?") from None

    def rotate(self, stored: str | None) -> str | None:
        """The value encrypted under the current key (legacy plaintext gets encrypted); None: unchanged."""
        if stored is None or stored == "":
            return None
        if not self.is_encrypted(stored):
            return self.encrypt(stored)
        keys = self._keys()
        token = stored[len(PREFIX):].encode()
        try:
            # Already under the current key: unchanged (rotating it would only churn the row).
            assert self._primary is not None
            self._primary.decrypt(token)
            return None
        except InvalidToken:
            pass
        try:
            return PREFIX + keys.rotate(token).decode()
        except InvalidToken:
            raise SecretsError(f"a stored secret cannot be decrypted with {SETTING} or "
                               "security.previous_secret_keys") from None
