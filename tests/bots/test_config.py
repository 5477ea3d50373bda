"""Settings: defaults, file, env overrides, and errors that name the key (issue 2, point 2)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bots.config import ConfigError, Secret, describe, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_embedded_defaults_serve_without_a_file() -> None:
    settings = load_settings(env={})
    assert settings.database.url == "sqlite+aiosqlite:///./paylinks.db"
    assert settings.payments.provider == "sandbox"
    assert settings.links.default_expiry == timedelta(days=7)
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8080)


def test_example_file_documents_every_key() -> None:
    text = (ROOT / "config.example.toml").read_text()
    # Loading it refuses any key no model declares, so the example documents nothing that is not there.
    settings = load_settings(ROOT / "config.example.toml", env={})
    for section, values in describe(settings).items():
        assert f"[{section}]" in text
        for key, value in values.items():
            if isinstance(value, dict) and key != "templates":
                assert f"[{section}.{key}]" in text
                for sub in value:
                    assert f"\n{sub} = " in text, f"{section}.{key}.{sub} missing from config.example.toml"
            else:
                assert f"\n{key} = " in text or f"[{section}.{key}]" in text, f"{section}.{key} undocumented"
    # Every key (or run of related keys) is introduced by a comment: documented, not just listed.
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if " = " in line and not line.startswith("#"):
            before = number - 1
            while before >= 0 and " = " in lines[before] and not lines[before].startswith("#"):
                before -= 1
            assert lines[before].startswith("#"), f"no comment documents: {line}"


def test_file_then_env_override(tmp_path: Path) -> None:
    path = tmp_path / "paylinks.toml"
    path.write_text('[server]\nport = 9001\n[links]\ndefault_currency = "sgd"\n[payments.sandbox]\n'
                    'webhook_secret = "from-file"\n')
    settings = load_settings(path, env={"PAYLINKS_SERVER__PORT": "9002", "PAYLINKS_TELEGRAM__ENABLED": "true"})
    assert settings.server.port == 9002
    assert settings.links.default_currency == "SGD"
    assert settings.telegram.enabled is True
    assert settings.payments.sandbox.webhook_secret.get_secret_value() == "from-file"
    assert isinstance(settings.payments.sandbox.webhook_secret, Secret)


def test_max_amount_is_a_decimal_from_a_number_or_a_string(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[links]\nmax_amount = 5000\n")
    assert load_settings(path, env={}).links.max_amount == Decimal("5000")
    assert load_settings(env={"PAYLINKS_LINKS__MAX_AMOUNT": "2500.50"}).links.max_amount == Decimal("2500.50")


def test_config_env_var_picks_the_file(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text('[links]\ndefault_expiry = "3d"\n')
    assert load_settings(env={"PAYLINKS_CONFIG": str(path)}).links.default_expiry == timedelta(days=3)


def test_nested_env_override() -> None:
    settings = load_settings(env={"PAYLINKS_PAYMENTS__SANDBOX__WEBHOOK_SECRET": "s3cret"})
    assert settings.payments.sandbox.webhook_secret.get_secret_value() == "s3cret"


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ('[server]\nprot = 1\n', {}, "unknown key: server.prot"),
        ('[nope]\nx = 1\n', {}, "unknown key: nope"),
        ('[server]\nport = "eighty"\n', {}, "server.port: expected an integer"),
        ('[telegram]\nenabled = "yes"\n', {}, "telegram.enabled: expected true or false"),
        ('[links]\ndefault_expiry = "soon"\n', {}, "links.default_expiry"),
        ('[links]\ndefault_currency = "XXQ"\n', {}, "links.default_currency"),
        ('[payments]\nprovider = "paypal"\n', {}, "payments.provider"),
        ('[links]\nmax_amount = "lots"\n', {}, "links.max_amount: 'lots' is not a number"),
        ('[links]\nmax_amount = 0\n', {}, "links.max_amount: must be greater than zero"),
        ('[links]\nmax_amount = true\n', {}, "links.max_amount: expected a number"),
        ("", {"PAYLINKS_SERVER__PORTS": "1"}, "PAYLINKS_SERVER__PORTS"),
        ("", {"PAYLINKS_SERVER__PORT": "x"}, "server.port"),
        ('[server\n', {}, "not valid TOML"),
        ('[payments.sandbox]\nwebhook_secret = 5\n', {}, "payments.sandbox.webhook_secret"),
        ('[payments.sandbox]\nsecret = "x"\n', {}, "unknown key: payments.sandbox.secret"),
        ('[outbox]\ntelegram_per_chat = "fast"\n', {}, "outbox.telegram_per_chat: 'fast' is not a rate"),
        ('[outbox]\nlease = "0s"\n', {}, "outbox.lease"),
        ('[whatsapp]\ntemplates = 3\n', {}, "whatsapp.templates"),
        ('[sms]\nenabled = true\n', {}, "whatsapp.account_sid: required when sms.enabled is true"),
        ('[sms]\nenabled = true\n[whatsapp]\naccount_sid = "AC' + "0" * 32 + '"\nauth_token = "t"\n', {},
         "sms.from_number"),
        ('[sms]\nenabled = true\nmessaging_service_sid = "MG1"\n[whatsapp]\naccount_sid = "AC' + "0" * 32
         + '"\nauth_token = "t"\n', {}, "sms.messaging_service_sid"),
        ('[outbox]\nsms_per_sender = "fast"\n', {}, "outbox.sms_per_sender: 'fast' is not a rate"),
        ("", {"PAYLINKS_PAYMENTS__SANDBOX__NOPE": "1"}, "PAYLINKS_PAYMENTS__SANDBOX__NOPE"),
        ("", {"PAYLINKS_TELEGRAM__ENABLED": "maybe"}, "telegram.enabled: expected true or false"),
        ("", {"PAYLINKS_PAYMENTS__SANDBOX": "x"}, "payments.sandbox: is a table"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, toml: str, env: dict[str, str], message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        load_settings(path, env=env)


def test_secrets_never_show_in_reprs_or_descriptions() -> None:
    settings = load_settings(env={"PAYLINKS_TELEGRAM__TOKEN": "123:ABCsecret"})
    assert "ABCsecret" not in repr(settings)
    assert "ABCsecret" not in str(describe(settings))


def test_a_model_key_missing_from_the_example_fails_the_documentation_check() -> None:
    # The check above walks every field of the loaded models; a field it cannot find in the text fails.
    text = (ROOT / "config.example.toml").read_text()
    described = describe(load_settings(env={}))
    keys = [(section, key) for section, values in described.items() for key in values]
    assert ("outbox", "telegram_per_chat") in keys and ("payments", "sandbox") in keys
    assert all(f"\n{key} = " in text or f"[{section}.{key}]" in text for section, key in keys)
    assert "\nno_such_key = " not in text


def test_public_base_url_follows_host_and_port_when_unset(tmp_path: Path) -> None:
    assert load_settings(env={}).server.public_base_url == "http://127.0.0.1:8080"
    assert load_settings(env={"PAYLINKS_SERVER__PORT": "8091"}).server.public_base_url == "http://127.0.0.1:8091"
    moved = load_settings(env={"PAYLINKS_SERVER__HOST": "10.1.2.3", "PAYLINKS_SERVER__PORT": "9000"})
    assert moved.server.public_base_url == "http://10.1.2.3:9000"
    # Listening on every interface: links point at loopback, not at 0.0.0.0.
    assert load_settings(env={"PAYLINKS_SERVER__HOST": "0.0.0.0"}).server.public_base_url == "http://127.0.0.1:8080"
    # The example file leaves it empty too, so a copied example follows the port as well.
    example = load_settings(ROOT / "config.example.toml", env={"PAYLINKS_SERVER__PORT": "8091"})
    assert example.server.public_base_url == "http://127.0.0.1:8091"
    # Set: used as given (without a trailing slash), whatever the port.
    path = tmp_path / "c.toml"
    path.write_text('[server]\nport = 9001\npublic_base_url = "https://pay.example.com/"\n')
    assert load_settings(path, env={}).server.public_base_url == "https://pay.example.com"


def test_links_printed_by_the_cli_follow_the_port(tmp_path: Path) -> None:
    from bots.services import build_services

    services = build_services(load_settings(env={"PAYLINKS_SERVER__PORT": "8091",
                                                 "PAYLINKS_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path}/p.db"}))
    assert services.links.url("abc").startswith("http://127.0.0.1:8091/")
