"""Dashboard pages for reaching customers and systems: the CSV import (the same as `paylinks link import`)
and the shop's merchant webhook endpoints (list, create showing the secret once, delete, test, deliveries,
resend). Owners only; every form carries the CSRF token (the multipart upload checks it itself).

Built on the Dashboard's plumbing (its `page` wrapper, `render`, the audit log), mounted beside it.
"""

from __future__ import annotations

import asyncio
import csv
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from adapters.web.dashboard.session import check_csrf, owner_only
from adapters.web.dashboard.views import Dashboard
from core.i18n import N_, Tr
from core.imports import EMPTY, UNREADABLE, Importer, ImportFileError, ImportReport, Reason
from core.models import Merchant
from core.signin import Session
from core.webhooks import EVENT_TYPES, WebhookEndpoints, WebhookError, failure_text

# A month of invoices or a school's fees fit easily; the CLI has no limit.
IMPORT_MAX_BYTES = 5 * 1024 * 1024
ERRORS_SHOWN = 200
# What the page says of a file it has no path for (a temporary upload): "the file".
_FILE_ERRORS = {EMPTY: N_("the file is empty; the first line names the columns (%(columns)s)"),
                UNREADABLE: N_("cannot read the file: %(reason)s")}
# A delivery's outbox status as the endpoint page names it.
DELIVERY_STATES = {"pending": N_("pending"), "sent": N_("sent"), "dead": N_("gave up")}


