"""Multi-workspace mode: the OAuth install flow through the real app and Bolt, the token exchange on the fake,
the installation kept in the paylinks database by slack_sdk's SQLAlchemy stores, and then used."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import MetaData, Table, select

from bots.config import Secret
from core.models import SLACK_BOTS, SLACK_INSTALLATIONS, SLACK_OAUTH_STATES, SLACK_TOKEN_COLUMNS
from core.ports import IncomingMessage, Permanent, Reply
from tests.adapters.slack_support import SlackLive, slack_settings
from tests.conftest import start_live_app
from tests.fakes.slack import FakeSlack, Installation

NEW_TEAM = "T0NEWSHOP"
NEW_TOKEN = "xoxb-installed-new-shop"


class Echo:
    async def handle(self, message: IncomingMessage) -> list[Reply]:
        return [Reply(f"hello {message.workspace}")]


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    server = await FakeSlack().start()
    yield server
    await server.close()


@pytest.fixture
async def oauth(database_url: str, fake: FakeSlack) -> AsyncIterator[SlackLive]:
    settings = slack_settings(database_url, fake, bot_token=Secret(""), client_id=fake.client_id,
                              client_secret=Secret(fake.client_secret))
    live, client = await start_live_app(settings)
    live.services.conversation = Echo()
    yield SlackLive(live, fake)
    await client.close()


async def _begin_install(oauth: SlackLive) -> tuple[str, str]:
    """GET /slack/install: the authorize URL's state, and the browser cookie that must come back with it."""
    response = await oauth.client.get("/slack/install", allow_redirects=False)
    assert response.status == 200
    html = await response.text()
    authorize = unescape(re.search(r'href="([^"]+/oauth/v2/authorize[^"]+)"', html).group(1))  # type: ignore[union-attr]
    parts = urlsplit(authorize)
    assert f"{parts.scheme}://{parts.netloc}" == oauth.fake.url  # GovSlack/fake: next to api_base_url
    query = parse_qs(parts.query)
    assert query["client_id"] == [oauth.fake.client_id]
    assert set(query["scope"][0].split(",")) == {"commands", "chat:write", "chat:write.public", "links:read",
                                                 "links:write", "files:write", "users:read"}
    assert query["redirect_uri"] == [f"{oauth.live.base_url}/slack/oauth_redirect"]
    cookies = response.headers.getall("Set-Cookie")
    [cookie] = [c.split(";", 1)[0] for c in cookies if c.startswith("slack-app-oauth-state=")]
    return query["state"][0], cookie


async def _rows(oauth: SlackLive, table: Table) -> list[Any]:
    async with oauth.services.db.read() as conn:
        return list((await conn.execute(select(table))).all())


async def test_installing_stores_the_workspace_and_its_bot_token_is_used(oauth: SlackLive) -> None:
    fake = oauth.fake
    assert fake.calls_to("auth.test") == []  # no bot token to test in this mode
    fake.add_oauth_code("code-1", Installation(team_id=NEW_TEAM, team_name="New Shop", bot_token=NEW_TOKEN))
    state, cookie = await _begin_install(oauth)
    response = await oauth.client.get("/slack/oauth_redirect", params={"code": "code-1", "state": state},
                                      headers={"Cookie": cookie}, allow_redirects=False)
    assert response.status == 200, await response.text()
    # The token exchange went to the configured API base with the app's credentials.
    [exchange] = fake.calls_to("oauth.v2.access")
    assert exchange.params["code"] == "code-1"
    assert exchange.params["redirect_uri"] == f"{oauth.live.base_url}/slack/oauth_redirect"
    [bot] = await _rows(oauth, SLACK_BOTS)
    assert (bot.team_id, bot.team_name) == (NEW_TEAM, "New Shop")
    # The token is stored encrypted (core/secrets.py), never as it is.
    assert NEW_TOKEN not in bot.bot_token and oauth.services.secrets.decrypt(bot.bot_token) == NEW_TOKEN
    [installation] = await _rows(oauth, SLACK_INSTALLATIONS)
    assert installation.team_id == NEW_TEAM and installation.client_id == fake.client_id
    assert NEW_TOKEN not in installation.bot_token
    assert await _rows(oauth, SLACK_OAUTH_STATES) == []  # the state is used up

    # A command from the new workspace is answered with that workspace's token …
    assert (await oauth.command("/paylinks", "help", team=NEW_TEAM)).status == 200
    [(_, body)] = await fake.wait_for_response()
    assert f"hello {NEW_TEAM}" in json.dumps(body)
    # … and the outbox's sender finds the token in the database as well.
    ref = await oauth.services.senders["slack"].send(f"{NEW_TEAM}:C0NEWS", Reply("✅ Paid"))
    [post] = fake.calls_to("chat.postMessage")
    assert post.token == NEW_TOKEN and post.channel == "C0NEWS"
    assert ref.address == f"{NEW_TEAM}:C0NEWS"


