"""The dashboard's payment provider page (issue 14, point 7): what `paylinks merchant set-provider` does, owners
only, secrets write-only (last four characters shown, never echoed into a form), "Test connection" checked
with the provider (FakeStripe / FakePortOne on 127.0.0.1), each change in the audit log. Both back ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from core.models import AuditEvent, MemberRole
from core.sql import table
from tests.adapters.web.dashboard_support import shop_with_member, sign_in, signin_url
from tests.conftest import LiveApp, make_settings, start_live_app
from tests.fakes.portone import FakePortOne
from tests.fakes.stripe import FakeStripe

AUDIT = table(AuditEvent)
KEY, WHSEC = "sk_test_dashboard_shop_key_4321", "whsec_dashboard_shop_secret_8765"
OTHER_KEY = "sk_test_dashboard_other_key_1111"
PORTONE_KEY, PORTONE_SECRET = "pk_test_DASHBOARD_SHOP", "sk_test_dashboard_portone_9999"


@dataclass
class Fakes:
    live: LiveApp
    stripe: FakeStripe
    portone: FakePortOne


@pytest.fixture
async def fakes(database_url: str) -> AsyncIterator[Fakes]:
    stripe = await FakeStripe(secret_keys=("sk_test_deployment",), webhook_secret="whsec_deployment").start()
    stripe.add_account(KEY, webhook_secret=WHSEC)
    stripe.add_account(OTHER_KEY, webhook_secret=WHSEC)
    portone = await FakePortOne(client_key="pk_test_DEPLOYMENT", secret_key="sk_test_deployment").start()
    portone.add_account(PORTONE_KEY, PORTONE_SECRET)
    settings = make_settings(database_url)
    settings.payments.stripe.api_base_url = stripe.url
    settings.payments.portone.api_base_url = portone.url
    live, client = await start_live_app(settings)
    try:
        yield Fakes(live, stripe, portone)
    finally:
        await client.close()
        await stripe.close()
        await portone.close()


def _no_secret(text: str) -> None:
    for secret in (KEY, WHSEC, OTHER_KEY, PORTONE_SECRET, PORTONE_KEY):
        assert secret[:-4] not in text, secret[-4:]


async def _post(live: LiveApp, csrf: str, **fields: str) -> tuple[int, str]:
    response = await live.client.post("/dashboard/providers", data={"csrf": csrf, **fields}, allow_redirects=False)
    return response.status, await response.text()


async def test_owner_sets_stripe_keys_checked_with_stripe_and_sees_only_the_last_four(fakes: Fakes) -> None:
    live = fakes.live
    merchant_id, owner_id = await shop_with_member(live)
    csrf = await sign_in(live.client, await signin_url(live, merchant_id, owner_id))
    page = await (await live.client.get("/dashboard/providers")).text()
    assert "Sandbox" in page and "the deployment's provider" in page and 'href="/dashboard/providers"' in page

    # Refused keys: the provider's answer, nothing saved, and the typed key not echoed back.
    status, text = await _post(live, csrf, provider="stripe", intent="save", secret_key="sk_test_wrong_key_000000",
                               webhook_secret=WHSEC)
    assert status == 422 and "stripe refused these credentials" in text
    assert "sk_test_wrong_key" not in text and 'value=""' in text
    _no_secret(text)
    assert await live.services.accounts.get(merchant_id) is None
    # A key of the wrong shape is refused before the provider is asked.
    asked = len(fakes.stripe.calls)
    status, text = await _post(live, csrf, provider="stripe", intent="save", secret_key="pk_live_nope",
                               webhook_secret=WHSEC)
    assert status == 422 and "expected a Stripe secret key" in text
    assert len(fakes.stripe.calls) == asked
    # Missing fields name the field.
    status, text = await _post(live, csrf, provider="stripe", intent="save", secret_key=KEY)
    assert status == 422 and "Give the webhook signing secret." in text

    # "Test connection" on typed keys checks them with Stripe and saves nothing.
    status, text = await _post(live, csrf, provider="stripe", intent="test", secret_key=KEY, webhook_secret=WHSEC)
    assert status == 200 and "Connected: stripe accepted these credentials." in text
    _no_secret(text)
    assert await live.services.accounts.get(merchant_id) is None

    # Saved: the shop pays through its own account; the page shows four characters of each key.
    status, _ = await _post(live, csrf, provider="stripe", intent="save", secret_key=KEY, webhook_secret=WHSEC)
    assert status == 303
    account = await live.services.accounts.get(merchant_id)
    assert account is not None and account.provider == "stripe" and account.secrets == {
        "secret_key": KEY, "webhook_secret": WHSEC}
    assert (await live.services.providers.for_merchant(merchant_id)).account == merchant_id
    page = await (await live.client.get("/dashboard/providers?done=saved")).text()
    assert "Saved." in page and f"…{KEY[-4:]}" in page and f"…{WHSEC[-4:]}" in page
    assert f"/webhooks/stripe/{merchant_id}" in page
    _no_secret(page)

    # The stored keys tested again, as they are now.
    status, text = await _post(live, csrf, intent="test-stored")
    assert status == 200 and "Connected: stripe accepted" in text
    # Blank fields keep the stored secrets: a new secret key only.
    status, _ = await _post(live, csrf, provider="stripe", intent="save", secret_key=OTHER_KEY)
    assert status == 303
    account = await live.services.accounts.get(merchant_id)
    assert account is not None and account.secrets == {"secret_key": OTHER_KEY, "webhook_secret": WHSEC}
    # The stored key is revoked at Stripe: "Test connection" says so, and the account stays as it was.
    fakes.stripe.secret_keys.discard(OTHER_KEY)
    status, text = await _post(live, csrf, intent="test-stored")
    assert status == 422 and "stripe refused these credentials" in text and "nothing was saved" not in text
    _no_secret(text)
    # Every change is in the audit log with who and where, and no secret.
    async with live.services.db.read() as conn:
        rows = (await conn.execute(select(AUDIT).where(AUDIT.c.merchant_id == merchant_id,
                                                       AUDIT.c.action == "provider.changed")
                                   .order_by(AUDIT.c.id))).all()
    assert [(r.platform, r.member_id, r.detail["provider"], r.detail["secrets_changed"]) for r in rows] == [
        ("web", owner_id, "stripe", "secret_key, webhook_secret"), ("web", owner_id, "stripe", "secret_key")]
    assert rows[0].detail["previous"] == "sandbox (deployment)" and rows[0].address == "127.0.0.1"
    _no_secret(repr([dict(r._mapping) for r in rows]))
    audit_page = await (await live.client.get("/dashboard/audit")).text()
    assert "provider.changed" in audit_page


async def test_portone_with_environment_and_country_then_back_to_the_sandbox(fakes: Fakes) -> None:
    live = fakes.live
    merchant_id, owner_id = await shop_with_member(live)
    csrf = await sign_in(live.client, await signin_url(live, merchant_id, owner_id))
    status, text = await _post(live, csrf, provider="portone", intent="save", client_key=PORTONE_KEY,
                               secret_key=PORTONE_SECRET, environment="sandbox")
    assert status == 422 and "Country: a two-letter country code" in text and "--country" not in text
    status, _ = await _post(live, csrf, provider="portone", intent="save", client_key=PORTONE_KEY,
                            secret_key=PORTONE_SECRET, environment="sandbox", country_code="th")
    assert status == 303
    account = await live.services.accounts.get(merchant_id)
    assert account is not None and (account.provider, account.environment, account.country_code) == (
        "portone", "sandbox", "TH")
    page = await (await live.client.get("/dashboard/providers")).text()
    assert "(sandbox, TH)" in page and 'value="TH"' in page
    _no_secret(page)
    status, text = await _post(live, csrf, provider="portone", intent="save", client_key=PORTONE_KEY,
                               secret_key="sk_test_not_portones_secret", environment="sandbox", country_code="TH")
    assert status == 422 and "portone refused these credentials" in text
    # The sandbox needs no keys: the shop goes back to it.
    status, _ = await _post(live, csrf, provider="sandbox", intent="save")
    assert status == 303
    assert (await live.services.providers.for_merchant(merchant_id)).account is None
    status, text = await _post(live, csrf, intent="test-stored")
    assert status == 200 and "no keys of its own to test" in text


async def test_staff_cannot_see_or_change_the_provider_and_csrf_is_checked(fakes: Fakes) -> None:
    live = fakes.live
    merchant_id, _owner = await shop_with_member(live)
    _, staff_id = await shop_with_member(live, role=MemberRole.STAFF, user="u2", merchant_id=merchant_id)
    csrf = await sign_in(live.client, await signin_url(live, merchant_id, staff_id))
    assert (await live.client.get("/dashboard/providers")).status == 403
    status, text = await _post(live, csrf, provider="stripe", intent="save", secret_key=KEY, webhook_secret=WHSEC)
    assert status == 403 and "Only the shop" in text and "owner can open this page" in text
    page = await (await live.client.get("/dashboard")).text()
    assert 'href="/dashboard/providers"' not in page
    assert await live.services.accounts.get(merchant_id) is None
    # The owner without the form's token is refused too.
    _, owner_id = await shop_with_member(live, user="u3", merchant_id=merchant_id)
    await sign_in(live.client, await signin_url(live, merchant_id, owner_id))
    response = await live.client.post("/dashboard/providers", data={"provider": "sandbox", "intent": "save"})
    assert response.status == 403 and "security token" in await response.text()
    assert await live.services.accounts.get(merchant_id) is None
