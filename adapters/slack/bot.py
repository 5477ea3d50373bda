"""The Slack app on slack-bolt's AsyncApp, inside the paylinks aiohttp app.

One route, POST /slack/events, takes slash commands, interactivity and the Events API; Bolt verifies
X-Slack-Signature (HMAC over the raw body, 5-minute window) before any listener runs. Listeners ack at
once and do their work afterwards (Bolt's process_before_response=False), so a slow database never
costs the 3-second ack. GET /slack/install and /slack/oauth_redirect run Bolt's OAuth flow when the app
is configured for many workspaces.

The AsyncApp and its HTTP session are built in `start()`, inside the running loop, never at import.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.home import HomeQueries
from adapters.slack.parse import (
    PLATFORM,
    delivery_id,
    parse_address,
    parse_block_action,
    parse_slash_command,
    shared_links,
    user_key,
)
from adapters.slack.render import home_view, message_payload, not_in_channel_reply, unfurl
from adapters.slack.sender import SlackPermanent, SlackSender, classify, post_message, thread_address
from adapters.slack.stores import InstallationStore, OAuthStateStore
from core import i18n
from core.clock import Clock, utcnow
from core.conversation import APOLOGY
from core.db import Database
from core.links import LinkService
from core.merchants import MerchantService
from core.ports import IncomingMessage, Permanent, Reply, SendError
from core.secrets import SecretBox
from core.settings import reveal

log = logging.getLogger("paylinks.slack")

EVENTS_PATH = "/slack/events"
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"

# What the bot needs: slash commands, posting (also in public channels it was not invited to), unfurls.
BOT_SCOPES = ("commands", "chat:write", "chat:write.public", "links:read", "links:write",
              "files:write",  # files:write: the /invoice PDF (files_upload_v2)
              "users:read")  # users:read: users.info with include_locale, the person's language
# How long a person's Slack locale (users.info) is trusted before it is asked again.
LOCALE_TTL_S = 3600.0
# Shutdown waits this long for answers already being worked on.
DRAIN_TIMEOUT_S = 10.0
# Slack shows at most a handful of unfurls per message; never look up more links than this.
MAX_UNFURLS = 5
# Posting a link into a channel the bot cannot write to.
CANNOT_POST = frozenset({"not_in_channel", "channel_not_found", "is_archived", "restricted_action"})


Handler = Callable[[IncomingMessage], Awaitable[list[Reply]]]


class SlackConfigError(ValueError):
    """A [slack] setting that cannot work; the message names the key."""


@dataclass(frozen=True, slots=True)
class SlackOptions:
    signing_secret: str
    public_base_url: str
    api_base_url: str = "https://slack.com/api/"
    bot_token: str = ""
    client_id: str = ""
    client_secret: str = ""

    @property
    def multi_workspace(self) -> bool:
        """OAuth installs (many workspaces) when client id and secret are set; else the one bot token."""
        return bool(self.client_id and self.client_secret)

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_base_url.rstrip('/')}{REDIRECT_PATH}"

    @property
    def authorization_url(self) -> str:
        """slack.com/oauth/v2/authorize next to the Web API base (GovSlack, or the fake in tests)."""
        parts = urlsplit(self.api_base_url)
        return f"{parts.scheme}://{parts.netloc}/oauth/v2/authorize"


def options_from_settings(slack: Any, *, public_base_url: str) -> SlackOptions:
    """SlackOptions from bots.config's SlackSettings (duck-typed: adapters do not import bots)."""
    return SlackOptions(
        signing_secret=reveal(slack.signing_secret),
        public_base_url=public_base_url,
        api_base_url=str(slack.api_base_url),
        bot_token=reveal(slack.bot_token),
        client_id=str(slack.client_id),
        client_secret=reveal(slack.client_secret),
    )


def check_settings(slack: Any) -> None:
    """Fail closed at start-up on a [slack] section that cannot work."""
    if not reveal(slack.signing_secret):
        raise SlackConfigError("slack.signing_secret: required when slack.enabled (every request is verified)")
    if bool(str(slack.client_id)) != bool(reveal(slack.client_secret)):
        raise SlackConfigError("slack.client_id and slack.client_secret: set both (OAuth installs) or neither")
    if not str(slack.client_id) and not reveal(slack.bot_token):
        raise SlackConfigError("slack.bot_token: required unless slack.client_id/client_secret are set")
    if not str(slack.api_base_url).startswith(("https://", "http://")):
        raise SlackConfigError("slack.api_base_url: expected an http(s) URL such as https://slack.com/api/")


