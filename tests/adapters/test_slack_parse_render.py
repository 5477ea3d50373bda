"""Pure Slack translation: slash commands → IncomingMessage, addresses, pay-page URLs, Reply → Block Kit."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.slack import render as slack_render
from adapters.slack.parse import (
    SlackAddress,
    SlackAddressError,
    command_text,
    link_id_from_url,
    make_address,
    parse_address,
    parse_slash_command,
    shared_links,
)
from adapters.slack.render import (
    BUTTON_TEXT_MAX,
    SECTION_TEXT_MAX,
    HomeData,
    LinkSummary,
    home_view,
    message_payload,
    mrkdwn,
    not_in_channel_reply,
    plain,
    reply_blocks,
    unfurl,
)
from adapters.slack.sender import thread_address
from core import markup as core_markup
from core.ports import Button, MessageRef, Reply

BASE = "https://pay.example.com"
LINK_ID = "abcdefghijklmnopqrstuvwxyz23"


@pytest.mark.parametrize(
    ("command", "text", "expected"),
    [
        ("/charge", "25 cake", "/charge 25 cake"),
        ("/charge", "  25   for 2 cakes ", "/charge 25 for 2 cakes"),
        ("/charge", "", "/charge"),
        ("/paylinks", "", "/help"),
        ("/paylinks", "links paid", "/links paid"),
        ("/paylinks", "STATUS #INV-1", "/status #INV-1"),
        ("/paylinks", "cancel abc", "/cancel abc"),
        ("/paylinks", "report month", "/report month"),
        ("/paylinks", "alerts on", "/alerts on"),
        ("/paylinks", "invite", "/invite"),
        ("/paylinks", "join K7Q2M9XA", "/join K7Q2M9XA"),
        ("/paylinks", "help", "/help"),
        ("/paylinks", "/links", "/links"),
        ("/paylinks", "charge 25 cake", "/charge 25 cake"),
        ("/paylinks", "frobnicate", "/frobnicate"),  # the core answers unknown commands with the help
    ],
)
def test_command_text_maps_onto_the_core_grammar(command: str, text: str, expected: str) -> None:
    assert command_text(command, text) == expected


def _slash(**overrides: str) -> dict[str, str]:
    body = {
        "token": "legacy", "team_id": "T0SHOP", "team_domain": "cakes", "channel_id": "C0SALES",
        "channel_name": "sales", "user_id": "U0ALICE", "user_name": "alice", "command": "/charge",
        "text": "25 cake", "response_url": "https://hooks.slack.com/commands/1/2/3", "trigger_id": "1.2.3",
    }
    body.update(overrides)
    return body


def test_slash_command_becomes_an_incoming_message_of_the_workspace() -> None:
    message = parse_slash_command(_slash())
    assert message.platform == "slack"
    assert message.workspace == "T0SHOP"
    assert message.user_id == "T0SHOP:U0ALICE"
    assert message.address == "T0SHOP:C0SALES"
    assert message.text == "/charge 25 cake"
    assert message.display_name == "alice"
    assert message.is_group is True
    assert message.extra["response_url"] == "https://hooks.slack.com/commands/1/2/3"
    assert message.extra["channel_id"] == "C0SALES"
    assert message.extra["slack_user_id"] == "U0ALICE"


def test_direct_message_with_the_bot_is_not_a_group() -> None:
    assert parse_slash_command(_slash(channel_id="D0DM")).is_group is False


@pytest.mark.parametrize("missing", ["team_id", "channel_id", "user_id"])
def test_slash_command_without_who_or_where_is_refused(missing: str) -> None:
    with pytest.raises(ValueError):
        parse_slash_command(_slash(**{missing: ""}))


def test_addresses_round_trip_and_carry_threads() -> None:
    assert parse_address("T1:C2") == SlackAddress("T1", "C2")
    assert parse_address("T1:C2:1700000000.000100") == SlackAddress("T1", "C2", "1700000000.000100")
    assert make_address("T1", "C2", "1.2") == "T1:C2:1.2"
    assert SlackAddress("T1", "C2", "1.2").channel_address == "T1:C2"


@pytest.mark.parametrize("bad", ["C2", "T1:C2:notats", "t1:c2", "T1:C2:1.2:3", "", "T1:"])
def test_malformed_addresses_are_rejected(bad: str) -> None:
    with pytest.raises(SlackAddressError):
        parse_address(bad)


def test_thread_address_of_a_posted_message() -> None:
    ref = MessageRef("slack", "T1:C2", "1700000000.000100", {"team_id": "T1", "channel": "C2"})
    assert thread_address(ref) == "T1:C2:1700000000.000100"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"{BASE}/p/{LINK_ID}", LINK_ID),
        (f"{BASE}/p/{LINK_ID}/", LINK_ID),
        (f"<{BASE}/p/{LINK_ID}>", LINK_ID),
        (f"http://pay.example.com/p/{LINK_ID}", LINK_ID),  # Slack may report either scheme
        (f"https://evil.example.com/p/{LINK_ID}", None),
        (f"https://pay.example.com.evil.com/p/{LINK_ID}", None),
        (f"{BASE}/p/{LINK_ID}/qr.png", None),
        (f"{BASE}/api/v1/links/{LINK_ID}", None),
        (f"{BASE}/p/UPPERCASE", None),
        ("not a url", None),
        (f"https://pay.example.com:8443/p/{LINK_ID}", None),
    ],
)
def test_only_paylinks_pay_page_urls_are_recognised(url: str, expected: str | None) -> None:
    assert link_id_from_url(url, BASE) == expected


def test_pay_page_urls_under_a_path_prefix_and_port() -> None:
    base = "http://127.0.0.1:8080/shop"
    assert link_id_from_url(f"http://127.0.0.1:8080/shop/p/{LINK_ID}", base) == LINK_ID
    assert link_id_from_url(f"http://127.0.0.1:8080/p/{LINK_ID}", base) is None
    assert link_id_from_url(f"http://127.0.0.1:9090/shop/p/{LINK_ID}", base) is None


def test_shared_links_keeps_each_url_once_and_skips_others() -> None:
    links = [{"url": f"{BASE}/p/{LINK_ID}"}, {"url": "https://example.org/x"}, {"url": f"{BASE}/p/{LINK_ID}"}]
    assert shared_links(links, BASE) == [(f"{BASE}/p/{LINK_ID}", LINK_ID)]


# ---------------------------------------------------------------- rendering


def test_markup_becomes_mrkdwn_and_control_characters_are_escaped() -> None:
    assert mrkdwn("**S$25.00** for `abc`") == "*S$25.00* for `abc`"
    assert mrkdwn("<!channel> & <https://evil|click>") == "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;"
    assert plain("**Paid** <!here>") == "Paid &lt;!here&gt;"


def test_link_reply_renders_text_and_a_primary_pay_button() -> None:
    reply = Reply(
        text="**S$25.00** — cake\nhttps://pay.example.com/p/x\nExpires in 7 days",
        buttons=(Button("Pay S$25.00", "https://pay.example.com/p/x"), Button("Receipt", "https://r.example/1")),
        link_id="x",
    )
    blocks = reply_blocks(reply)
    assert blocks[0] == {"type": "section", "text": {"type": "mrkdwn",
                                                     "text": "*S$25.00* — cake\nhttps://pay.example.com/p/x\n"
                                                             "Expires in 7 days"}}
    pay, receipt = blocks[1]["elements"]
    assert pay["url"] == "https://pay.example.com/p/x" and pay["style"] == "primary"
    assert pay["text"]["text"] == "Pay S$25.00"
    assert "style" not in receipt
    assert pay["action_id"] != receipt["action_id"]


def test_long_text_is_split_within_slack_limits() -> None:
    text = "\n".join(f"line {i} " + "x" * 90 for i in range(100))  # ~10,000 characters
    blocks = reply_blocks(Reply(text))
    assert len(blocks) >= 4
    assert all(len(b["text"]["text"]) <= SECTION_TEXT_MAX for b in blocks)
    assert "\n".join(b["text"]["text"] for b in blocks) == text
    one_line = reply_blocks(Reply("y" * 7000))
    assert [len(b["text"]["text"]) for b in one_line] == [3000, 3000, 1000]


def test_long_button_labels_are_cut() -> None:
    blocks = reply_blocks(Reply("x", buttons=(Button("Pay " + "9" * 200, "https://p.example/1"),)))
    assert len(blocks[1]["elements"][0]["text"]["text"]) == BUTTON_TEXT_MAX


def test_message_payload_has_fallback_text() -> None:
    payload = message_payload(Reply("**Paid** S$25.00"))
    assert payload["text"] == "Paid S$25.00"
    assert payload["blocks"][0]["text"]["text"] == "*Paid* S$25.00"
    json.dumps(payload)  # serialisable as the SDK will send it


def test_not_in_channel_reply_explains_the_invite_and_keeps_the_link() -> None:
    reply = Reply("**S$25.00** — cake", buttons=(Button("Pay S$25.00", "https://p.example/x"),), link_id="x")
    note = not_in_channel_reply(reply)
    assert "/invite @paylinks" in note.text
    assert note.text.endswith(reply.text)
    assert note.buttons == reply.buttons and note.link_id == "x"


def _summary(status: str = "active", description: str = "cake") -> LinkSummary:
    return LinkSummary(link_id=LINK_ID, url=f"{BASE}/p/{LINK_ID}", amount="S$25.00", description=description,
                       status=status, expires="expires 03 Dec 2026, 14:00 UTC", reference="INV-1")


def test_home_view_for_someone_without_a_shop_explains_how_to_start() -> None:
    view = home_view(HomeData(merchant_name=None))
    assert view["type"] == "home"
    assert "/charge 25" in json.dumps(view)


def test_home_view_lists_links_and_totals_with_user_text_escaped() -> None:
    view = home_view(HomeData(
        merchant_name="Alice <Cakes>",
        recent=[_summary(), _summary("paid", "<!channel> tart")],
        totals_today=["S$25.00", "Rp 150.000,00"],
        paid_count_today=2,
    ))
    text = json.dumps(view, ensure_ascii=False)
    assert "Alice &lt;Cakes&gt;" in text
    assert "S$25.00, Rp 150.000,00" in text
    assert "2 paid links" in text
    assert "🕓 Open" in text and "✅ Paid" in text
    assert "&lt;!channel&gt; tart" in text and "<!channel>" not in text


def test_unfurl_shows_amount_status_and_a_pay_button_only_while_payable() -> None:
    active = unfurl(_summary())
    assert "S$25.00" in active["blocks"][0]["text"]["text"]
    assert active["blocks"][1]["elements"][0]["url"] == f"{BASE}/p/{LINK_ID}"
    paid = unfurl(_summary("paid"))
    assert "✅ Paid" in paid["blocks"][0]["text"]["text"]
    assert len(paid["blocks"]) == 1


def test_the_manifest_matches_what_the_app_serves() -> None:
    from pathlib import Path
    from urllib.parse import urlsplit

    import yaml

    from adapters.slack.bot import BOT_SCOPES, EVENTS_PATH, REDIRECT_PATH

    manifest = yaml.safe_load((Path(__file__).resolve().parents[2] / "slack-manifest.yml").read_text())
    commands = {c["command"]: c for c in manifest["features"]["slash_commands"]}
    assert set(commands) == {"/charge", "/paylinks"}
    assert all(urlsplit(c["url"]).path == EVENTS_PATH and c["should_escape"] is False for c in commands.values())
    settings = manifest["settings"]
    assert urlsplit(settings["event_subscriptions"]["request_url"]).path == EVENTS_PATH
    assert urlsplit(settings["interactivity"]["request_url"]).path == EVENTS_PATH
    assert {"app_home_opened", "link_shared"} <= set(settings["event_subscriptions"]["bot_events"])
    assert tuple(manifest["oauth_config"]["scopes"]["bot"]) == BOT_SCOPES
    assert [urlsplit(u).path for u in manifest["oauth_config"]["redirect_urls"]] == [REDIRECT_PATH]
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"PAYLINKS_SLACK__BOT_TOKEN": "xoxb-1"}, "slack.signing_secret"),
        ({"PAYLINKS_SLACK__SIGNING_SECRET": "s"}, "slack.bot_token"),
        ({"PAYLINKS_SLACK__SIGNING_SECRET": "s", "PAYLINKS_SLACK__CLIENT_ID": "1.2"}, "slack.client_id"),
        ({"PAYLINKS_SLACK__SIGNING_SECRET": "s", "PAYLINKS_SLACK__BOT_TOKEN": "xoxb-1",
          "PAYLINKS_SLACK__API_BASE_URL": "slack.com/api"}, "slack.api_base_url"),
    ],
)
def test_slack_settings_that_cannot_work_stop_start_up(env: dict[str, str], key: str) -> None:
    from bots.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(env={"PAYLINKS_SLACK__ENABLED": "true", **env})


@pytest.mark.parametrize(
    "env",
    [
        {"PAYLINKS_SLACK__SIGNING_SECRET": "s", "PAYLINKS_SLACK__BOT_TOKEN": "xoxb-1"},
        {"PAYLINKS_SLACK__SIGNING_SECRET": "s", "PAYLINKS_SLACK__CLIENT_ID": "1.2",
         "PAYLINKS_SLACK__CLIENT_SECRET": "c"},
    ],
)
def test_one_workspace_or_oauth_settings_load(env: dict[str, str]) -> None:
    from adapters.slack import options_from_settings
    from bots.config import load_settings

    settings = load_settings(env={"PAYLINKS_SLACK__ENABLED": "true", **env})
    options = options_from_settings(settings.slack, public_base_url="https://pay.example.com")
    assert options.multi_workspace is ("PAYLINKS_SLACK__CLIENT_ID" in env)
    assert options.redirect_uri == "https://pay.example.com/slack/oauth_redirect"
    assert options.authorization_url == "https://slack.com/oauth/v2/authorize"


# ---------------------------------------------------------------- the core's markup as this platform's


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("**S$25.00** — cake", "*S$25.00* — cake"),
        ("ping <!channel> & <@U123>", "ping &lt;!channel&gt; &amp; &lt;@U123&gt;"),
        ("** padded **", " *padded* "),
        ("`a`b`", "`a`b`"),
    ],
)
def test_slack_mrkdwn(text: str, expected: str) -> None:
    assert slack_render.mrkdwn(text) == expected


def test_slack_code_never_breaks_on_a_backtick() -> None:
    assert slack_render.mrkdwn("`" + core_markup.escape("a`b") + "`") == "`aˋb`"


@given(st.text())
def test_slack_output_has_no_raw_control_characters(text: str) -> None:
    rendered = slack_render.mrkdwn(core_markup.escape(text))
    assert "<" not in rendered and ">" not in rendered
    assert rendered == slack_render.escape(text)
