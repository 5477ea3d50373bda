"""Secrets at rest (issue 12, point 2): Fernet under [security] secret_key, the key file beside a SQLite
database, rotation, legacy plaintext, and the shops' accounts stored encrypted on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db import Database
from core.merchants import MerchantService
from core.models import ProviderAccount
from core.provider_accounts import ProviderAccounts
from core.secrets import KEY_FILE_NAME, SecretBox, SecretsError, generate_key, key_file_for
from core.sql import table

SECRET = "sk_live_do_not_show_me_4321"


def test_values_are_encrypted_and_read_back() -> None:
    box = SecretBox(secret_key=generate_key())
    stored = box.encrypt(SECRET)
    assert stored.startswith("fernet:") and SECRET not in stored
    assert box.decrypt(stored) == SECRET
    assert box.encrypt(SECRET) != stored  # a fresh IV each time
    assert "do_not_show" not in repr(box)


def test_legacy_plaintext_reads_as_it_is_and_is_encrypted_by_rotation() -> None:
    box = SecretBox(secret_key=generate_key())
    assert box.decrypt("xoxb-legacy-token") == "xoxb-legacy-token"
    rotated = box.rotate("xoxb-legacy-token")
    assert rotated is not None and box.decrypt(rotated) == "xoxb-legacy-token"
    assert box.rotate(rotated) is None  # already under the current key: unchanged
    assert box.encrypt_if_plain(rotated) == rotated


def test_rotation_moves_values_to_the_new_key() -> None:
    old, new = generate_key(), generate_key()
    stored = SecretBox(secret_key=old).encrypt(SECRET)
    with pytest.raises(SecretsError, match=r"security\.secret_key") as caught:
        SecretBox(secret_key=new).decrypt(stored)
    assert SECRET not in str(caught.value)
    both = SecretBox(secret_key=new, previous_keys=[old])
    assert both.decrypt(stored) == SECRET
    rotated = both.rotate(stored)
    assert rotated is not None and SecretBox(secret_key=new).decrypt(rotated) == SECRET


def test_a_bad_key_is_refused_with_the_setting_named() -> None:
    with pytest.raises(SecretsError, match=r"security\.secret_key: not a Fernet key"):
        SecretBox(secret_key="too short").encrypt(SECRET)


def test_the_key_file_is_made_once_beside_the_sqlite_database(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    key_file = key_file_for(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'paylinks.db'}")
    assert key_file == tmp_path / "data" / KEY_FILE_NAME
    assert not key_file.exists()
    stored = SecretBox(key_file=key_file).encrypt(SECRET)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    said = [r for r in caplog.records if "created a new secret key" in r.getMessage()]
    assert len(said) == 1 and "back it up" in said[0].getMessage()
    # Another process (another box) reads the same file and says nothing.
    assert SecretBox(key_file=key_file).decrypt(stored) == SECRET
    assert len([r for r in caplog.records if "created a new secret key" in r.getMessage()]) == 1
    assert key_file.read_text().strip() not in caplog.text
    assert list(key_file.parent.iterdir()) == [key_file]  # no temporary file left behind


def test_postgresql_without_a_key_refuses_naming_the_setting() -> None:
    assert key_file_for("postgresql+asyncpg://u@h/db") is None
    box = SecretBox(key_file=None)
    assert box.decrypt("plain") == "plain"  # reading legacy plaintext needs no key
    with pytest.raises(SecretsError, match=r"security\.secret_key \(PAYLINKS_SECURITY__SECRET_KEY\) is required"):
        box.encrypt(SECRET)


async def test_shop_accounts_are_stored_encrypted_and_rotated(db: Database) -> None:
    old, new = generate_key(), generate_key()
    merchant = await MerchantService(db, default_currency="SGD", default_locale="en_SG").create("Shop")
    accounts = ProviderAccounts(db, SecretBox(secret_key=old))
    saved = await accounts.set(merchant.id, "stripe",
                               secrets={"secret_key": SECRET, "webhook_secret": "whsec_long_abcd"})
    assert saved.version == 1 and SECRET not in repr(saved)
    assert saved.hints() == {"secret_key": "…4321", "webhook_secret": "…abcd"}
    short = await accounts.set(merchant.id, "stripe", secrets={"secret_key": "sk_4321", "webhook_secret": "whsec_abcd"})
    assert short.hints() == {"secret_key": "…", "webhook_secret": "…"}  # too short to show any of it
    async with db.read() as conn:
        [row] = (await conn.execute(select(table(ProviderAccount)))).all()
    assert SECRET not in row.secrets and "whsec_long_abcd" not in row.secrets
    again = await accounts.set(merchant.id, "stripe", secrets={"secret_key": SECRET, "webhook_secret": "whsec_efgh"})
    assert again.version == 3
    assert (await accounts.version_of(merchant.id)) is not None

    rotated = ProviderAccounts(db, SecretBox(secret_key=new, previous_keys=[old]))
    assert await rotated.rotate() == 1
    assert await rotated.rotate() == 0  # nothing left under the old key
    only_new = ProviderAccounts(db, SecretBox(secret_key=new))
    found = await only_new.get(merchant.id)
    assert found is not None and found.secrets["webhook_secret"] == "whsec_efgh" and found.version == 3
    with pytest.raises(SecretsError):
        await ProviderAccounts(db, SecretBox(secret_key=old)).get(merchant.id)