async def test_a_forged_state_installs_nothing(oauth: SlackLive) -> None:
    oauth.fake.add_oauth_code("code-2", Installation(team_id=NEW_TEAM, team_name="New Shop", bot_token=NEW_TOKEN))
    _, cookie = await _begin_install(oauth)
    forged = "00000000-0000-0000-0000-000000000000"
    response = await oauth.client.get("/slack/oauth_redirect", params={"code": "code-2", "state": forged},
                                      headers={"Cookie": f"slack-app-oauth-state={forged}"})
    assert response.status in (400, 401)
    # The real state without its browser cookie fails too (another browser started the install).
    state, _ = await _begin_install(oauth)
    response = await oauth.client.get("/slack/oauth_redirect", params={"code": "code-2", "state": state})
    assert response.status in (400, 401)
    assert cookie  # issued, just not presented
    assert oauth.fake.calls_to("oauth.v2.access") == []
    assert await _rows(oauth, SLACK_BOTS) == []


async def test_a_state_works_once(oauth: SlackLive) -> None:
    fake = oauth.fake
    fake.add_oauth_code("code-3", Installation(team_id=NEW_TEAM, team_name="New Shop", bot_token=NEW_TOKEN))
    state, cookie = await _begin_install(oauth)
    first = await oauth.client.get("/slack/oauth_redirect", params={"code": "code-3", "state": state},
                                   headers={"Cookie": cookie})
    assert first.status == 200
    again = await oauth.client.get("/slack/oauth_redirect", params={"code": "code-3", "state": state},
                                   headers={"Cookie": cookie})
    assert again.status == 401
    assert len(fake.calls_to("oauth.v2.access")) == 1


async def test_commands_from_a_workspace_that_never_installed_are_not_answered(oauth: SlackLive) -> None:
    await oauth.command("/charge", "25 cake", team="T0STRANGER")
    await oauth.adapter.idle()
    assert oauth.fake.calls_to("chat.postMessage") == []
    # Bolt tells the person where to install the app, and nothing else happens.
    [(_, body)] = oauth.fake.responses
    assert f"{oauth.live.base_url}/slack/install" in body["text"]
    with pytest.raises(Permanent, match="no installation"):
        await oauth.services.senders["slack"].send("T0STRANGER:C1", Reply("hi"))


async def test_single_workspace_mode_has_no_install_routes(sqlite_database_url: str, fake: FakeSlack) -> None:
    _, client = await start_live_app(slack_settings(sqlite_database_url, fake))
    try:
        assert (await client.get("/slack/install")).status == 404
        assert (await client.get("/slack/oauth_redirect")).status == 404
    finally:
        await client.close()


def _layout(table: Table) -> tuple[dict[str, tuple[str, int | None, bool, bool]], set[tuple[str, tuple[str, ...]]]]:
    columns = {
        c.name: (type(c.type).__name__, getattr(c.type, "length", None), bool(c.nullable), bool(c.primary_key))
        for c in table.columns
    }
    indexes = {(str(i.name), tuple(c.name for c in i.columns)) for i in table.indexes}
    return columns, indexes


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (SLACK_INSTALLATIONS,
         lambda m: SQLAlchemyInstallationStore.build_installations_table(m, "slack_installations")),
        (SLACK_BOTS, lambda m: SQLAlchemyInstallationStore.build_bots_table(m, "slack_bots")),
        (SLACK_OAUTH_STATES, lambda m: SQLAlchemyOAuthStateStore.build_oauth_states_table(m, "slack_oauth_states")),
    ],
)
def test_migrated_tables_match_slack_sdk_layout(ours: Table, theirs: Any) -> None:
    our_columns, our_indexes = _layout(ours)
    their_columns, their_indexes = _layout(theirs(MetaData()))
    assert our_indexes == their_indexes
    assert our_columns.keys() == their_columns.keys()
    for name, (kind, length, nullable, primary) in our_columns.items():
        if name in SLACK_TOKEN_COLUMNS:
            # Wider than slack_sdk's: the tokens are stored as Fernet ciphertext (core/secrets.py).
            their_kind, their_length, their_nullable, their_primary = their_columns[name]
            assert (kind, nullable, primary) == (their_kind, their_nullable, their_primary)
            assert length is not None and their_length is not None and length >= 4 * their_length
        else:
            assert (kind, length, nullable, primary) == their_columns[name], name