def build_sender(options: SlackOptions, db: Database, box: SecretBox | None = None) -> SlackSender:
    """The Slack ChatSender; pure construction, so the worker process can build it too."""
    # No retry handlers: the outbox is the one place that decides about retries.
    client = AsyncWebClient(base_url=options.api_base_url, retry_handlers=[])
    if options.multi_workspace:
        if box is None:
            raise ValueError("slack: OAuth installs store bot tokens, which need the secret key (core/secrets.py)")
        store = InstallationStore(db, client_id=options.client_id, box=box)
        return SlackSender(client, store.bot_token)
    token = options.bot_token

    async def single_token(team_id: str) -> str | None:
        return token

    return SlackSender(client, single_token)


class SlackAdapter:
    def __init__(
        self,
        options: SlackOptions,
        *,
        db: Database,
        links: LinkService,
        merchants: MerchantService,
        handle: Handler,
        sender: SlackSender,
        box: SecretBox,
        clock: Clock = utcnow,
    ) -> None:
        self.options = options
        self._box = box
        self.links = links
        self.handle = handle
        self.sender = sender
        self.home = HomeQueries(db, links, merchants, clock=clock)
        self._db = db
        self.bolt: AsyncApp | None = None
        self.team_id: str | None = None  # single-workspace mode: from auth.test
        self._session: aiohttp.ClientSession | None = None
        self._inflight: set[asyncio.Task[Any]] = set()
        # Slack user key -> (their locale or None, monotonic expiry): users.info at most hourly per person.
        self._locales: dict[str, tuple[str | None, float]] = {}

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        options = self.options
        if options.multi_workspace:
            client = AsyncWebClient(base_url=options.api_base_url, session=self._session)
            oauth = AsyncOAuthSettings(
                client_id=options.client_id,
                client_secret=options.client_secret,
                scopes=list(BOT_SCOPES),
                redirect_uri=options.redirect_uri,
                install_path=INSTALL_PATH,
                redirect_uri_path=REDIRECT_PATH,
                authorization_url=options.authorization_url,
                installation_store=InstallationStore(self._db, client_id=options.client_id, box=self._box),
                state_store=OAuthStateStore(self._db),
                installation_store_bot_only=True,  # paylinks acts as its bot only, never as the installer
                logger=log,
            )
            install_url = f"{options.public_base_url.rstrip('/')}{INSTALL_PATH}"
            self.bolt = AsyncApp(
                client=client, signing_secret=options.signing_secret, oauth_settings=oauth,
                installation_store_bot_only=True, logger=log,
                user_facing_authorize_error_message=(
                    f"paylinks is not installed in this workspace (any more). Add it at {install_url}"
                ),
            )
            self.bolt.enable_token_revocation_listeners()
        else:
            client = AsyncWebClient(base_url=options.api_base_url, token=options.bot_token, session=self._session)
            await self._check_token(client)
            self.bolt = AsyncApp(client=client, signing_secret=options.signing_secret, logger=log)
            self.bolt.event("app_uninstalled")(self._on_ignored_event)
            self.bolt.event("tokens_revoked")(self._on_ignored_event)
        self._register(self.bolt)
        log.info("slack app ready mode=%s team=%s", "oauth" if options.multi_workspace else "single",
                 self.team_id or "-")

    async def _check_token(self, client: AsyncWebClient) -> None:
        """Single-workspace mode: auth.test first, so a wrong token stops start-up instead of every answer."""
        try:
            auth = await client.auth_test()
        except Exception as exc:
            error = classify(exc)
            if isinstance(error, Permanent):
                raise SlackConfigError(f"slack.bot_token: Slack rejected it ({error})") from None
            log.warning("slack auth.test failed (%s); continuing, Bolt retries on the first request", error)
            return
        self.team_id = str(auth.get("team_id") or "") or None

    async def close(self) -> None:
        pending = {t for t in self._inflight if not t.done()}
        if pending:
            _, still = await asyncio.wait(pending, timeout=DRAIN_TIMEOUT_S)
            for task in still:
                task.cancel()
            if still:
                await asyncio.gather(*still, return_exceptions=True)
        self.bolt = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def idle(self) -> None:
        """Wait for the listener work that has started (tests; shutdown uses close())."""
        while pending := {t for t in self._inflight if not t.done()}:
            await asyncio.wait(pending)

    def _track(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    # ------------------------------------------------------------ HTTP

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(EVENTS_PATH, self.events),
            web.get(INSTALL_PATH, self.install),
            web.get(REDIRECT_PATH, self.oauth_redirect),
        ]

    async def events(self, request: web.Request) -> web.StreamResponse:
        bolt = self.bolt
        if bolt is None:
            return web.json_response({"error": "slack is starting or stopping"}, status=503)
        raw = await request.read()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return web.json_response({"error": "body is not UTF-8"}, status=400)
        if not _plausible_signature_headers(request):
            # Bolt's verifier calls int() on the timestamp and compare_digest on the signature, which raise
            # on "abc", "²" or "v0=é": refuse such requests as Bolt refuses a bad signature.
            log.info("slack request refused: malformed signature headers")
            return web.json_response({"error": "invalid request"}, status=401)
        bolt_request = await to_bolt_request(request)
        bolt_response = await bolt.async_dispatch(bolt_request)
        return await to_aiohttp_response(bolt_response)

    async def install(self, request: web.Request) -> web.StreamResponse:
        flow = self.bolt.oauth_flow if self.bolt is not None else None
        if flow is None:
            raise web.HTTPNotFound(text="this paylinks serves one Slack workspace (slack.bot_token); no installs")
        return await to_aiohttp_response(await flow.handle_installation(await to_bolt_request(request)))

    async def oauth_redirect(self, request: web.Request) -> web.StreamResponse:
        flow = self.bolt.oauth_flow if self.bolt is not None else None
        if flow is None:
            raise web.HTTPNotFound(text="this paylinks serves one Slack workspace (slack.bot_token); no installs")
        response = await to_aiohttp_response(await flow.handle_callback(await to_bolt_request(request)))
        if response.status == 200:
            log.info("slack workspace installed")
        return response

    # ------------------------------------------------------------ listeners

    def _register(self, bolt: AsyncApp) -> None:
        bolt.command("/charge")(self._on_command)
        bolt.command("/paylinks")(self._on_command)
        bolt.event("app_home_opened")(self._on_home_opened)
        bolt.event("link_shared")(self._on_link_shared)
        # The link message's "Pay" button is a URL button: Slack still reports the click, which must be
        # acknowledged or Slack shows the person a warning.
        bolt.action(re.compile(r".*"))(self._on_action)

    async def _on_ignored_event(self, ack: Any) -> None:
        await ack()

    async def _on_action(self, ack: Any, body: Mapping[str, Any], client: AsyncWebClient, respond: Any,
                         request: AsyncBoltRequest) -> None:
        self._track()
        await ack()
        # URL buttons report their click too (nothing to do); answer buttons carry the answer's value.
        message = parse_block_action(body)
        if message is None or not message.action or not message.action.startswith("answer:"):
            return
        # A click Slack delivers again is answered once (its trigger_id).
        message = replace(message, delivery_id=delivery_id(body, request.headers))
        await self._answer_with(message, client, respond)

    async def _on_command(self, ack: Any, body: Mapping[str, Any], client: AsyncWebClient, respond: Any,
                          request: AsyncBoltRequest) -> None:
        self._track()
        await ack()
        # Everything below runs after Slack got its answer.
        try:
            message = parse_slash_command(body)
        except ValueError:
            log.warning("slack slash command without team, channel or user ignored")
            return
        # A retried or replayed request is acked (above) and answered once: the core dedupes by this id.
        message = replace(message, delivery_id=delivery_id(body, request.headers))
        await self._answer_with(message, client, respond)

    async def _locale_of(self, message: IncomingMessage, client: AsyncWebClient) -> str | None:
        """The person's Slack language ("ja-JP"): users.info with include_locale, cached for an hour.
        None when Slack does not say (an install without users:read): the core falls back to the shop's."""
        user = str(message.extra.get("slack_user_id") or "")
        if not user:
            return None
        now = time.monotonic()
        cached = self._locales.get(message.user_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        locale: str | None = None
        try:
            answer = await client.users_info(user=user, include_locale=True)
            found = (answer.get("user") or {}).get("locale")
            locale = str(found) if found else None
        except Exception as exc:  # a missing scope or an outage must never stop the answer
            log.info("slack users.info for the locale failed team=%s error=%s", message.workspace, type(exc).__name__)
        if len(self._locales) > 10_000:
            self._locales.clear()
        self._locales[message.user_id] = (locale, now + LOCALE_TTL_S)
        return locale

    async def _answer_with(self, message: IncomingMessage, client: AsyncWebClient, respond: Any) -> None:
        try:
            message = replace(message, language=await self._locale_of(message, client))
            replies = await self.handle(message)
        except Exception:
            log.exception("slack command failed team=%s", message.workspace)
            replies = [Reply(i18n.tr(message.language).gettext(APOLOGY))]
        for reply in replies:
            try:
                await self._deliver(message, reply, client, respond)
            except Exception:
                log.exception("slack answer failed team=%s link=%s", message.workspace, reply.link_id)

    async def _deliver(self, message: IncomingMessage, reply: Reply, client: AsyncWebClient, respond: Any) -> None:
        if reply.link_id is None:
            await self._ephemeral(message, reply, client, respond)
            return
        where = parse_address(message.address)
        try:
            ref = await post_message(client, where.team_id, where.channel_id, reply)
        except SlackPermanent as exc:
            if exc.error not in CANNOT_POST:
                raise
            log.info("slack cannot post link message (%s) link=%s channel=%s", exc.error, reply.link_id,
                     where.channel_id)
            await self._ephemeral(message, not_in_channel_reply(reply, message.language), client, respond)
            return
        except SendError as exc:
            # The link exists either way: show it to the seller alone rather than lose it.
            log.warning("slack link message failed (%s) link=%s", exc, reply.link_id)
            await self._ephemeral(message, reply, client, respond)
            return
        # Stored with the thread as its address: the outbox answers "paid" to the link's origin address, which
        # then lands as a threaded reply under the link message; edits use the channel and ts in `extra`.
        await self.links.attach_message(reply.link_id, replace(ref, address=thread_address(ref)))
        log.info("slack link message posted link=%s channel=%s ts=%s", reply.link_id, where.channel_id,
                 ref.message_id)
        if reply.invoice_pdf:
            await self._upload_invoice(client, where.channel_id, ref.message_id, reply.invoice_pdf)

    async def _upload_invoice(self, client: AsyncWebClient, channel: str, thread_ts: str, link_id: str) -> None:
        """/invoice: the PDF as a file in the link message's thread (files.getUploadURLExternal, the upload,
        files.completeUploadExternal: slack_sdk's files_upload_v2). Needs the files:write scope."""
        from adapters.web.invoice_pages import InvoicePdfs

        file = await InvoicePdfs(self.links.db, self.links).invoice_file(link_id)
        if file is None:
            return
        try:
            await client.files_upload_v2(channel=channel, thread_ts=thread_ts, content=file.body,
                                         filename=file.filename, title=file.caption)
        except Exception as exc:  # the link message is out, with the PDF's URL as a button
            log.warning("slack invoice upload failed (%s) link=%s channel=%s", classify(exc), link_id, channel)

    async def _ephemeral(self, message: IncomingMessage, reply: Reply, client: AsyncWebClient, respond: Any) -> None:
        """Only the person who typed the command sees it: response_url first, chat.postEphemeral after."""
        payload = message_payload(reply)
        if message.extra.get("response_url"):
            try:
                result = await respond(text=payload["text"], blocks=payload["blocks"], response_type="ephemeral",
                                       replace_original=False)
                if 200 <= int(result.status_code) < 300:
                    return
                log.info("slack response_url answered %s; falling back to chat.postEphemeral", result.status_code)
            except Exception as exc:  # expired (30 min / 5 uses) or unreachable: try the Web API instead
                log.info("slack response_url failed (%s); falling back to chat.postEphemeral", type(exc).__name__)
        try:
            await client.chat_postEphemeral(channel=str(message.extra["channel_id"]),
                                            user=str(message.extra["slack_user_id"]), **payload)
        except Exception as exc:
            log.warning("slack ephemeral answer lost (%s) team=%s", classify(exc), message.workspace)

    async def _on_home_opened(self, event: Mapping[str, Any], client: AsyncWebClient, context: Any) -> None:
        self._track()
        if event.get("tab") != "home":
            return
        user = str(event.get("user") or "")
        team = str(context.team_id or "")
        if not (user and team):
            return
        try:
            # The same language as the bot's answers to this person: their /language, else Slack's locale.
            who = IncomingMessage(platform=PLATFORM, user_id=user_key(team, user), address="", text="",
                                  workspace=team, extra={"slack_user_id": user})
            data = await self.home.home(team, user, await self._locale_of(who, client))
            with i18n.speaking(data.language):
                view = home_view(data)
            await client.views_publish(user_id=user, view=view)
        except Exception as exc:
            log.warning("slack home tab not published (%s) team=%s", classify(exc), team)

    async def _on_link_shared(self, event: Mapping[str, Any], client: AsyncWebClient) -> None:
        self._track()
        found = shared_links(event.get("links") or [], self.options.public_base_url)[:MAX_UNFURLS]
        unfurls: dict[str, dict[str, Any]] = {}
        for url, link_id in found:
            summary = await self.home.unfurl_summary(link_id)
            if summary is not None:
                unfurls[url] = unfurl(summary)
        if not unfurls:
            return
        where: dict[str, Any]
        if event.get("source") == "composer" and event.get("unfurl_id"):
            # Pasted in the message composer, not sent yet: there is no channel message to point at.
            where = {"unfurl_id": event["unfurl_id"], "source": "composer"}
        else:
            where = {"channel": event.get("channel"), "ts": event.get("message_ts")}
        try:
            await client.chat_unfurl(unfurls=unfurls, **where)
        except Exception as exc:
            log.warning("slack unfurl failed (%s)", classify(exc))


SLACK_ADAPTER = web.AppKey("slack_adapter", SlackAdapter)


def _plausible_signature_headers(request: web.Request) -> bool:
    """Slack's headers have the right shape (ASCII digits; `v0=` + ASCII); Bolt checks the values."""
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    signature = request.headers.get("X-Slack-Signature", "")
    return (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12
            and signature.isascii() and signature.startswith("v0="))
