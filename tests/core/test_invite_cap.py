"""Outstanding invite codes per shop are capped (issue 11 point 5, `[limits] invites_per_shop`)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bots.config import Settings
from core.members import INVITES
from tests.chat_support import ChatDriver
from tests.conftest import make_settings


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, limits__invites_per_shop=3)


def code_of(text: str) -> str:
    return text.split("`")[1]


async def open_invites(chat: ChatDriver) -> int:
    async with chat.services.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(INVITES))).scalar_one())


async def test_invites_beyond_the_cap_are_refused_clearly(chat: ChatDriver) -> None:
    codes = [code_of((await chat("/invite"))[-1].text) for _ in range(3)]
    assert len(set(codes)) == 3
    refused = await chat.text("/invite")
    assert "already has 3 invite codes nobody has used yet" in refused
    assert "the next one expires in 24 hours" in refused or "the next one expires in 23 hours" in refused
    assert "`" not in refused.split("invite codes", 1)[1], "no new code was made"
    assert await open_invites(chat) == 3
    # Using one frees a place.
    assert "now part of" in await chat.as_user("bob").text(f"/join {codes[0]}")
    assert len(code_of((await chat("/invite"))[-1].text)) == 8
    assert "already has 3" in await chat.text("/invite")
    # So does time: expired codes no longer count.
    chat.clock.advance(hours=25)
    assert len(code_of((await chat("/invite"))[-1].text)) == 8
    assert await open_invites(chat) == 5  # 4 old (1 used, 3 expired), 1 new


async def test_the_cap_is_per_shop(chat: ChatDriver) -> None:
    for _ in range(3):
        await chat("/invite")
    assert "already has 3" in await chat.text("/invite")
    other_shop = chat.as_user("zoe", display_name="Zoe's Cakes")
    assert len(code_of((await other_shop("/invite"))[-1].text)) == 8


def test_the_default_cap_is_ten() -> None:
    assert make_settings("sqlite+aiosqlite:///:memory:").limits.invites_per_shop == 10


async def test_invites_at_the_same_moment_cannot_pass_the_cap_together(chat: ChatDriver) -> None:
    import asyncio

    from core.members import MemberError

    await chat("/start")
    members = chat.services.conversation.members
    identity = await members.identify(chat.message("/invite"))
    assert identity is not None
    results = await asyncio.gather(*(members.create_invite(identity) for _ in range(8)), return_exceptions=True)
    made = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, MemberError)]
    assert (len(made), len(refused)) == (3, 5), results
    assert await open_invites(chat) == 3