class ReachPages:
    def __init__(self, dashboard: Dashboard, endpoints: WebhookEndpoints) -> None:
        self.dash = dashboard
        self.endpoints = endpoints
        self.importer = Importer(dashboard.links)

    def routes(self) -> list[web.RouteDef]:
        page = self.dash.page
        get, post = web.get, web.post
        return [
            get("/dashboard/links/import", page(self.import_page, owner=True)),
            post("/dashboard/links/import", page(self.import_upload, owner=True, multipart=True)),
            get("/dashboard/webhooks", page(self.webhooks_page, owner=True)),
            post("/dashboard/webhooks", page(self.create_endpoint, owner=True)),
            get("/dashboard/webhooks/{endpoint_id}", page(self.endpoint_page, owner=True)),
            get("/dashboard/webhooks/{endpoint_id}/delete", page(self.confirm_delete, owner=True)),
            post("/dashboard/webhooks/{endpoint_id}/delete", page(self.delete_endpoint, owner=True)),
            post("/dashboard/webhooks/{endpoint_id}/test", page(self.test_endpoint, owner=True)),
            post("/dashboard/webhooks/{endpoint_id}/deliveries/{delivery_id}/resend",
                 page(self.resend, owner=True)),
        ]

    # ------------------------------------------------------------ CSV import

    async def import_page(self, request: web.Request, session: Session, merchant: Merchant,
                          **context: Any) -> web.Response:
        context = {"error": "", "summary": "", "errors": [], "error_count": 0, "errors_csv": "", "dry_run": False,
                   **context}
        return self.dash.render("dashboard/import.html", request, session, merchant, title=N_("Import links"),
                                columns=("amount", "currency", "description", "reference", "customer_name",
                                         "customer_email", "customer_phone", "expires_in"), **context)

    async def import_upload(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        with tempfile.TemporaryDirectory(prefix="paylinks-import-") as folder:
            path = Path(folder) / "upload.csv"
            values, size, too_big = await _read_upload(request, path)
            check_csrf(values, session)  # multipart: checked here, after the stream is read
            owner_only(session)
            t = self.dash.tr(request, merchant)
            send, dry_run = values.get("send") == "1", values.get("dry_run") == "1"
            if too_big:
                return await self.import_page(request, session, merchant, status=413,
                                              error=t.gettext("The file is over %(size)s MB; split it, or use "
                                                              "`paylinks link import`.",
                                                              size=IMPORT_MAX_BYTES // (1024 * 1024)))
            if size == 0:
                return await self.import_page(request, session, merchant, status=400,
                                              error=t.gettext("Choose a CSV file to import."))
            try:
                report = await self.importer.run(path, merchant.id, send=send, dry_run=dry_run)
            except ImportFileError as exc:
                return await self.import_page(request, session, merchant, status=400,
                                              error=_file_error(t, exc))
        if not dry_run and report.created:
            await self.dash.audit.record(merchant.id, "links.imported",
                                         await self.dash.acting(request, session, merchant),
                                         created=report.created, sent=send)
        report.errors_path = None  # a temporary file, gone: the page lists the rows instead
        errors = [(number, _reason(t, reason)) for number, reason in report.errors]
        return await self.import_page(request, session, merchant, summary=_summary(t, report, dry_run=dry_run,
                                                                                   send=send),
                                      errors=errors[:ERRORS_SHOWN], error_count=len(errors),
                                      errors_csv=_errors_csv(errors), dry_run=dry_run)

    # ------------------------------------------------------------ merchant webhooks

    async def webhooks_page(self, request: web.Request, session: Session, merchant: Merchant, *,
                            status: int = 200, **context: Any) -> web.Response:
        endpoints = await self.endpoints.list_endpoints(merchant.id)
        t = self.dash.tr(request, merchant)
        context = {"error": "", "error_field": None, "secret": None, "created": None, **context}
        return self.dash.render(
            "dashboard/webhooks.html", request, session, merchant, status=status, title=N_("Webhooks"),
            event_types=EVENT_TYPES, values=context.pop("values", {"events": list(EVENT_TYPES)}),
            endpoints=[{"id": e.id, "url": e.url, "events": ", ".join(e.events),
                        "created": self.dash.when(e.created_at, merchant),
                        "state": (t.gettext("disabled %(when)s", when=self.dash.when(e.disabled_at, merchant))
                                  if e.disabled_at else t.gettext("failing") if e.failing_since
                                  else t.pgettext("webhook endpoint state", "on"))} for e in endpoints],
            **context)

    async def create_endpoint(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        form = await request.post()
        url = str(form.get("url", "")).strip()
        events = [str(v) for v in form.getall("events", [])]
        try:
            endpoint, secret = await self.endpoints.create(merchant.id, url, events)
        except WebhookError as error:
            return await self.webhooks_page(request, session, merchant, status=error.status,
                                            error=error.translated(self.dash.tr(request, merchant)),
                                            error_field=error.field,
                                            values={"url": url, "events": events})
        await self.dash.audit.record(merchant.id, "webhook.created",
                                     await self.dash.acting(request, session, merchant),
                                     endpoint_id=endpoint.id, url=endpoint.url)
        return await self.webhooks_page(request, session, merchant, created=endpoint, secret=secret)

    async def _endpoint(self, request: web.Request, merchant: Merchant) -> Any:
        endpoint = await self.endpoints.get(merchant.id, request.match_info["endpoint_id"][:40])
        if endpoint is None:
            raise web.HTTPNotFound()
        return endpoint

    async def endpoint_page(self, request: web.Request, session: Session, merchant: Merchant,
                            **context: Any) -> web.Response:
        endpoint = await self._endpoint(request, merchant)
        deliveries = await self.endpoints.deliveries(merchant.id, endpoint.id)
        t = self.dash.tr(request, merchant)
        context = {"notice": "", "error": "", **context}
        if endpoint.disabled_at:
            state = t.gettext("disabled %(when)s: %(reason)s", when=self.dash.when(endpoint.disabled_at, merchant),
                              reason=failure_text(t, endpoint.disabled_reason or "failing"))
        elif endpoint.failing_since:
            state = t.gettext("failing since %(when)s", when=self.dash.when(endpoint.failing_since, merchant))
        else:
            state = t.pgettext("webhook endpoint state", "on")
        return self.dash.render(
            "dashboard/webhook.html", request, session, merchant, title=N_("Webhook endpoint"), endpoint=endpoint,
            state=state,
            deliveries=[{"id": d.id, "event": d.event_type, "attempts": d.attempts,
                         "status": t.gettext(DELIVERY_STATES[d.status]) if d.status in DELIVERY_STATES else d.status,
                         "code": d.response_code if d.response_code is not None else "—",
                         "when": self.dash.when(d.sent_at or d.created_at, merchant),
                         "error": failure_text(t, (d.last_error or "")[:200]), "link_id": d.link_id}
                        for d in deliveries],
            **context)

    async def confirm_delete(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        endpoint = await self._endpoint(request, merchant)
        t = self.dash.tr(request, merchant)
        return self.dash.render("dashboard/confirm.html", request, session, merchant,
                                title=N_("Delete this endpoint?"), heading=t.gettext("Delete this endpoint?"),
                                explanation=t.gettext("%(url)s hears of nothing more, and deliveries still waiting "
                                                      "for it are dropped. This cannot be undone.", url=endpoint.url),
                                action=f"/dashboard/webhooks/{endpoint.id}/delete",
                                confirm=t.gettext("Yes, delete it"), back=f"/dashboard/webhooks/{endpoint.id}")

    async def delete_endpoint(self, request: web.Request, session: Session, merchant: Merchant) -> web.StreamResponse:
        endpoint = await self._endpoint(request, merchant)
        await self.endpoints.delete(merchant.id, endpoint.id)
        await self.dash.audit.record(merchant.id, "webhook.deleted",
                                     await self.dash.acting(request, session, merchant),
                                     endpoint_id=endpoint.id)
        raise web.HTTPSeeOther("/dashboard/webhooks")

    async def test_endpoint(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        endpoint = await self._endpoint(request, merchant)
        try:
            delivery = await self.endpoints.send_test(merchant.id, endpoint.id)
        except WebhookError as error:
            return await self.endpoint_page(request, session, merchant,
                                            error=error.translated(self.dash.tr(request, merchant)))
        return await self.endpoint_page(request, session, merchant, notice=self.dash.tr(request, merchant).gettext(
            "A webhook.test event (%(event)s) is on its way.", event=delivery.event_id))

    async def resend(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        endpoint = await self._endpoint(request, merchant)
        text = request.match_info["delivery_id"]
        if not text.isdigit() or len(text) > 18:
            raise web.HTTPNotFound()
        try:
            delivery = await self.endpoints.resend(merchant.id, endpoint.id, int(text))
        except WebhookError as error:
            if error.status == 404:
                raise web.HTTPNotFound() from None
            return await self.endpoint_page(request, session, merchant,
                                            error=error.translated(self.dash.tr(request, merchant)))
        return await self.endpoint_page(request, session, merchant, notice=self.dash.tr(request, merchant).gettext(
            "%(event)s (%(id)s) is sent again.", event=delivery.event_type, id=delivery.event_id))


async def _read_upload(request: web.Request, path: Path) -> tuple[dict[str, str], int, bool]:
    """The multipart form read as a stream (the file may be larger than the app's body limit): (text
    fields, the file's size, whether it was over IMPORT_MAX_BYTES). The file goes to `path`."""
    values: dict[str, str] = {}
    size, too_big = 0, False
    if not request.content_type.startswith("multipart/"):
        form = await request.post()
        return {k: str(v) for k, v in form.items() if isinstance(v, str)}, 0, False
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        if part.name == "file":
            chunks: list[bytes] = []
            while chunk := await part.read_chunk(64 * 1024):
                size += len(chunk)
                if size > IMPORT_MAX_BYTES:
                    too_big = True
                elif not too_big:
                    chunks.append(chunk)
            if not too_big:
                await asyncio.to_thread(path.write_bytes, b"".join(chunks))
        elif len(values) < 10:
            values[part.name] = (await part.read(decode=True))[:200].decode("utf-8", "replace").strip()
    return values, size, too_big


def _file_error(t: Tr, error: ImportFileError) -> str:
    """A file-level problem in the page's language; the temporary upload's path is "the file"."""
    if error.template in _FILE_ERRORS:
        return t.gettext(_FILE_ERRORS[error.template], **{k: v for k, v in error.values.items() if k != "path"})
    return error.translated(t)


def _reason(t: Tr, reason: str) -> str:
    """A row's reason in the page's language (the importer's reasons are all Reasons)."""
    return reason.translated(t) if isinstance(reason, Reason) else reason


def _summary(t: Tr, report: ImportReport, *, dry_run: bool, send: bool) -> str:
    """What the import did, a sentence each (the CLI's one line, ImportReport.summary, in English)."""
    if dry_run:
        said = [t.ngettext("Would import %(created)s of %(count)s row.", "Would import %(created)s of %(count)s rows.",
                           report.rows, created=report.created)]
    else:
        said = [t.ngettext("Imported %(created)s of %(count)s row.", "Imported %(created)s of %(count)s rows.",
                           report.rows, created=report.created)]
    if report.already:
        said.append(t.ngettext("%(count)s already imported (same reference).",
                               "%(count)s already imported (same reference).", report.already))
    if report.errors:
        said.append(t.ngettext("%(count)s with errors.", "%(count)s with errors.", len(report.errors)))
    if not dry_run:
        said.append(t.gettext("Links sent to customers through the outbox.") if send
                    else t.gettext("Nothing sent to anyone."))
    text = said[0]
    for sentence in said[1:]:  # no space after a full-width full stop (Chinese, Japanese)
        text += sentence if text.endswith(_FULL_WIDTH_STOPS) else " " + sentence
    return text


_FULL_WIDTH_STOPS = ("。", "！", "？", "．")


def _errors_csv(errors: list[tuple[int, str]]) -> str:
    """The rows with errors as CSV text (row, reason), to copy or download from the page."""
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "reason"])
    writer.writerows(errors)
    return out.getvalue()
