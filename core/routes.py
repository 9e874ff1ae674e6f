"""Core routes: health, OpenAPI document, audit log for admins, development outbox."""

from __future__ import annotations

import html
import uuid
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy import select, text

from core import login, oidc, recovery, users
from core.api import Api
from core.audit import AuditEntry
from core.context import DB, NOTIFIER, REDIS, SETTINGS


def _version() -> str:
    try:
        return version("consilium")
    except PackageNotFoundError:
        return "0.0.0"


class AuditOut(BaseModel):
    id: uuid.UUID
    at: datetime
    actor_id: uuid.UUID | None
    actor_kind: str
    actor_label: str
    action: str
    object_type: str
    object_id: str
    ip: str
    outcome: str
    details: dict[str, object]


class AuditQuery(BaseModel):
    action: str | None = Field(None, max_length=60)
    object_id: str | None = Field(None, max_length=64)
    actor_id: uuid.UUID | None = None
    limit: int = Field(100, ge=1, le=1000)
    before: datetime | None = None


def setup(app: web.Application) -> None:
    api = Api.of(app)

    async def healthz(request: web.Request) -> web.Response:
        # Which node answered: with ``serve --workers N`` any worker may take a connection.
        settings = request.app[SETTINGS]
        return web.json_response(
            {"status": "ok", "node": settings.node_id, "worker": settings.worker_index}
        )

    async def readyz(request: web.Request) -> web.Response:
        checks: dict[str, str] = {}
        ok = True
        try:
            async with request.app[DB].read() as session:
                await session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as e:  # report, do not raise: this is the readiness answer
            checks["database"] = f"error: {type(e).__name__}"
            ok = False
        redis = request.app[REDIS]
        if redis is not None:
            try:
                await redis.ping()
                checks["redis"] = "ok"
            except Exception as e:
                checks["redis"] = f"error: {type(e).__name__}"
                ok = False
        return web.json_response(
            {"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
        )

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(api.openapi(title="Consilium API", version=_version()))

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/v1/openapi.json", openapi)

    @api.get("/audit", query=AuditQuery, response=list[AuditOut], auth="admin", tags=["audit"])
    async def list_audit(request: web.Request, query: AuditQuery) -> list[AuditOut]:
        """Read the audit log (administrators), newest first."""
        stmt = select(AuditEntry).order_by(AuditEntry.at.desc()).limit(query.limit)
        if query.action:
            stmt = stmt.where(AuditEntry.action == query.action)
        if query.object_id:
            stmt = stmt.where(AuditEntry.object_id == query.object_id)
        if query.actor_id:
            stmt = stmt.where(AuditEntry.actor_id == query.actor_id)
        if query.before:
            stmt = stmt.where(AuditEntry.at < query.before)
        async with request.app[DB].read() as session:
            rows = (await session.execute(stmt)).scalars()
            return [AuditOut.model_validate(r, from_attributes=True) for r in rows]

    if app[SETTINGS].dev:

        async def outbox(request: web.Request) -> web.Response:
            rows = await request.app[NOTIFIER].outbox(200)
            items = "".join(
                f"<article><header><b>{html.escape(r.channel)}</b> → {html.escape(r.recipient)}"
                f" · {r.created_at:%Y-%m-%d %H:%M:%S} UTC · {html.escape(r.status)}</header>"
                f"<h3>{html.escape(r.subject)}</h3><pre>{html.escape(r.body)}</pre>"
                + (f"<p>Pièces jointes : {html.escape(r.attachments)}</p>" if r.attachments else "")
                + "</article>"
                for r in rows
            )
            page = (
                "<!doctype html><html lang='fr'><meta charset='utf-8'>"
                "<title>Boîte d'envoi (développement)</title>"
                "<h1>Boîte d'envoi — messages non envoyés (mode développement)</h1>"
                f"{items or '<p>Aucun message.</p>'}</html>"
            )
            return web.Response(text=page, content_type="text/html")

        app.router.add_get("/dev/outbox", outbox)

    login.setup(app)
    oidc.setup(app)
    recovery.setup(app)
    users.setup(app)
