"""Bidi controls (U+202A–U+202E, U+2066–U+2069) in link text and shop names (issue 11 point 5): refused
where someone types them for a link or a shop, stripped from profile names, isolated where text is shown."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core.db import Database
from core.links import LINKS, Customer, LinkDraft, LinkError, LinkService
from core.merchants import MerchantError, MerchantService
from core.money import Money
from core.text import has_bidi_controls, isolate, without_bidi_controls
from tests.chat_support import ChatDriver
from tests.clock import FakeClock

BIDI_CONTROLS = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]
RLO = "\u202e"


def test_every_bidi_control_is_found_and_plain_marks_are_not() -> None:
    assert len(BIDI_CONTROLS) == 9
    for char in BIDI_CONTROLS:
        assert has_bidi_controls(f"cake{char}x") and without_bidi_controls(f"ca{char}ke") == "cake"
    # LRM/RLM and right-to-left letters are ordinary text.
    assert not has_bidi_controls("\u200fكعكة\u200e cake")


def test_isolated_wraps_only_text_that_can_move_its_neighbours() -> None:
    assert isolate("Cake Shop") == "Cake Shop"
    assert isolate("ケーキ屋") == "ケーキ屋"
    assert isolate("متجر الكعك") == "\u2068متجر الكعك\u2069"
    assert isolate(f"Shop{RLO}gpj.exe") == f"\u2068Shop{RLO}gpj.exe\u2069"


@pytest.fixture
async def merchant_id(db: Database, clock: FakeClock) -> str:
    service = MerchantService(db, default_currency="SGD", default_locale="en_SG", clock=clock)
    return (await service.create("Cake Shop")).id


@pytest.mark.parametrize("char", BIDI_CONTROLS)
@pytest.mark.parametrize("field", ["description", "reference", "customer.name"])
async def test_link_text_with_bidi_controls_is_refused_by_name(
    links: LinkService, merchant_id: str, db: Database, field: str, char: str
) -> None:
    bad = f"cake {char}001$"
    draft = LinkDraft(
        merchant_id=merchant_id, money=Money(2500, "SGD"),
        description=bad if field == "description" else "cake",
        reference=bad if field == "reference" else None,
        customer=Customer(name=bad) if field == "customer.name" else Customer(),
    )
    with pytest.raises(LinkError) as info:
        await links.create(draft)
    assert (info.value.code, info.value.field, info.value.status) == ("invalid_text", field, 400)
    assert "direction controls" in info.value.message
    async with db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(LINKS))).scalar_one() == 0


async def test_right_to_left_text_itself_is_welcome(links: LinkService, merchant_id: str) -> None:
    link, created = await links.create(LinkDraft(
        merchant_id=merchant_id, money=Money(2500, "SGD"), description="\u200fكعكة عيد ميلاد",
    ))
    assert created and link.description == "\u200fكعكة عيد ميلاد"


async def test_shop_names_with_bidi_controls_are_refused(db: Database, clock: FakeClock) -> None:
    service = MerchantService(db, default_currency="SGD", default_locale="en_SG", clock=clock)
    with pytest.raises(MerchantError) as info:
        await service.create(f"Cake{RLO} Shop")
    assert info.value.field == "name" and "direction controls" in str(info.value)
    assert await service.list_merchants() == []


async def test_chat_charge_with_bidi_controls_is_refused(chat: ChatDriver) -> None:
    text = await chat.text(f"/charge 25 birthday cake{RLO}001")
    assert "direction controls" in text
    identity = await chat.services.conversation.members.identify(chat.message("/links"))
    assert identity is not None
    found, _ = await chat.services.links.list_links(identity.merchant.id)
    assert found == [], "no link was made"
    assert "birthday cake" in (await chat.text("/charge 25 birthday cake"))  # without them it works


async def test_a_profile_name_with_bidi_controls_names_the_shop_without_them(chat: ChatDriver) -> None:
    dave = chat.as_user("dave", display_name=f"Dave{RLO}s Cakes")
    await dave("/start")
    identity = await chat.services.conversation.members.identify(dave.message("/links"))
    assert identity is not None and identity.merchant.name == "Daves Cakes"
