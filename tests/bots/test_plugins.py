"""Plug-ins (issue 10, points 1-3 and the shutdown order of point 8): a fifth chat platform and a second
payment provider, defined here in the test suite alone, plug in through adapters/registry.py's lists.

They have settings sections (from env and file, errors naming the key), no config.example.toml entries,
routes, lifespans, a pacing key under [outbox] and address rules; a `/charge` made on the fifth platform
is paid through the throwaway provider and its paid alert reaches the fifth platform's sender.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import ClassVar

import pytest
from aiohttp import web
from pydantic import SecretStr
from sqlalchemy import select

from adapters import registry
from adapters.plugin import ChatPlatform, PaymentProviderPlugin, PluginContext, WebParts
from bots.config import ConfigError, Settings, describe, load_settings
from core.models import OutboxMessage, PaymentLink
from core.pacing import PlatformLimits, rate_setting
from core.ports import (
    ChatSender,
    Checkout,
    IncomingMessage,
    MessageRef,
    PaymentEvent,
    PaymentProvider,
    Reply,
    Transient,
    WebhookError,
)
from core.settings import PluginSection, Section, reveal
from core.sql import table
from tests.conftest import free_port, start_live_app

ROOT = Path(__file__).resolve().parents[2]
OUTBOX = table(OutboxMessage)

# ---------------------------------------------------------------- a fifth chat platform: "pager"


class PagerSettings(PluginSection):
    greeting: str = "hello"
    # Each send takes this long (the shutdown test keeps one in flight).
    send_delay: float = 0.0


class PagerSender:
    platform = "pager"

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.sent: list[tuple[str, Reply]] = []
        self.edited: list[tuple[MessageRef, Reply]] = []
        self.closed = False
        self.started = asyncio.Event()

    async def send(self, address: str, reply: Reply) -> MessageRef:
        self.started.set()
        await asyncio.sleep(self.delay)
        if self.closed:
            raise Transient("closed")
        self.sent.append((address, reply))
        return MessageRef(self.platform, address, str(len(self.sent)))

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        if self.closed:
            raise Transient("closed")
        self.edited.append((ref, reply))

    async def close(self) -> None:
        self.closed = True


class PagerPlatform(ChatPlatform[PagerSettings]):
    name = "pager"
    title = "Pager"
    settings_model = PagerSettings
    outbox_keys: ClassVar[dict[str, str]] = {"pager_per_pager": "100/s"}

    def __init__(self) -> None:
        self.senders: list[PagerSender] = []
        self.events: list[str] = []

    def pacing(self, outbox: Mapping[str, str]) -> PlatformLimits:
        return PlatformLimits(per_target=rate_setting("outbox.pager_per_pager", outbox["pager_per_pager"]))

    def member_address(self, user_id: str) -> str | None:
        return f"pager-{user_id}"

    def build_sender(self, section: PagerSettings | None, ctx: PluginContext) -> ChatSender:
        assert section is not None
        sender = PagerSender(section.send_delay)
        self.senders.append(sender)
        return sender

    def web(self, section: PagerSettings | None, ctx: PluginContext, sender: ChatSender) -> WebParts:
        assert section is not None

        async def inbound(request: web.Request) -> web.Response:
            data = await request.json()
            message = IncomingMessage(platform=self.name, user_id=data["user"], address=f"pager-{data['user']}",
                                      text=data["text"], display_name=data["user"].title())
            for reply in await ctx.handle(message):
                ref = await sender.send(message.address, reply)
                if reply.link_id:
                    await ctx.links.attach_message(reply.link_id, ref)
            return web.json_response({"greeting": section.greeting})

        async def lifespan(app: web.Application) -> AsyncIterator[None]:
            self.events.append("started")
            yield
            self.events.append("closing sender")
            await sender.close()

        return WebParts(routes=[web.post("/pager/inbound", inbound)], lifespans=[lifespan])


# ---------------------------------------------------------------- a second payment provider: "fakepay"

SIGNATURE = "X-Fakepay-Secret"


class FakepaySettings(Section):
    secret: SecretStr = SecretStr("fp-secret")


class FakepayProvider:
    name = "fakepay"

    def __init__(self, public_base_url: str, secret: str) -> None:
        self.public_base_url = public_base_url
        self.secret = secret
        self.checkouts: list[str] = []

    async def create_checkout(self, link: PaymentLink, *, return_url: str, idempotency_key: str) -> Checkout:
        self.checkouts.append(link.id)
        return Checkout(url=f"{self.public_base_url}/fakepay/checkout/{link.id}", provider_ref=f"fp_{link.id}")

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> PaymentEvent:
        if headers.get(SIGNATURE) != self.secret:
            raise WebhookError("bad fakepay secret")
        data = json.loads(raw_body)
        return PaymentEvent(provider=self.name, event_id=data["id"], kind="payment.succeeded",
                            link_id=data["link_id"], provider_ref=data["charge"],
                            amount_minor=data["amount_minor"], currency=data["currency"])

    async def fetch_status(self, provider_ref: str) -> str:
        return "unknown"


class FakepayPlugin(PaymentProviderPlugin[FakepaySettings]):
    name = "fakepay"
    settings_model = FakepaySettings

    def build(self, section: FakepaySettings, ctx: PluginContext) -> PaymentProvider:
        return FakepayProvider(ctx.public_base_url, reveal(section.secret))

    def web(self, section: FakepaySettings, ctx: PluginContext, provider: PaymentProvider, *,
            webhook_url: str) -> WebParts:
        async def checkout(request: web.Request) -> web.Response:
            return web.Response(text=f"fakepay checkout for {request.match_info['link_id']}; posts to {webhook_url}")

        return WebParts(routes=[web.get("/fakepay/checkout/{link_id}", checkout)])


@pytest.fixture
def pager(monkeypatch: pytest.MonkeyPatch) -> Iterator[PagerPlatform]:
    """The fifth platform and the throwaway provider, registered for this test only."""
    platform = PagerPlatform()
    monkeypatch.setattr(registry, "CHAT_PLATFORMS", [*registry.CHAT_PLATFORMS, platform])
    monkeypatch.setattr(registry, "PAYMENT_PROVIDERS", [*registry.PAYMENT_PROVIDERS, FakepayPlugin()])
    yield platform


def plugin_settings(database_url: str, **env: str) -> Settings:
    port = free_port()
    return load_settings(env={
        "PAYLINKS_DATABASE__URL": database_url, "PAYLINKS_SERVER__PORT": str(port),
        "PAYLINKS_PAGER__ENABLED": "true", "PAYLINKS_PAYMENTS__PROVIDER": "fakepay", **env,
    })


async def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110  (the dispatcher runs in the app; nothing to wait on)
            await asyncio.sleep(0.02)


# ---------------------------------------------------------------- settings


def test_a_plugins_section_comes_from_env_and_file_and_needs_no_example_entry(
    pager: PagerPlatform, tmp_path: Path
) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[pager]\nenabled = true\ngreeting = "from file"\n[outbox]\npager_per_pager = "5/s"\n'
                    '[payments]\nprovider = "fakepay"\n[payments.fakepay]\nsecret = "s"\n')
    settings = load_settings(path, env={"PAYLINKS_PAGER__GREETING": "from env"})
    assert settings.pager.enabled is True and settings.pager.greeting == "from env"
    assert settings.payments.fakepay.secret.get_secret_value() == "s"
    assert describe(settings)["payments"]["fakepay"] == {"secret": "***"}
    assert registry.pacing_limits(settings.outbox)["pager"].per_target is not None
    assert "pager" not in (ROOT / "config.example.toml").read_text()


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ("[pager]\ngreeting = 5\n", {}, "pager.greeting: expected a string"),
        ("[pager]\ncolour = 5\n", {}, "unknown key: pager.colour"),
        ('[outbox]\npager_per_pager = "lots"\n', {}, "outbox.pager_per_pager"),
        ("", {"PAYLINKS_PAGER__COLOUR": "x"}, "PAYLINKS_PAGER__COLOUR"),
        ("", {"PAYLINKS_PAYMENTS__FAKEPAY__SECRET": ""} | {"PAYLINKS_PAYMENTS__PROVIDER": "nope"},
         "payments.provider: unknown provider 'nope' (known: fakepay, portone, sandbox, stripe)"),
    ],
)
def test_a_plugins_bad_settings_are_refused_by_their_full_name(
    pager: PagerPlatform, tmp_path: Path, toml: str, env: dict[str, str], message: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load_settings(path, env=env)


def test_without_the_plugin_its_section_is_an_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[pager]\nenabled = true\n")
    with pytest.raises(ConfigError, match="unknown key: pager"):
        load_settings(path, env={})


# ---------------------------------------------------------------- /charge and a payment through them


async def test_a_charge_on_the_fifth_platform_paid_through_the_throwaway_provider_alerts_it(
    pager: PagerPlatform, database_url: str
) -> None:
    settings = plugin_settings(database_url, PAYLINKS_PAGER__GREETING="hi there")
    live, client = await start_live_app(settings)
    try:
        assert pager.events == ["started"]
        (sender,) = pager.senders
        assert live.services.senders["pager"] is sender
        assert isinstance(live.services.provider, FakepayProvider)
        response = await client.post("/pager/inbound", json={"user": "ann", "text": "/charge 25 cake"})
        assert (await response.json()) == {"greeting": "hi there"}
        link_id = next(reply.link_id for _, reply in sender.sent if reply.link_id)
        assert [address for address, _ in sender.sent] == ["pager-ann", "pager-ann"]  # welcome, then the link
        link = await live.services.links.get(link_id)
        assert (link.origin_platform, link.amount_minor) == ("pager", 2500)

        # The pay page sends the customer to the provider's own checkout page, served by its plug-in.
        pay = await client.post(f"/p/{link_id}/pay", allow_redirects=False)
        assert pay.status == 303 and pay.headers["Location"] == f"{live.base_url}/fakepay/checkout/{link_id}"
        page = await client.get(f"/fakepay/checkout/{link_id}")
        assert page.status == 200 and f"posts to {live.base_url}/webhooks/fakepay" in await page.text()

        body = json.dumps({"id": "evt_1", "link_id": link_id, "charge": "fp_1", "amount_minor": 2500,
                           "currency": link.currency}).encode()
        refused = await client.post("/webhooks/fakepay", data=body, headers={SIGNATURE: "wrong"})
        assert refused.status == 400
        paid = await client.post("/webhooks/fakepay", data=body, headers={SIGNATURE: "fp-secret"})
        assert paid.status == 200 and (await paid.json())["outcome"] == "paid"

        # The outbox delivers the paid alert (and edits the /charge message) through the pager's sender.
        await eventually(lambda: any("Paid" in reply.text for _, reply in sender.sent))
        alert = next(reply for address, reply in sender.sent if "Paid" in reply.text)
        assert "25.00" in alert.text
        await eventually(lambda: bool(sender.edited))
        assert sender.edited[0][0].address == "pager-ann"
    finally:
        await client.close()
    assert pager.events == ["started", "closing sender"]


# ---------------------------------------------------------------- shutdown order (issue 10, point 8)


async def test_an_alert_in_flight_at_shutdown_is_delivered_not_failed_as_closed(
    pager: PagerPlatform, sqlite_database_url: str
) -> None:
    settings = plugin_settings(sqlite_database_url, PAYLINKS_PAGER__SEND_DELAY="0.5")
    live, client = await start_live_app(settings)
    (sender,) = pager.senders
    stopped = False
    try:
        await client.post("/pager/inbound", json={"user": "ann", "text": "/charge 25 cake"})
        link_id = next(reply.link_id for _, reply in sender.sent if reply.link_id)
        sender.started.clear()
        link = await live.services.links.get(link_id)
        body = json.dumps({"id": "evt_1", "link_id": link_id, "charge": "fp_1", "amount_minor": 2500,
                           "currency": link.currency}).encode()
        assert (await client.post("/webhooks/fakepay", data=body, headers={SIGNATURE: "fp-secret"})).status == 200
        await asyncio.wait_for(sender.started.wait(), 10)  # the dispatcher's send is in flight now
        await client.close()  # shutdown: the jobs stop (letting the send finish) before the sender closes
        stopped = True
    finally:
        if not stopped:
            await client.close()
    assert any("Paid" in reply.text for _, reply in sender.sent)
    assert sender.closed
    # Read the outcome from a fresh connection (the app disposed of its engine).
    from core.db import Database

    check = Database(settings.database.url)
    try:
        async with check.read() as conn:
            rows = (await conn.execute(select(OUTBOX.c.kind, OUTBOX.c.status, OUTBOX.c.last_error))).all()
    finally:
        await check.dispose()
    alerts = [r for r in rows if r.kind == "link.paid.alert"]
    assert alerts and all(r.status == "sent" for r in alerts), rows
    assert not any("closed" in (r.last_error or "") for r in rows), rows


# ---------------------------------------------------------------- core and bots name no platform


def _string_constants(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)}
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings}


def test_core_and_the_programs_name_no_platform_or_provider() -> None:
    """No platform or provider name as a value in code (a comparison, a key, an address prefix); words in
    user-facing sentences and docstrings are fine."""
    names = ("telegram", "slack", "whatsapp", "sandbox")
    offenders = []
    for folder in ("core", "bots"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "models.py":  # table names of slack-sdk's stores (the schema is core's)
                continue
            for text in _string_constants(path):
                if any(text.lower() == name or text.lower().startswith((f"{name}:", f"{name}_", f"{name}."))
                       for name in names):
                    offenders.append(f"{path.relative_to(ROOT)}: {text!r}")
    # The one exception: the documented default of `[payments] provider`.
    assert offenders == ["bots/config.py: 'sandbox'"]
    sandbox_only = [path for path in (ROOT / "adapters").rglob("*.py")
                    if "SandboxProvider" in path.read_text() and "payments/sandbox" not in path.as_posix()]
    assert sandbox_only == []


def test_core_defines_nothing_for_one_platform_and_tells_users_of_none() -> None:
    """Platform renderers live in their adapters, and core's sentences name no platform (a fifth one would
    be left out, a disabled one offered)."""
    names = ("telegram", "slack", "whatsapp")
    offenders = []
    for path in sorted((ROOT / "core").rglob("*.py")):
        if path.name == "models.py":  # slack-sdk's store tables
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and any(
                    name in node.name.lower() for name in names):
                offenders.append(f"{path.relative_to(ROOT)}: def {node.name}")
        for text in _string_constants(path):
            if re.search(r"\b(telegram|slack|whatsapp)\b", text, re.IGNORECASE):
                offenders.append(f"{path.relative_to(ROOT)}: {text!r}")
    assert offenders == []


def test_only_the_registry_lists_the_shipped_plugins() -> None:
    assert [p.name for p in registry.CHAT_PLATFORMS] == ["console", "telegram", "slack", "whatsapp", "email", "sms"]
    assert list(registry.payment_providers()) == ["sandbox", "stripe", "portone"]
