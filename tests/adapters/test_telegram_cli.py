"""`paylinks telegram set-webhook | delete-webhook | webhook-info` against the fake Bot API server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.telegram.cli import check_webhook_url
from adapters.telegram.config import TelegramConfigError
from bots.cli import main
from tests.fakes.telegram import FakeTelegram

TOKEN = "123456:TEST-cli-token"
SECRET = "cli-secret_1"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(TOKEN) as server:
        yield server


def config(tmp_path: Path, fake: FakeTelegram, *, mode: str = "webhook", secret: str = SECRET) -> str:
    path = tmp_path / "paylinks.toml"
    path.write_text(
        f'[server]\npublic_base_url = "https://pay.example.com"\n'
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/x.db"\n'
        f'[telegram]\nenabled = true\ntoken = "{TOKEN}"\nmode = "{mode}"\nwebhook_secret = "{secret}"\n'
        f'api_base_url = "{fake.url}"\n'
    )
    return str(path)


async def paylinks(*argv: str) -> int:
    # main() runs its own event loop (asyncio.run), so it gets a thread; the fake keeps serving in ours.
    return await asyncio.to_thread(main, list(argv))


async def test_set_webhook_registers_url_secret_and_update_types(
    tmp_path: Path, fake: FakeTelegram, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await paylinks("--config", config(tmp_path, fake), "telegram", "set-webhook") == 0
    (call,) = fake.calls_to("setWebhook")
    assert call.params["url"] == "https://pay.example.com/telegram/webhook"
    assert call.params["secret_token"] == SECRET
    assert {"message", "inline_query", "chosen_inline_result", "my_chat_member"} <= set(
        call.params["allowed_updates"])
    out, err = capsys.readouterr()
    assert out.strip() == "https://pay.example.com/telegram/webhook"
    assert TOKEN not in out + err and SECRET not in out + err

    assert await paylinks("--config", config(tmp_path, fake), "telegram", "webhook-info") == 0
    assert "https://pay.example.com/telegram/webhook" in capsys.readouterr().out
    assert await paylinks("--config", config(tmp_path, fake), "telegram", "delete-webhook") == 0
    assert fake.webhook == {}


async def test_set_webhook_refuses_polling_mode(
    tmp_path: Path, fake: FakeTelegram, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await paylinks("--config", config(tmp_path, fake, mode="polling"), "telegram", "set-webhook") == 2
    assert "polling" in capsys.readouterr().err
    assert fake.calls_to("setWebhook") == []


async def test_set_webhook_refuses_an_empty_secret(
    tmp_path: Path, fake: FakeTelegram, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await paylinks("--config", config(tmp_path, fake, secret=""), "telegram", "set-webhook") == 2
    assert "webhook_secret is required" in capsys.readouterr().err
    assert fake.calls_to("setWebhook") == []


async def test_telegram_refusing_is_reported_without_the_token(
    tmp_path: Path, fake: FakeTelegram, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.fail("setWebhook", status=400, description="Bad Request: bad webhook: HTTPS url must be provided")
    assert await paylinks("--config", config(tmp_path, fake), "telegram", "set-webhook") == 2
    err = capsys.readouterr().err
    assert "https url must be provided" in err.lower() and TOKEN not in err


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://pay.example.com/telegram/webhook", "https"),
        ("https://pay.example.com:8080/telegram/webhook", "ports"),
    ],
)
def test_telegrams_own_servers_need_https_on_a_webhook_port(url: str, problem: str) -> None:
    with pytest.raises(TelegramConfigError, match=problem):
        check_webhook_url(url, "https://api.telegram.org")


def test_good_webhook_urls_and_self_hosted_servers_pass() -> None:
    check_webhook_url("https://pay.example.com/telegram/webhook", "https://api.telegram.org")
    check_webhook_url("https://pay.example.com:8443/telegram/webhook", "https://api.telegram.org")
    check_webhook_url("http://127.0.0.1:8080/telegram/webhook", "http://127.0.0.1:8081")  # local Bot API
