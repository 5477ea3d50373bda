"""A fake Telegram Bot API server on 127.0.0.1 for tests: records every call and can answer errors.

The real python-telegram-bot talks to it through `base_url=f"{fake.url}/bot"`. It answers the methods
paylinks uses with plausible objects (getMe, setWebhook, setMyCommands, sendMessage, editMessageText,
sendPhoto, answerInlineQuery, getUpdates, …), keeps the messages it "sent" so edits of unknown messages
fail like Telegram's, and can be told to answer like Telegram does when things go wrong:

    fake.fail("sendMessage", status=429, description="Too Many Requests: retry after 7",
              parameters={"retry_after": 7})
    fake.block("111")           # 403 "Forbidden: bot was blocked by the user" for that chat
    fake.lose_chat("222")       # 400 "Bad Request: chat not found"
    fake.migrate("-100", "-1001234")  # 400 with parameters.migrate_to_chat_id

PTB posts form-encoded (or multipart) bodies whose non-string values are JSON strings; `Call.params`
holds them decoded.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# Parameters PTB sends as JSON strings.
_JSON_PARAMS = {
    "reply_markup", "results", "commands", "allowed_updates", "link_preview_options", "reply_parameters",
    "button", "entities", "caption_entities", "scope",
}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    filenames: dict[str, str] = field(default_factory=dict)  # the multipart parts' file names

    @property
    def chat_id(self) -> str | None:
        value = self.params.get("chat_id")
        return None if value is None else str(value)

    @property
    def keyboard(self) -> list[list[dict[str, Any]]]:
        markup = self.params.get("reply_markup") or {}
        return list(markup.get("inline_keyboard") or [])


@dataclass
class _Failure:
    method: str | None  # None: any method
    chat_id: str | None  # None: any chat
    status: int
    description: str
    parameters: dict[str, Any] | None
    times: int | None  # None: until cleared


class FakeTelegram:
    def __init__(self, token: str = "123456:TEST-token", *, username: str = "paylinks_test_bot",
                 bot_id: int = 123456) -> None:
        self.token = token
        self.username = username
        self.bot_id = bot_id
        self.calls: list[Call] = []
        self.webhook: dict[str, Any] = {}
        self.commands: list[dict[str, Any]] = []  # the menu for everyone (no language_code)
        # language_code ("" for everyone) -> the menu setMyCommands set for it.
        self.menus: dict[str, list[dict[str, Any]]] = {}
        self._failures: list[_Failure] = []
        self._message_ids = itertools.count(1000)
        # (chat_id, message_id) -> text of the messages this bot "sent"; inline messages by their id.
        self.messages: dict[tuple[str, str], str] = {}
        self.inline_messages: dict[str, str] = {}
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------ life cycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeTelegram:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._handle)
        app.router.add_get("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ steering

    def fail(self, method: str | None, *, status: int, description: str, chat_id: str | None = None,
             parameters: dict[str, Any] | None = None, times: int | None = 1) -> None:
        """Answer the next `times` matching calls (None: all of them) with this error."""
        self._failures.append(_Failure(method, chat_id, status, description, parameters, times))

    def rate_limit(self, method: str, retry_after: int, *, times: int | None = 1) -> None:
        self.fail(method, status=429, description=f"Too Many Requests: retry after {retry_after}",
                  parameters={"retry_after": retry_after}, times=times)

    def block(self, chat_id: str) -> None:
        self.fail(None, chat_id=str(chat_id), status=403, description="Forbidden: bot was blocked by the user",
                  times=None)

    def lose_chat(self, chat_id: str) -> None:
        self.fail(None, chat_id=str(chat_id), status=400, description="Bad Request: chat not found", times=None)

    def migrate(self, chat_id: str, new_chat_id: str) -> None:
        self.fail(None, chat_id=str(chat_id), status=400,
                  description="Bad Request: group chat was upgraded to a supergroup chat",
                  parameters={"migrate_to_chat_id": int(new_chat_id)}, times=None)

    def clear_failures(self) -> None:
        self._failures.clear()

    def queue_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Hand an update to the next getUpdates (polling mode)."""
        self._updates.append(update)
        self._notify()
        return update

    # ------------------------------------------------------------ reading what happened

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def wait_for(self, predicate: Callable[[], Any], within: float = 10.0) -> Any:
        """Wait until predicate() is truthy (re-checked after every call); return its value."""
        try:
            async with asyncio.timeout(within), self._changed:
                while not (result := predicate()):
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"fake Telegram: condition not met; calls were {self.summary()}") from None
        return result

    async def wait_for_calls(self, method: str, count: int = 1, within: float = 10.0) -> list[Call]:
        return await self.wait_for(lambda: len(calls := self.calls_to(method)) >= count and calls, within)

    def summary(self) -> list[str]:
        return [f"{c.method}({c.chat_id or ''})" for c in self.calls]

    def _notify(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        asyncio.get_running_loop().create_task(notify())

    # ------------------------------------------------------------ update builders (what Telegram posts)

    def next_update_id(self) -> int:
        return next(self._update_ids)

    def message_update(self, text: str, *, chat_id: int = 111, user_id: int = 111, chat_type: str = "private",
                       first_name: str = "Alice", username: str | None = "alice", title: str = "Cake Team",
                       via_bot: bool = False, language_code: str | None = None) -> dict[str, Any]:
        """A `message` update; a leading /command gets its bot_command entity like Telegram gives it."""
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat.update(first_name=first_name)
        else:
            chat.update(title=title)
        message: dict[str, Any] = {
            "message_id": next(self._message_ids), "date": int(time.time()), "chat": chat, "from": user,
            "text": text,
        }
        if text.startswith("/"):
            length = len(text.split()[0])
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        if via_bot:
            message["via_bot"] = self.bot_user()
        return {"update_id": self.next_update_id(), "message": message}

    def inline_query_update(self, query: str, *, user_id: int = 111, first_name: str = "Alice",
                            query_id: str = "iq-1", language_code: str | None = None) -> dict[str, Any]:
        """`language_code`: the IETF tag of the person's Telegram language ("th", "zh-hans"), if any."""
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if language_code:
            user["language_code"] = language_code
        return {
            "update_id": self.next_update_id(),
            "inline_query": {"id": query_id, "from": user, "query": query, "offset": "", "chat_type": "private"},
        }

    def chosen_inline_result_update(self, result_id: str, query: str, *, user_id: int = 111,
                                    first_name: str = "Alice", inline_message_id: str = "inl-1") -> dict[str, Any]:
        return {
            "update_id": self.next_update_id(),
            "chosen_inline_result": {
                "result_id": result_id, "from": {"id": user_id, "is_bot": False, "first_name": first_name},
                "query": query, "inline_message_id": inline_message_id,
            },
        }

    def callback_query_update(self, data: str, *, message_id: int, chat_id: int = 111, user_id: int = 111,
                              first_name: str = "Alice", chat_type: str = "private") -> dict[str, Any]:
        """A tap on an inline-keyboard button with `callback_data` under one of the bot's messages."""
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        return {
            "update_id": self.next_update_id(),
            "callback_query": {
                "id": f"cbq-{self.next_update_id()}", "chat_instance": "ci-1", "data": data,
                "from": {"id": user_id, "is_bot": False, "first_name": first_name},
                "message": {"message_id": message_id, "date": int(time.time()), "chat": chat,
                            "from": self.bot_user(), "text": "question"},
            },
        }

    def my_chat_member_update(self, old: str, new: str, *, chat_id: int = 111, user_id: int = 111,
                              chat_type: str = "private") -> dict[str, Any]:
        """The bot's own membership changed: "member" -> "kicked" is a user blocking it in a private chat."""
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type != "private":
            chat["title"] = "Cake Team"
        return {
            "update_id": self.next_update_id(),
            "my_chat_member": {
                "chat": chat, "from": {"id": user_id, "is_bot": False, "first_name": "Alice"},
                "date": int(time.time()),
                "old_chat_member": _membership(self.bot_user(), old),
                "new_chat_member": _membership(self.bot_user(), new),
            },
        }

    def bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Paylinks", "username": self.username}

    # ------------------------------------------------------------ the HTTP side

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params, files, filenames = await _read_params(request)
        call = Call(method, params, files, filenames)
        self.calls.append(call)
        self._notify()
        failure = self._take_failure(call)
        if failure is not None:
            return _error(failure.status, failure.description, failure.parameters)
        answer = getattr(self, f"_api_{method}", None)
        if answer is None:
            return _error(404, "Not Found")
        result = answer(params) if method != "getUpdates" else await self._api_getUpdates(params)
        if isinstance(result, web.Response):
            return result
        return web.json_response({"ok": True, "result": result})

    def _take_failure(self, call: Call) -> _Failure | None:
        for failure in self._failures:
            if failure.method not in (None, call.method):
                continue
            if failure.chat_id is not None and failure.chat_id != call.chat_id:
                continue
            if failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
            return failure
        return None

    def _api_getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**self.bot_user(), "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": True}

    def _api_setWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = params
        return True

    def _api_deleteWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = {}
        return True

    def _api_getWebhookInfo(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": self.webhook.get("url", ""), "has_custom_certificate": False, "pending_update_count": 0,
                "allowed_updates": self.webhook.get("allowed_updates", [])}

    def _api_setMyCommands(self, params: dict[str, Any]) -> bool | web.Response:
        """Bot API: `language_code` is empty (everyone without a menu of their own) or a two-letter ISO 639-1
        code; each command is 1-32 of a-z, 0-9 and _, its description 1-256 characters."""
        language = str(params.get("language_code") or "")
        if language and not _ISO_639_1.fullmatch(language):
            return _error(400, "Bad Request: invalid language code specified")
        commands = list(params.get("commands") or [])
        for command in commands:
            if not _COMMAND.fullmatch(str(command.get("command") or "")):
                return _error(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description") or "")) <= 256:
                return _error(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        self.menus[language] = commands
        if not language:
            self.commands = commands
        return True

    def _api_getMyCommands(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return self.menus.get(str(params.get("language_code") or ""), [])

    def _message(self, chat_id: str, **fields: Any) -> dict[str, Any]:
        numeric = int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id
        chat_type = "private" if isinstance(numeric, int) and numeric > 0 else "group"
        return {"message_id": next(self._message_ids), "date": int(time.time()),
                "chat": {"id": numeric, "type": chat_type}, "from": self.bot_user(), **fields}

    def _api_sendMessage(self, params: dict[str, Any]) -> dict[str, Any] | web.Response:
        text = str(params.get("text") or "")
        if not text:
            return _error(400, "Bad Request: message text is empty")
        message = self._message(str(params["chat_id"]), text=text)
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        self.messages[(str(params["chat_id"]), str(message["message_id"]))] = text
        return message

    def _api_sendPhoto(self, params: dict[str, Any]) -> dict[str, Any]:
        photo = [{"file_id": f"photo-{next(self._message_ids)}", "file_unique_id": "u1", "width": 300,
                  "height": 300}]
        return self._message(str(params["chat_id"]), photo=photo, caption=params.get("caption", ""))

    def _api_sendDocument(self, params: dict[str, Any]) -> dict[str, Any] | web.Response:
        # Bot API: `document` is a multipart upload (or a file_id / URL string); without one Telegram says so.
        call = self.calls[-1]
        upload = call.files.get("document")
        if upload is None and not params.get("document"):
            return _error(400, "Bad Request: there is no document in the request")
        size = len(upload) if upload is not None else 0
        document = {"file_id": f"doc-{next(self._message_ids)}", "file_unique_id": "d1",
                    "file_name": call.filenames.get("document") or "document", "mime_type": "application/pdf",
                    "file_size": size}
        return self._message(str(params["chat_id"]), document=document, caption=params.get("caption", ""))

    def _api_editMessageText(self, params: dict[str, Any]) -> dict[str, Any] | bool | web.Response:
        text = str(params.get("text") or "")
        if params.get("inline_message_id"):
            key = str(params["inline_message_id"])
            if self.inline_messages.get(key) == text:
                return _error(400, "Bad Request: message is not modified")
            self.inline_messages[key] = text
            return True
        ref = (str(params.get("chat_id")), str(params.get("message_id")))
        if ref not in self.messages:
            return _error(400, "Bad Request: message to edit not found")
        if self.messages[ref] == text:
            return _error(400, "Bad Request: message is not modified: specified new message content and reply "
                               "markup are exactly the same as a current content and reply markup of the message")
        self.messages[ref] = text
        message = self._message(ref[0], text=text)
        message["message_id"] = int(ref[1])
        return message

    def _api_answerInlineQuery(self, params: dict[str, Any]) -> bool:
        return True

    def _api_answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        return True

    def _api_close(self, params: dict[str, Any]) -> bool:
        return True

    async def _api_getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        # Long polling: hold the request until an update is queued or the timeout passes.
        deadline = asyncio.get_running_loop().time() + min(timeout, 5.0)
        while True:
            due = [u for u in self._updates if u["update_id"] >= offset]
            if due or asyncio.get_running_loop().time() >= deadline:
                # Confirmed updates (below offset) are forgotten like Telegram forgets them.
                self._updates = due
                return due
            await asyncio.sleep(0.02)


async def _read_params(request: web.Request) -> tuple[dict[str, Any], dict[str, bytes], dict[str, str]]:
    params: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    filenames: dict[str, str] = {}
    if request.content_type == "application/json":
        body = await request.json() if request.can_read_body else {}
        return dict(body), files, filenames
    form = await request.post()
    for name, value in form.items():
        if hasattr(value, "file"):
            files[name] = value.file.read()
            filenames[name] = str(getattr(value, "filename", "") or "")
            continue
        text = str(value)
        if name in _JSON_PARAMS:
            try:
                params[name] = json.loads(text)
                continue
            except ValueError:
                pass
        params[name] = text
    params.update(request.query)
    return params, files, filenames


def _membership(user: dict[str, Any], status: str) -> dict[str, Any]:
    member: dict[str, Any] = {"user": user, "status": status}
    if status == "kicked":
        member["until_date"] = 0
    if status == "administrator":
        member.update(can_be_edited=False, is_anonymous=False, can_manage_chat=True, can_delete_messages=False,
                      can_manage_video_chats=False, can_restrict_members=False, can_promote_members=False,
                      can_change_info=False, can_invite_users=False, can_post_stories=False,
                      can_edit_stories=False, can_delete_stories=False)
    return member


_ISO_639_1 = re.compile(r"[a-z]{2}")
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)
