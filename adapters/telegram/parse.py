"""Pure parsing: a Telegram Update → the core's IncomingMessage (or None when it is not for us).

Telegram marks a command with a `bot_command` entity at offset 0; in groups it may carry the bot's name
(`/charge@paylinks_bot 25 cake`). A command addressed to another bot is not ours, and the core gets the
command without our name.
"""

from __future__ import annotations

from telegram import Message, MessageEntity, Update
from telegram.constants import ChatType

from core.ports import IncomingMessage

PLATFORM = "telegram"
GROUP_TYPES = frozenset({ChatType.GROUP, ChatType.SUPERGROUP})


def _command_entity(message: Message) -> MessageEntity | None:
    for entity in message.entities:
        if entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
            return entity
    return None


def _addressable(update: Update) -> Message | None:
    """A new text message from a person (not an edit, a channel post, or a card sent through a bot)."""
    message = update.message
    if message is None or message.from_user is None or message.text is None:
        return None
    if message.from_user.is_bot or message.via_bot is not None:
        return None
    return message


def parse_command(update: Update, bot_username: str) -> IncomingMessage | None:
    """The command in this update if it is addressed to us, else None."""
    message = _addressable(update)
    if message is None:
        return None
    entity = _command_entity(message)
    if entity is None:
        return None
    text = message.text or ""
    # Entity offsets count UTF-16 code units; at offset 0 the command itself is ASCII, so they agree.
    token, rest = text[: entity.length], text[entity.length:]
    name, _, addressee = token.partition("@")
    if addressee and addressee.lower() != bot_username.lower():
        return None  # /charge@OtherBot: another bot's command in a shared group
    if name.lower() == "/start":
        rest = ""  # a deep-link payload (t.me/bot?start=inline) carries nothing the core needs
    return _incoming(message, f"{name}{rest}")


def parse_private_text(update: Update) -> IncomingMessage | None:
    """A non-command text message in a private chat (it gets a short hint), else None."""
    message = _addressable(update)
    if message is None or message.chat.type != ChatType.PRIVATE or _command_entity(message) is not None:
        return None
    return _incoming(message, message.text or "")


def parse_callback(update: Update) -> IncomingMessage | None:
    """A pressed answer button (callback query on one of our messages) as the core's message with `action`."""
    query = update.callback_query
    if query is None or not query.data or query.message is None:
        return None
    chat = query.message.chat
    user = query.from_user
    return IncomingMessage(
        platform=PLATFORM,
        user_id=str(user.id),
        address=str(chat.id),
        text="",
        display_name=user.full_name,
        is_group=chat.type in GROUP_TYPES,
        extra={"chat_type": str(chat.type), "username": user.username or ""},
        action=str(query.data),
        language=user.language_code,
    )


def _incoming(message: Message, text: str) -> IncomingMessage:
    user = message.from_user
    assert user is not None
    chat = message.chat
    return IncomingMessage(
        platform=PLATFORM,
        user_id=str(user.id),
        address=str(chat.id),
        text=text.strip(),
        display_name=user.full_name,
        is_group=chat.type in GROUP_TYPES,
        extra={"message_id": message.message_id, "chat_type": str(chat.type), "username": user.username or ""},
        language=user.language_code,
    )
