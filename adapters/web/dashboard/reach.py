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
from core.imports import Importer, ImportFileError
from core.models import Merchant
from core.signin import Session
from core.webhooks import EVENT_TYPES, WebhookEndpoints, WebhookError

# A month of invoices or a school's fees fit easily; the CLI has no limit.
IMPORT_MAX_BYTES = 5 * 1024 * 1024
ERRORS_SHOWN = 200


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
        return self.dash.render("dashboard/import.html", request, session, merchant, title="Import links",
                                columns=("amount", "currency", "description", "reference", "customer_name",
                                         "customer_email", "customer_phone", "expires_in"), **context)

    async def import_upload(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        with tempfile.TemporaryDirectory(prefix="paylinks-import-") as folder:
            path = Path(folder) / "upload.csv"
            values, size, too_big = await _read_upload(request, path)
            check_csrf(values, session)  # multipart: checked here, after the stream is read
            owner_only(session)
            send, dry_run = values.get("send") == "1", values.get("dry_run") == "1"
            if too_big:
                return await self.import_page(request, session, merchant, status=413,
                                              error=f"The file is over {IMPORT_MAX_BYTES // (1024 * 1024)} MB; "
                                                    "split it, or use `paylinks link import`.")
            if size == 0:
                return await self.import_page(request, session, merchant, status=400,
                                              error="Choose a CSV file to import.")
            try:
                report = await self.importer.run(path, merchant.id, send=send, dry_run=dry_run)
            except ImportFileError as exc:
                return await self.import_page(request, session, merchant, status=400,
                                              error=str(exc).replace(str(path), "the file"))
        if not dry_run and report.created:
            await self.dash.audit.record(merchant.id, "links.imported",
                                         self.dash.actor(request, session, await self.dash.who(session)),
                                         created=report.created, sent=send)
        report.errors_path = None  # a temporary file, gone: the page lists the rows instead
        summary = report.summary(dry_run=dry_run, send=send)
        errors_csv = _errors_csv(report.errors)
        return await self.import_page(request, session, merchant, summary=summary[:1].upper() + summary[1:],
                                      errors=report.errors[:ERRORS_SHOWN], error_count=len(report.errors),
                                      errors_csv=errors_csv, dry_run=dry_run)

    # ------------------------------------------------------------ merchant webhooks

    async def webhooks_page(self, request: web.Request, session: Session, merchant: Merchant, *,
                            status: int = 200, **context: Any) -> web.Response:
        endpoints = await self.endpoints.list_endpoints(merchant.id)
        context = {"error": "", "error_field": None, "secret": None, "created": None, **context}
        return self.dash.render(
            "dashboard/webhooks.html", request, session, merchant, status=status, title="Webhooks",
            event_types=EVENT_TYPES, values=context.pop("values", {"events": list(EVENT_TYPES)}),
            endpoints=[{"id": e.id, "url": e.url, "events": ", ".join(e.events),
                        "created": self.dash.when(e.created_at, merchant),
                        "state": (f"disabled {self.dash.when(e.disabled_at, merchant)}" if e.disabled_at
                                  else "failing" if e.failing_since else "on")} for e in endpoints],
            **context)

    async def create_endpoint(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        form = await request.post()
        url = str(form.get("url", "")).strip()
        events = [str(v) for v in form.getall("events", [])]
        try:
            endpoint, secret = await self.endpoints.create(merchant.id, url, events)
        except WebhookError as error:
            return await self.webhooks_page(request, session, merchant, status=error.status,
                                            error=error.message, error_field=error.field,
                                            values={"url": url, "events": events})
        await self.dash.audit.record(merchant.id, "webhook.created",
                                     self.dash.actor(request, session, await self.dash.who(session)),
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
        context = {"notice": "", "error": "", **context}
        return self.dash.render(
            "dashboard/webhook.html", request, session, merchant, title="Webhook endpoint", endpoint=endpoint,
            state=(f"disabled {self.dash.when(endpoint.disabled_at, merchant)}: {endpoint.disabled_reason or ''}"
                   if endpoint.disabled_at else "failing since " + self.dash.when(endpoint.failing_since, merchant)
                   if endpoint.failing_since else "on"),
            deliveries=[{"id": d.id, "event": d.event_type, "status": d.status, "attempts": d.attempts,
                         "code": d.response_code if d.response_code is not None else "—",
                         "when": self.dash.when(d.sent_at or d.created_at, merchant),
                         "error": (d.last_error or "")[:200], "link_id": d.link_id} for d in deliveries],
            **context)

    async def confirm_delete(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        endpoint = await self._endpoint(request, merchant)
        return self.dash.render("dashboard/confirm.html", request, session, merchant, title="Delete this endpoint?",
                                heading="Delete this endpoint?",
                                explanation=f"{endpoint.url} hears of nothing more, and deliveries still waiting "
                                            "for it are dropped. This cannot be undone.",
                                action=f"/dashboard/webhooks/{endpoint.id}/delete", confirm="Yes, delete it",
                                back=f"/dashboard/webhooks/{endpoint.id}")

    async def delete_endpoint(self, request: web.Request, session: Session, merchant: Merchant) -> web.StreamResponse:
        endpoint = await self._endpoint(request, merchant)
        await self.endpoints.delete(merchant.id, endpoint.id)
        await self.dash.audit.record(merchant.id, "webhook.deleted",
                                     self.dash.actor(request, session, await self.dash.who(session)),
                                     endpoint_id=endpoint.id)
        raise web.HTTPSeeOther("/dashboard/webhooks")

    async def test_endpoint(self, request: web.Request, session: Session, merchant: Merchant) -> web.Response:
        endpoint = await self._endpoint(request, merchant)
        try:
            delivery = await self.endpoints.send_test(merchant.id, endpoint.id)
        except WebhookError as error:
            return await self.endpoint_page(request, session, merchant, error=error.message)
        return await self.endpoint_page(request, session, merchant,
                                        notice=f"A webhook.test event ({delivery.event_id}) is on its way.")

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
            return await self.endpoint_page(request, session, merchant, error=error.message)
        return await self.endpoint_page(request, session, merchant,
                                        notice=f"{delivery.event_type} ({delivery.event_id}) is sent again.")


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


def _errors_csv(errors: list[tuple[int, str]]) -> str:
    """The rows with errors as CSV text (row, reason), to copy or download from the page."""
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "reason"])
    writer.writerows(errors)
    return out.getvalue()
