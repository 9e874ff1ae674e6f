"""HTTP surface of the ops package: the server API (API keys and access tokens), the
browser's way in with an access token, and the administrators' webhook and key routes.
Handlers translate; the actions live in ``apikeys``, ``tokens``, ``webhooks`` and
``rooms.actions`` / ``rooms.invitations``."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Literal

from aiohttp import web
from pydantic import AnyHttpUrl, BaseModel, Field, UrlConstraints
from sqlalchemy import select

from core import auth
from core.api import RouteTable
from core.context import DB, SETTINGS
from core.db import utcnow
from core.errors import Unauthorized
from core.principal import Principal
from ops import apikeys, tokens, webhooks
from ops.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from rooms import actions, invitations
from rooms.api import AwareDT, Title
from rooms.models import RoomKind

routes = RouteTable()


# -- server-to-server ---------------------------------------------------------------------


async def server_caller(request: web.Request) -> Principal:
    """The account an API call acts as: ``Basic`` key id and secret, or ``Bearer`` an access
    token with the ``room_create`` grant."""
    db = request.app[DB]
    ip = auth.client_ip(request)
    scheme, _, cred = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        key, user = await apikeys.check_basic(db, cred.strip(), ip=ip)
    elif scheme.lower() == "bearer":
        access = await tokens.verify(db, request.app[SETTINGS], cred.strip(), ip=ip)
        if not access.grants.room_create:
            raise await apikeys.refuse(
                db,
                "grant_missing",
                "This token does not grant room_create",
                ip=ip,
                key_id=access.key.id,
                status=403,
            )
        key, user = access.key, access.user
    else:
        raise Unauthorized(
            "Authenticate with an API key (Basic) or an access token (Bearer)",
            code="api_key_required",
        )
    return apikeys.principal_of(key, user, ip=ip)


class ServerRoomIn(BaseModel):
    kind: RoomKind = RoomKind.teleconsultation
    title: Title
    scheduled_at: AwareDT = None
    capacity: int | None = Field(None, ge=2, le=actions.MAX_CAPACITY)


class ServerRoomOut(BaseModel):
    id: uuid.UUID
    kind: RoomKind
    title: str
    status: str
    owner_id: uuid.UUID
    capacity: int
    scheduled_at: datetime | None


@routes.post(
    "/server/rooms",
    body=ServerRoomIn,
    response=ServerRoomOut,
    status=201,
    auth="none",
    tags=["server"],
    errors=[401, 403],
)
async def server_create_room(request: web.Request, body: ServerRoomIn) -> ServerRoomOut:
    """Create a room from another application (API key or a room_create access token)."""
    p = await server_caller(request)
    room = await actions.create_room(
        request.app[DB],
        p,
        kind=body.kind,
        title=body.title,
        scheduled_at=body.scheduled_at,
        capacity=body.capacity,
    )
    return ServerRoomOut(
        id=room.id,
        kind=room.kind,
        title=room.title,
        status=room.status.value,
        owner_id=room.owner_id,
        capacity=room.capacity,
        scheduled_at=room.scheduled_at,
    )


# -- entering a room with an access token ------------------------------------------------------


class AccessJoinIn(BaseModel):
    token: str = Field(min_length=10, max_length=4096)
    room_id: uuid.UUID | None = None  # the room the caller means; must be the token's


class AccessJoinOut(BaseModel):
    room_id: uuid.UUID
    guest_id: uuid.UUID
    name: str
    status: Literal["lobby"]


async def _enter(request: web.Request, token: str, room_id: uuid.UUID | None) -> AccessJoinOut:
    db, settings = request.app[DB], request.app[SETTINGS]
    ip = auth.client_ip(request)
    access = await tokens.verify(db, settings, token, ip=ip)
    g = access.grants
    if not g.room_join or g.room is None:
        raise await apikeys.refuse(
            db,
            "grant_missing",
            "This token does not grant room_join on a room",
            ip=ip,
            key_id=access.key.id,
            status=403,
        )
    if room_id is not None and room_id != g.room:
        raise await apikeys.refuse(
            db,
            "token_wrong_room",
            "This token is for another room",
            ip=ip,
            key_id=access.key.id,
            status=403,
        )
    _inv, room, guest = await invitations.accept_grant(
        db,
        room_id=g.room,
        grant_id=access.token_id,
        name=access.name,
        created_by=access.key.user_id,
        expires_at=(utcnow() + timedelta(hours=settings.session_absolute_hours)).replace(
            microsecond=0
        ),
        ip=ip,
        via="api_token",
        api_key_id=access.key.id,
        identity=access.identity,
    )
    return AccessJoinOut(room_id=room.id, guest_id=guest.id, name=guest.name, status="lobby")


async def _start_guest(
    request: web.Request, response: web.StreamResponse, out: AccessJoinOut
) -> None:
    await auth.start_session(
        request,
        response,
        kind="guest",
        subject_id=out.guest_id,
        stage="full",
        data={"label": out.name, "room_id": str(out.room_id)},
    )


@routes.post(
    "/access/join",
    body=AccessJoinIn,
    response=AccessJoinOut,
    auth="none",
    tags=["server"],
    errors=[401, 403, 404, 410],
)
async def access_join(request: web.Request, body: AccessJoinIn) -> web.StreamResponse:
    """Enter a room with an access token (room_join grant): a guest session, then the lobby."""
    out = await _enter(request, body.token, body.room_id)
    response = web.json_response(out.model_dump(mode="json"))
    await _start_guest(request, response, out)
    return response


@routes.page("GET", "/access")
async def access_link(request: web.Request) -> web.StreamResponse:
    """The join link an application hands out: ``/access?token=<JWT>`` opens the room page."""
    out = await _enter(request, request.query.get("token", "")[:4096], None)
    response = web.Response(status=303, headers={"Location": f"/app/rooms/{out.room_id}"})
    await _start_guest(request, response, out)
    return response


# -- administrators: API keys ---------------------------------------------------------------


class ApiKeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    user_email: str = Field(min_length=3, max_length=254)


class ApiKeyOut(BaseModel):
    id: str
    name: str
    user_email: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    secret: str  # shown once


@routes.get("/api-keys", response=list[ApiKeyOut], auth="admin", tags=["server"])
async def list_api_keys(request: web.Request) -> list[ApiKeyOut]:
    """Server API keys (administrators)."""
    return [
        ApiKeyOut(
            id=k.id, name=k.name, user_email=e, created_at=k.created_at, revoked_at=k.revoked_at
        )
        for k, e in await apikeys.list_keys(request.app[DB])
    ]


@routes.post(
    "/api-keys", body=ApiKeyIn, response=ApiKeyCreated, status=201, auth="admin", tags=["server"]
)
async def create_api_key(request: web.Request, body: ApiKeyIn) -> ApiKeyCreated:
    """Create a server API key acting as an account; its secret is shown once."""
    key, secret = await apikeys.create_key(
        request.app[DB],
        request.app[SETTINGS],
        name=body.name,
        user_email=body.user_email,
        actor=auth.principal(request),
    )
    return ApiKeyCreated(
        id=key.id,
        name=key.name,
        user_email=body.user_email.lower(),
        created_at=key.created_at,
        revoked_at=None,
        secret=secret,
    )


@routes.delete("/api-keys/{key}", auth="admin", tags=["server"], errors=[404])
async def revoke_api_key(request: web.Request) -> None:
    """Revoke a server API key and every token minted with it."""
    await apikeys.revoke_key(
        request.app[DB], request.match_info["key"], actor=auth.principal(request)
    )


# -- administrators: webhooks -------------------------------------------------------------------


class EndpointIn(BaseModel):
    url: Annotated[AnyHttpUrl, UrlConstraints(max_length=1900)]
    events: list[Literal[webhooks.EVENT_TYPES]] = Field(default_factory=list)  # type: ignore[valid-type]
    secret: str | None = Field(None, min_length=24, max_length=200)


class EndpointOut(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]
    active: bool
    from_settings: bool
    created_at: datetime


class EndpointCreated(EndpointOut):
    secret: str  # shown once


def _endpoint_out(ep: WebhookEndpoint) -> EndpointOut:
    return EndpointOut.model_validate(ep, from_attributes=True)


@routes.get("/webhooks/endpoints", response=list[EndpointOut], auth="admin", tags=["webhooks"])
async def list_endpoints(request: web.Request) -> list[EndpointOut]:
    """Webhook endpoints (administrators)."""
    async with request.app[DB].read() as s:
        rows = (
            await s.execute(select(WebhookEndpoint).order_by(WebhookEndpoint.created_at))
        ).scalars()
        return [_endpoint_out(ep) for ep in rows]


@routes.post(
    "/webhooks/endpoints",
    body=EndpointIn,
    response=EndpointCreated,
    status=201,
    auth="admin",
    tags=["webhooks"],
)
async def create_endpoint(request: web.Request, body: EndpointIn) -> EndpointCreated:
    """Add a webhook endpoint; its signing secret is shown once."""
    ep = await webhooks.create_endpoint(
        request.app[DB],
        auth.principal(request),
        url=str(body.url),
        events=list(body.events),
        secret=body.secret,
    )
    return EndpointCreated(**_endpoint_out(ep).model_dump(), secret=ep.secret)


@routes.delete("/webhooks/endpoints/{endpoint_id}", auth="admin", tags=["webhooks"])
async def remove_endpoint(request: web.Request) -> None:
    """Stop delivering to an endpoint (its delivery log stays)."""
    await webhooks.remove_endpoint(
        request.app[DB], auth.principal(request), uuid.UUID(request.match_info["endpoint_id"])
    )


class DeliveryQuery(BaseModel):
    status: Literal["pending", "delivered", "failed"] | None = None
    endpoint_id: uuid.UUID | None = None
    limit: int = Field(100, ge=1, le=1000)


class DeliveryOut(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    endpoint_id: uuid.UUID
    url: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str
    delivered_at: datetime | None
    created_at: datetime


@routes.get(
    "/webhooks/deliveries",
    query=DeliveryQuery,
    response=list[DeliveryOut],
    auth="admin",
    tags=["webhooks"],
)
async def list_deliveries(request: web.Request, query: DeliveryQuery) -> list[DeliveryOut]:
    """The delivery log, newest first (administrators)."""
    stmt = (
        select(WebhookDelivery, WebhookEvent.name, WebhookEndpoint.url)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .order_by(WebhookDelivery.created_at.desc())
        .limit(query.limit)
    )
    if query.status:
        stmt = stmt.where(WebhookDelivery.status == query.status)
    if query.endpoint_id:
        stmt = stmt.where(WebhookDelivery.endpoint_id == query.endpoint_id)
    async with request.app[DB].read() as s:
        rows = (await s.execute(stmt)).all()
    return [
        DeliveryOut(
            id=d.id,
            event_id=d.event_id,
            event_type=name,
            endpoint_id=d.endpoint_id,
            url=url,
            status=d.status,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at,
            last_attempt_at=d.last_attempt_at,
            last_status_code=d.last_status_code,
            last_error=d.last_error,
            delivered_at=d.delivered_at,
            created_at=d.created_at,
        )
        for d, name, url in rows
    ]
