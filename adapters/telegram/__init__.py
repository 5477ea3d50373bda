"""Telegram: the paylinks bot on python-telegram-bot.

- `render` and `parse`: pure functions (Reply → Bot API kwargs, Update → IncomingMessage).
- `sender`: TelegramSender, the ChatSender the outbox uses, with Telegram's errors classified.
- `bot`: TelegramBot, the PTB Application inside the aiohttp app (webhook route, polling, inline mode).
- `cli`: `paylinks telegram set-webhook | delete-webhook | webhook-info`.

Submodules are imported explicitly so that importing this package does not load PTB.
"""
