"""Chat never charges an amount the seller did not mean: ambiguous amounts are asked back, the question is
stored in the database, and the link is made only after the answer (`chat` fixture, SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses

from sqlalchemy import func, select

from bots.services import build_services
from core.conversation import APOLOGY, Conversation
from core.markup import to_plain
from core.models import ChatQuestion, PaymentLink
from core.ports import Reply
from core.sql import table
from core.text import FSI, PDI
from tests.chat_support import ChatDriver

LINKS = table(PaymentLink)
QUESTIONS = table(ChatQuestion)


async def links_made(chat: ChatDriver) -> list[tuple[int, str, str]]:
    async with chat.services.db.read() as conn:
        rows = (await conn.execute(
            select(LINKS.c.amount_minor, LINKS.c.currency, LINKS.c.description).order_by(LINKS.c.created_at)
        )).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def sgd_shop(chat: ChatDriver) -> None:
    merchant = await chat.services.merchants.create("Cake Shop", currency="SGD", locale="en_SG")
    await chat.conversation.members.ensure_member(merchant.id, chat.message(""))


async def ask(chat: ChatDriver, text: str) -> Reply:
    (reply,) = await chat(text)
    assert reply.link_id is None and "🤔" in reply.text, reply.text
    return reply


# ---------------------------------------------------------------- the three phrasings from the issue


async def test_a_grouping_looking_separator_is_asked_and_the_answer_makes_the_link(chat: ChatDriver) -> None:
    await sgd_shop(chat)
    question = await ask(chat, "/charge 1.000 cake")
    assert "Did you mean S$1.00 or S$1,000.00?" in to_plain(question.text)
    assert [b.label for b in question.buttons] == ["S$1.00 — cake", "S$1,000.00 — cake", "Cancel"]
    assert all(b.action and not b.url for b in question.buttons)
    assert await links_made(chat) == []  # nothing until the seller answers
    (card,) = await chat("2")
    assert card.link_id and "S$1,000.00" in card.text
    assert await links_made(chat) == [(100000, "SGD", "cake")]


async def test_a_later_number_that_looks_like_the_price_is_asked(chat: ChatDriver) -> None:
    await sgd_shop(chat)
    question = await ask(chat, "/charge 2 coffees 12.50")
    text = to_plain(question.text)
    assert "Did you mean S$12.50 or S$2.00?" in text
    assert "1. S$12.50 — 2 coffees" in text and "2. S$2.00 — coffees 12.50" in text
    (card,) = await chat("1")
    assert card.link_id
    assert await links_made(chat) == [(1250, "SGD", "2 coffees")]


async def test_a_number_grouped_with_spaces_is_asked(chat: ChatDriver) -> None:
    await sgd_shop(chat)
    question = await ask(chat, "/charge 1 234,50 EUR Kuchen")
    text = to_plain(question.text)
    assert "1. €1,234.50 — Kuchen" in text and "S$1.00 — 234,50 EUR Kuchen" in text
    await chat("1")
    assert await links_made(chat) == [(123450, "EUR", "Kuchen")]


async def test_clear_phrasings_stay_one_step(chat: ChatDriver) -> None:
    await sgd_shop(chat)
    for text in ("/charge 1,000 sofa", "/charge 250 for 2 birthday cakes", "/charge 125.50 2 coffees",
                 "/charge 250 cake to +65 9123 4567 exp 3d"):
        (reply,) = await chat(text)
        assert reply.link_id, (text, reply.text)
    assert (await links_made(chat))[:2] == [(100000, "SGD", "sofa"), (25000, "SGD", "2 birthday cakes")]


async def test_shorthand_is_confirmed_and_cancel_makes_nothing(chat: ChatDriver) -> None:
    await sgd_shop(chat)
    question = await ask(chat, "/charge 25k sofa")
    assert "25k is S$25,000.00" in to_plain(question.text)
    assert [b.label for b in question.buttons] == ["Yes, S$25,000.00 — sofa", "Cancel"]
    assert "no link made" in (await chat.text("cancel"))
    assert await links_made(chat) == []
    await ask(chat, "/charge 25k sofa")
    (card,) = await chat("yes")
    assert card.link_id and await links_made(chat) == [(2500000, "SGD", "sofa")]


async def test_an_amount_far_above_the_shops_usual_is_confirmed(chat: ChatDriver) -> None:
    await sgd_shop(chat)
    for text in ("/charge 25 cake", "/charge 30 pie", "/charge 20 tea"):
        assert (await chat(text))[-1].link_id
    assert (await chat("/charge 250 cake tower"))[-1].link_id  # exactly 10x the median (25) is fine
    question = await ask(chat, "/charge 300 wedding cake")
    assert "S$300.00 is much more than your usual links" in to_plain(question.text)
    (card,) = await chat("1")
    assert card.link_id and (await links_made(chat))[-1] == (30000, "SGD", "wedding cake")
    # Another currency has its own history (none here): not in doubt.
    assert (await chat("/charge 300 EUR wedding cake"))[-1].link_id


# ---------------------------------------------------------------- answering


async def test_a_button_press_answers_once_and_only_for_the_one_asked(chat: ChatDriver) -> None:
    await sgd_shop(chat)
    question = await ask(chat, "/charge 1.000 cake")
    thousand = question.buttons[1].action
    bob = chat.as_user("bob")
    press = dataclasses.replace(bob.message(""), action=thousand)
    assert "for someone else" in to_plain((await chat.conversation.handle(press))[0].text)
    mine = dataclasses.replace(chat.message(""), action=thousand)
    (card,) = await chat.conversation.handle(mine)
    assert card.link_id
    (again,) = await chat.conversation.handle(mine)  # a double tap
    assert again.link_id is None and "closed" in again.text
    assert await links_made(chat) == [(100000, "SGD", "cake")]


async def test_the_question_survives_a_restart(chat: ChatDriver) -> None:
    """Another Conversation on the same database (a restarted or second process) takes the answer."""
    await sgd_shop(chat)
    question = await ask(chat, "/charge 1.000 cake")
    other = build_services(chat.services.settings, clock=chat.clock)
    try:
        assert isinstance(other.conversation, Conversation) and other.conversation is not chat.conversation
        press = dataclasses.replace(chat.message(""), action=question.buttons[0].action)
        (card,) = await other.conversation.handle(press)
        assert card.link_id
    finally:
        await other.db.dispose()
    assert await links_made(chat) == [(100, "SGD", "cake")]


async def test_a_new_charge_replaces_the_question_and_old_ones_expire(chat: ChatDriver) -> None:
    await sgd_shop(chat)
    first = await ask(chat, "/charge 1.000 cake")
    await ask(chat, "/charge 2.000 pie")
    old = dataclasses.replace(chat.message(""), action=first.buttons[1].action)
    assert "closed" in (await chat.conversation.handle(old))[0].text
    (card,) = await chat("2")
    assert card.link_id and await links_made(chat) == [(200000, "SGD", "pie")]
    late = await ask(chat, "/charge 3.000 tart")
    chat.clock.advance(minutes=31)
    stale = dataclasses.replace(chat.message(""), action=late.buttons[1].action)
    assert "closed" in (await chat.conversation.handle(stale))[0].text
    assert len(await links_made(chat)) == 1
    async with chat.services.db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(QUESTIONS))).scalar_one() == 3


async def test_a_number_out_of_range_asks_again(chat: ChatDriver) -> None:
    await sgd_shop(chat)
    await ask(chat, "/charge 1.000 cake")
    assert "from 1 to 2" in await chat.text("7")
    assert (await chat("1"))[0].link_id


# ---------------------------------------------------------------- typos, greetings, odd digits, bidi


async def test_a_mistyped_command_gets_did_you_mean(chat: ChatDriver) -> None:
    await chat("/start")
    text = await chat.text("/chrage 25 cake")
    assert "Did you mean /charge 25 cake?" in text
    assert "/report" not in text  # not the whole help
    assert "Did you mean /links paid?" in await chat.text("/lnks paid")
    assert await links_made(chat) == []


async def test_greetings_get_a_short_friendly_answer(chat: ChatDriver) -> None:
    for text in ("hi", "Hello!", "hey there", "good morning"):
        answer = await chat.text(text)
        assert "Hi!" in answer and "/report" not in answer and len(answer) < 150, answer
    assert await chat.text("thanks!") == "You're welcome! 🙂"
    assert await chat.text("thank you so much") == "You're welcome! 🙂"


async def test_unicode_digits_in_an_expiry_never_reach_an_apology(chat: ChatDriver) -> None:
    await chat("/start")
    for text in ("/charge 25 cake exp ² days", "/charge 25 cake exp ٣ days", "/charge 25 cake exp ３d",
                 "/charge 25 cake exp ⑴ days", "/charge 25 cake exp 𝟐𝟎𝟐𝟔-١٢-٣١", "/charge ² cake"):
        replies = await chat(text)
        assert replies and all(r.text != APOLOGY for r in replies), text
        assert replies[-1].link_id or "For example" in replies[-1].text, (text, replies[-1].text)


async def test_numbers_that_are_not_plain_digits_are_never_read_as_an_amount(chat: ChatDriver) -> None:
    # NFKC would fold "2⁵" into 25 and "½" into "1⁄2": amounts the seller did not type. Refused, with the
    # reason and a corrected example; decimal digits of other scripts are still digits.
    await chat("/start")
    for text in ("/charge 2⁵ cake", "/charge ² cake", "/charge 1½ cake", "/charge ① cake"):
        reply = (await chat(text))[-1]
        assert reply.link_id is None and "plain digits" in reply.text, (text, reply.text)
        assert "For example: `/charge 25 cake`" in reply.text, (text, reply.text)
    for text in ("/charge 25 cake exp ² days", "/charge 25 cake exp 1½ days"):
        reply = (await chat(text))[-1]
        assert reply.link_id is None and reply.text.endswith("For example: `/charge 25 cake exp 3d`"), reply.text
    assert (await chat("/charge ２５ cake"))[-1].link_id is not None  # full-width digits are digits


async def test_bidi_controls_in_user_text_are_isolated_in_replies(chat: ChatDriver) -> None:
    # A profile name's direction controls are dropped (the person never typed it for us)…
    greeting = (await chat.as_user("mallory", display_name="Evil\u202eShop")("/start"))[0].text
    assert "EvilShop" in greeting and "\u202e" not in greeting
    # …typed ones are refused with the reason (tests/core/test_bidi.py), and right-to-left text that is
    # allowed is echoed inside FSI…PDI so it cannot move the amount beside it.
    refused = (await chat("/charge 25 cake \u202egnp\u2069 x"))[-1]
    assert refused.link_id is None and "direction controls" in refused.text
    card = (await chat("/charge 25 كعكة عيد ميلاد"))[-1]
    assert card.link_id and f"— {FSI}كعكة عيد ميلاد{PDI}" in card.text
    listing = (await chat("/links"))[0].text
    assert f"{FSI}كعكة" in listing and PDI in listing
