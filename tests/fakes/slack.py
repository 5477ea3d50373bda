"""A fake Slack Web API on 127.0.0.1 for tests: records every call and can answer like Slack does on errors.

The real slack_sdk / slack-bolt talk to it through `AsyncWebClient(base_url=fake.api_url)`. It answers
the methods paylinks uses (auth.test, chat.postMessage, chat.update, chat.postEphemeral, views.publish,
chat.unfurl, oauth.v2.access) with plausible objects, checks the bearer token, keeps the messages the
bot "posted" (chat.update of an unknown message fails with message_not_found), and serves response_urls
under /respond/{key}. Failures are scripted:

    fake.fail("chat.postMessage", "ratelimited", status=429, retry_after=7)
    fake.fail("chat.update", "channel_not_found", times=None)      # until cleared
    fake.private_channel("G0SECRET")                               # not_in_channel there
    fake.fail("chat.postMessage", status=503)                       # an HTML 503 page

`Call.params` holds the decoded arguments whether the SDK sent JSON or a form.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# Arguments slack_sdk sends as JSON strings inside form bodies.
_JSON_FORM_PARAMS = {"blocks", "attachments", "unfurls", "view", "metadata"}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    token: str | None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def channel(self) -> str | None:
        value = self.params.get("channel")
        return None if value is None else str(value)

    def text_of_blocks(self) -> str:
        """Every text in the blocks (section texts, button labels and URLs), for assertions."""
        return _texts(self.params.get("blocks") or [])


def _texts(node: Any) -> str:
    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("text", "url") and isinstance(item, str):
                    out.append(item)
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(node)
    return "\n".join(out)


@dataclass
class _Failure:
    method: str | None  # None: any method
    error: str
    status: int
    retry_after: float | None
    times: int | None  # None: until cleared
    channel: str | None


@dataclass
class Installation:
    """What oauth.v2.access hands out for one authorization code."""

    team_id: str
    team_name: str
    bot_token: str
    bot_user_id: str = "U0INSTBOT"
    installer_id: str = "U0INSTALLER"


class FakeSlack:
    def __init__(
        self,
        *,
        team_id: str = "T0PAYLINKS",
        team_name: str = "Cake Shop",
        bot_token: str = "xoxb-test-token",
        bot_user_id: str = "U0BOT",
        client_id: str = "1234.5678",
        client_secret: str = "test-client-secret",
    ) -> None:
        self.team_id = team_id
        self.team_name = team_name
        self.bot_token = bot_token
        self.bot_user_id = bot_user_id
        self.client_id = client_id
        self.client_secret = client_secret
        # token -> team id; calls with any other token fail with invalid_auth.
        self.tokens: dict[str, str] = {bot_token: team_id}
        self.calls: list[Call] = []
        self.responses: list[tuple[str, dict[str, Any]]] = []  # (response_url key, body)
        # (channel, ts) -> the message as last posted or updated.
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.home_views: dict[str, dict[str, Any]] = {}
        # Slack user id -> the locale users.info gives with include_locale (Slack's default: en-US).
        self.user_locales: dict[str, str] = {}
        self.oauth_codes: dict[str, Installation] = {}
        # files.getUploadURLExternal -> (filename, length); the bytes POSTed to its upload_url; shared files.
        self.upload_slots: dict[str, tuple[str, int]] = {}
        self.uploads: dict[str, bytes] = {}
        self.shared_files: list[dict[str, Any]] = []
        self._private: set[str] = set()
        self._failures: list[_Failure] = []
        self._ts = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, key: str = "r1") -> str:
        return f"{self.url}/respond/{key}"

    async def start(self) -> FakeSlack:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        # Slack's Web API takes GET with the arguments in the query too; slack_sdk reads users.info that way.
        app.router.add_get("/api/{method}", self._api)
        app.router.add_post("/respond/{key}", self._respond)
        app.router.add_post("/upload/v1/{file_id}", self._upload)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[union-attr]
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------ scripting

    def fail(
        self, method: str | None, error: str = "internal_error", *, status: int = 200,
        retry_after: float | None = None, times: int | None = 1, channel: str | None = None,
    ) -> None:
        self._failures.append(_Failure(method, error, status, retry_after, times, channel))

    def clear_failures(self) -> None:
        self._failures.clear()

    def private_channel(self, channel: str) -> None:
        """A private channel the bot was not invited to: posting there answers not_in_channel."""
        self._private.add(channel)

    def add_oauth_code(self, code: str, installation: Installation) -> None:
        self.oauth_codes[code] = installation

    # ------------------------------------------------------------ reading

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def wait_for(
        self, method: str, count: int = 1, *, within: float = 10.0,
        where: Callable[[Call], bool] | None = None,
    ) -> list[Call]:
        """Wait until `count` calls of `method` (matching `where`) arrived; a safety timeout, not a measure."""

        def matching() -> list[Call]:
            return [c for c in self.calls_to(method) if where is None or where(c)]

        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(matching()) >= count)
        return matching()

    async def wait_for_response(
        self, count: int = 1, *, key: str | None = None, within: float = 10.0
    ) -> list[tuple[str, dict[str, Any]]]:
        """Wait for `count` bodies posted to response_urls (to the one named `key`, if given)."""

        def matching() -> list[tuple[str, dict[str, Any]]]:
            return [r for r in self.responses if key is None or r[0] == key]

        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(matching()) >= count)
        return matching()

    # ------------------------------------------------------------ serving

    async def _record(self, call: Call) -> None:
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    async def _respond(self, request: web.Request) -> web.Response:
        body = await request.json()
        async with self._changed:
            self.responses.append((request.match_info["key"], body))
            self._changed.notify_all()
        return web.Response(text="ok")

    async def _upload(self, request: web.Request) -> web.Response:
        # files.slack.com's upload URL: the raw bytes (or one multipart part); 200 "OK - <length>" like Slack.
        file_id = request.match_info["file_id"]
        if file_id not in self.upload_slots:
            return web.Response(status=404, text="not found")
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            part = next(iter(form.values()))
            body = part.file.read() if hasattr(part, "file") else str(part).encode()
        else:
            body = await request.read()
        self.uploads[file_id] = body
        return web.Response(text=f"OK - {len(body)}")

    @staticmethod
    async def _params(request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        else:
            form = await request.post()
            for key, value in form.items():
                text = value if isinstance(value, str) else ""
                if key in _JSON_FORM_PARAMS:
                    try:
                        params[key] = json.loads(text)
                        continue
                    except ValueError:
                        pass
                params[key] = text
        return params

    @staticmethod
    def _token(request: web.Request, params: dict[str, Any]) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[len("Bearer "):]
        token = params.get("token")
        return str(token) if token else None

    def _scripted_failure(self, method: str, channel: str | None) -> _Failure | None:
        for failure in self._failures:
            if failure.method not in (None, method):
                continue
            if failure.channel is not None and failure.channel != channel:
                continue
            if failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
            return failure
        return None

    @staticmethod
    def _error(error: str, status: int = 200, retry_after: float | None = None) -> web.Response:
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
        if status >= 500:
            return web.Response(status=status, text="<html>Service Unavailable</html>", content_type="text/html",
                                headers=headers)
        return web.json_response({"ok": False, "error": error}, status=status, headers=headers)

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        token = self._token(request, params)
        call = Call(method, params, token, {k: v for k, v in request.headers.items() if k.lower() != "authorization"})
        await self._record(call)
        failure = self._scripted_failure(method, call.channel)
        if failure is not None:
            return self._error(failure.error, failure.status, failure.retry_after)
        if method == "oauth.v2.access":
            return self._oauth_access(request, params)
        if token is None:
            return self._error("not_authed")
        team = self.tokens.get(token)
        if team is None:
            return self._error("invalid_auth")
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": True})
        result: web.Response = handler(team, params)
        return result

    # ------------------------------------------------------------ methods

    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def _m_users_info(self, team: str, params: dict[str, Any]) -> web.Response:
        """users.info: Slack answers `locale` only when asked with include_locale=true."""
        user = str(params.get("user") or "")
        if not user:
            return self._error("user_not_found")
        found: dict[str, Any] = {"id": user, "team_id": team, "name": user.lower()}
        if str(params.get("include_locale")).lower() in ("true", "1"):
            found["locale"] = self.user_locales.get(user, "en-US")
        return web.json_response({"ok": True, "user": found})

    def _m_auth_test(self, team: str, params: dict[str, Any]) -> web.Response:
        return web.json_response({
            "ok": True, "url": "https://cakeshop.slack.com/", "team": self.team_name, "user": "paylinks",
            "team_id": team, "user_id": self.bot_user_id, "bot_id": "B0BOT", "is_enterprise_install": False,
        })

    def _m_chat_postMessage(self, team: str, params: dict[str, Any]) -> web.Response:
        channel = str(params.get("channel") or "")
        if not channel:
            return self._error("channel_not_found")
        if channel in self._private:
            return self._error("not_in_channel")
        ts = self._next_ts()
        message = {"text": params.get("text"), "blocks": params.get("blocks"), "thread_ts": params.get("thread_ts"),
                   "team": team}
        self.messages[(channel, ts)] = message
        return web.json_response({"ok": True, "channel": channel, "ts": ts, "message": {**message, "ts": ts}})

    def _m_files_getUploadURLExternal(self, team: str, params: dict[str, Any]) -> web.Response:
        filename, length = str(params.get("filename") or ""), str(params.get("length") or "")
        if not filename or not length.isdigit():
            return self._error("invalid_arguments")
        file_id = f"F{next(self._ts):08d}"
        self.upload_slots[file_id] = (filename, int(length))
        return web.json_response({"ok": True, "upload_url": f"{self.url}/upload/v1/{file_id}", "file_id": file_id})

    def _m_files_completeUploadExternal(self, team: str, params: dict[str, Any]) -> web.Response:
        files = params.get("files")
        if isinstance(files, str):
            try:
                files = json.loads(files)
            except ValueError:
                return self._error("invalid_arguments")
        if not isinstance(files, list) or not files:
            return self._error("invalid_arguments")
        channel = str(params.get("channel_id") or params.get("channels") or "")
        if channel in self._private:
            return self._error("not_in_channel")
        done = []
        for entry in files:
            file_id = str(entry.get("id") or "")
            if file_id not in self.uploads:
                return self._error("file_not_found")
            name, length = self.upload_slots[file_id]
            if len(self.uploads[file_id]) != length:
                return self._error("file_upload_size_mismatch")
            shared = {"id": file_id, "name": name, "title": entry.get("title") or name, "channel": channel,
                      "thread_ts": params.get("thread_ts"), "size": length}
            self.shared_files.append(shared)
            done.append({"id": file_id, "title": shared["title"]})
        return web.json_response({"ok": True, "files": done})

    def _m_chat_update(self, team: str, params: dict[str, Any]) -> web.Response:
        key = (str(params.get("channel") or ""), str(params.get("ts") or ""))
        if key not in self.messages:
            return self._error("message_not_found")
        self.messages[key] = {**self.messages[key], "text": params.get("text"), "blocks": params.get("blocks")}
        return web.json_response({"ok": True, "channel": key[0], "ts": key[1], "text": params.get("text")})

    def _m_chat_postEphemeral(self, team: str, params: dict[str, Any]) -> web.Response:
        return web.json_response({"ok": True, "message_ts": self._next_ts()})

    def _m_views_publish(self, team: str, params: dict[str, Any]) -> web.Response:
        user = str(params.get("user_id") or "")
        view = params.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        self.home_views[user] = view or {}
        return web.json_response({"ok": True, "view": {"id": "V0HOME", **(view or {})}})

    def _m_chat_unfurl(self, team: str, params: dict[str, Any]) -> web.Response:
        return web.json_response({"ok": True})

    def _oauth_access(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        client_id, client_secret = params.get("client_id"), params.get("client_secret")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
        if (client_id, client_secret) != (self.client_id, self.client_secret):
            return self._error("invalid_client_id")
        installation = self.oauth_codes.pop(str(params.get("code") or ""), None)
        if installation is None:
            return self._error("invalid_code")
        self.tokens[installation.bot_token] = installation.team_id
        return web.json_response({
            "ok": True,
            "app_id": "A0PAYLINKS",
            "authed_user": {"id": installation.installer_id},
            "scope": "commands,chat:write,chat:write.public,links:read,links:write",
            "token_type": "bot",
            "access_token": installation.bot_token,
            "bot_user_id": installation.bot_user_id,
            "team": {"id": installation.team_id, "name": installation.team_name},
            "enterprise": None,
            "is_enterprise_install": False,
        })
