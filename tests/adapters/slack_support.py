"""Helpers for the Slack app tests: signed requests as Slack sends them, and the app wired to the fake."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from slack_sdk.signature import SignatureVerifier

from adapters.slack import SLACK_ADAPTER, SlackAdapter
from bots.config import Secret, Settings
from tests.conftest import LiveApp, make_settings
from tests.fakes.slack import FakeSlack

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM = "T0PAYLINKS"
CHANNEL = "C0SALES"
USER = "U0ALICE"


def slack_settings(database_url: str, fake: FakeSlack, **overrides: Any) -> Settings:
    settings = make_settings(database_url)
    settings.slack.enabled = True
    settings.slack.signing_secret = Secret(SIGNING_SECRET)
    settings.slack.api_base_url = fake.api_url
    settings.slack.bot_token = Secret(fake.bot_token)
    for key, value in overrides.items():
        setattr(settings.slack, key, value)
    return settings


def sign(body: str, *, timestamp: int | None = None, secret: str = SIGNING_SECRET) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    assert signature is not None
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}


def slash_body(fake: FakeSlack, command: str, text: str, *, channel: str = CHANNEL, user: str = USER,
               team: str = TEAM, response_key: str = "r1") -> str:
    return urlencode({
        "token": "legacy-verification-token", "team_id": team, "team_domain": "cakeshop", "channel_id": channel,
        "channel_name": "sales", "user_id": user, "user_name": "alice", "command": command, "text": text,
        "api_app_id": "A0PAYLINKS", "is_enterprise_install": "false", "response_url": fake.response_url(response_key),
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
    })


def event_body(event: Mapping[str, Any], *, team: str = TEAM) -> str:
    return json.dumps({
        "token": "legacy-verification-token", "team_id": team, "api_app_id": "A0PAYLINKS",
        "event": dict(event), "type": "event_callback", "event_id": f"Ev{int(time.time() * 1000)}",
        "event_time": int(time.time()), "authorizations": [{"team_id": team, "user_id": "U0BOT", "is_bot": True}],
    })


class SlackLive:
    """The real app with Slack enabled, its test client and the fake Slack it talks to."""

    def __init__(self, live: LiveApp, fake: FakeSlack) -> None:
        self.live = live
        self.fake = fake

    @property
    def client(self) -> TestClient:
        return self.live.client

    @property
    def services(self) -> Any:
        return self.live.services

    @property
    def adapter(self) -> SlackAdapter:
        return self.live.app[SLACK_ADAPTER]

    async def post(self, body: str, *, content_type: str, headers: Mapping[str, str] | None = None,
                   **signing: Any) -> ClientResponse:
        all_headers = {"Content-Type": content_type, **sign(body, **signing)}
        all_headers.update(headers or {})
        return await self.client.post("/slack/events", data=body.encode(), headers=all_headers)

    async def command(self, command: str, text: str, **kwargs: Any) -> ClientResponse:
        signing = {k: kwargs.pop(k) for k in ("timestamp", "secret") if k in kwargs}
        body = slash_body(self.fake, command, text, **kwargs)
        return await self.post(body, content_type="application/x-www-form-urlencoded", **signing)

    async def event(self, event: Mapping[str, Any], **kwargs: Any) -> ClientResponse:
        return await self.post(event_body(event, **kwargs), content_type="application/json")
