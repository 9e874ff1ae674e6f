"""REST routes of rooms and invitations (``/api/v1``), plus the ``/join/<token>`` page."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from aiohttp import web
from pydantic import AfterValidator, BaseModel, EmailStr, Field, model_validator
from sqlalchemy import select

from core import auth
from core.accounts import User
from core.api import Api
from core.context import DB, JOIN_PAGE, LIMITER, NOTIFIER, SETTINGS
from core.errors import Problem, TooManyRequests
from core.principal import Principal
from rooms import access, actions, invitations
from rooms.live import LIVE
from rooms.models import Invitation, MemberRole, Room, RoomKind, RoomMember, RoomStatus
from rooms.presence import Participant

INVITE_TRIES_PER_MINUTE = 60  # per client address, checks and accepts together


def _aware(v: datetime | None) -> datetime | None:
    if v is not None and v.tzinfo is None:
        raise ValueError("give a timezone (UTC ISO 8601, e.g. 2026-11-26T13:30:00Z)")
    return v


AwareDT = Annotated[datetime | None, AfterValidator(_aware)]
Title = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]


class RoomCreate(BaseModel):
    kind: RoomKind
    title: Title
    dossier_id: uuid.UUID | None = None
    scheduled_at: AwareDT = None
    capacity: int | None = Field(None, ge=2, le=actions.MAX_CAPACITY)
    # A secretary creates the room for a practitioner they act for ("en délégation de").
    owner_id: uuid.UUID | None = None


class Occupant(BaseModel):
    name: str
    role: str
    connected: bool


class Occupancy(BaseModel):
    count: int
    participants: list[Occupant]


class RoomOut(BaseModel):
    id: uuid.UUID
    kind: RoomKind
    title: str
    owner_id: uuid.UUID
    dossier_id: uuid.UUID | None
    scheduled_at: datetime | None
    capacity: int
    locked: bool
    status: RoomStatus
    created_at: datetime
    closed_at: datetime | None
    my_role: Literal["host", "participant", "guest"]
    occupancy: Occupancy


class RoomQuery(BaseModel):
    include_closed: bool = False


class MemberIn(BaseModel):
    user_id: uuid.UUID
    role: MemberRole = MemberRole.host


class MemberOut(BaseModel):
    user_id: uuid.UUID
    name: str
    role: Literal["host", "participant"]
    owner: bool


Mobile = Annotated[str, Field(pattern=r"^\+?[0-9 .]{8,20}$")]


class InvitationIn(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]
    email: EmailStr | None = None
    mobile: Mobile | None = None
    scheduled_at: AwareDT = None
    expires_at: AwareDT = None
    single_use: bool = False

    @model_validator(mode="after")
    def _a_channel(self) -> InvitationIn:
        if not self.email and not self.mobile:
            raise ValueError("give an e-mail address or a mobile number (or both)")
        return self


class InvitationOut(BaseModel):
    id: uuid.UUID
    room_id: uuid.UUID
    name: str
    email: str | None
    mobile: str | None
    scheduled_at: datetime | None
    expires_at: datetime
    single_use: bool
    revoked_at: datetime | None
    used_at: datetime | None
    created_at: datetime
    status: Literal["active", "revoked", "expired", "used"]


class InvitationCreated(InvitationOut):
    link: str
    delivery: dict[str, str]


class Browser(BaseModel):
    platform: str
    browser: str


class InvitationCheck(BaseModel):
    room_id: uuid.UUID
    room_title: str
    room_kind: RoomKind
    name: str
    scheduled_at: datetime | None
    expires_at: datetime
    host: str
    supported_browsers: list[Browser]


class AcceptIn(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]


class AcceptOut(BaseModel):
    room_id: uuid.UUID
    guest_id: uuid.UUID
    name: str
    status: Literal["lobby"]


def _occupancy(ps: list[Participant]) -> Occupancy:
    return Occupancy(
        count=len(ps),
        participants=[Occupant(name=p.name, role=p.role, connected=p.connected) for p in ps],
    )


def _room_out(room: Room, role: str, ps: list[Participant]) -> RoomOut:
    return RoomOut(
        id=room.id,
        kind=room.kind,
        title=room.title,
        owner_id=room.owner_id,
        dossier_id=room.dossier_id,
        scheduled_at=room.scheduled_at,
        capacity=room.capacity,
        locked=room.locked,
        status=room.status,
        created_at=room.created_at,
        closed_at=room.closed_at,
        my_role=role,
        occupancy=_occupancy(ps),
    )


def _invitation_out(inv: Invitation) -> dict[str, object]:
    from core.db import utcnow

    status = (
        "revoked"
        if inv.revoked_at
        else "used"
        if inv.single_use and inv.used_at
        else "expired"
        if inv.expires_at <= utcnow()
        else "active"
    )
    return {
        "id": inv.id,
        "room_id": inv.room_id,
        "name": inv.name,
        "email": inv.email,
        "mobile": inv.mobile,
        "scheduled_at": inv.scheduled_at,
        "expires_at": inv.expires_at,
        "single_use": inv.single_use,
        "revoked_at": inv.revoked_at,
        "used_at": inv.used_at,
        "created_at": inv.created_at,
        "status": status,
    }


def setup(app: web.Application) -> None:
    api = Api.of(app)

    async def throttle(request: web.Request) -> None:
        """Token links are unguessable; still, no one gets to hammer them."""
        ip = auth.client_ip(request)
        if not await app[LIMITER].hit(f"invite:{ip}", limit=INVITE_TRIES_PER_MINUTE, window=60):
            raise TooManyRequests("Too many attempts; wait a minute", code="rate_limited")

    async def occupancy_of(rooms: list[Room]) -> dict[str, list[Participant]]:
        live = app[LIVE]
        return await live.state.occupancy([str(r.id) for r in rooms], live.grace)

    async def show(principal: Principal, room_id: uuid.UUID) -> RoomOut:
        async with app[DB].read() as session:
            room, role = await access.room_for(session, principal, room_id)
        occ = await occupancy_of([room])
        return _room_out(room, role, occ[str(room.id)])

    @api.post("/rooms", body=RoomCreate, response=RoomOut, status=201, tags=["rooms"], errors=[404])
    async def create_room(request: web.Request, body: RoomCreate) -> RoomOut:
        """Create a room (téléconsultation, e-Staff, expertise); the caller is its host."""
        p = auth.principal(request)
        room = await actions.create_room(
            app[DB],
            p,
            kind=body.kind,
            title=body.title,
            dossier_id=body.dossier_id,
            scheduled_at=body.scheduled_at,
            capacity=body.capacity,
            owner_id=body.owner_id,
        )
        return _room_out(room, "host", [])

    @api.get("/rooms", query=RoomQuery, response=list[RoomOut], tags=["rooms"])
    async def list_rooms(request: web.Request, query: RoomQuery) -> list[RoomOut]:
        """The rooms I may enter, with who is inside right now."""
        p = auth.principal(request)
        stmt = select(Room).where(access.visible_clause(p))
        if not query.include_closed:
            stmt = stmt.where(Room.status == RoomStatus.open)
        stmt = stmt.order_by(Room.scheduled_at.is_(None), Room.scheduled_at, Room.created_at.desc())
        async with app[DB].read() as session:
            rooms = list((await session.execute(stmt.limit(500))).scalars())
            roles = {r.id: await access.role_in(session, p, r) for r in rooms}
        occ = await occupancy_of(rooms)
        return [
            _room_out(r, roles[r.id] or "participant", occ[str(r.id)])
            for r in rooms
            if roles[r.id] is not None
        ]

    @api.get("/rooms/{room_id}", response=RoomOut, auth="principal", tags=["rooms"])
    async def get_room(request: web.Request) -> RoomOut:
        """A room I may enter, with its live occupancy."""
        return await show(auth.principal(request), uuid.UUID(request.match_info["room_id"]))

    @api.post("/rooms/{room_id}/close", response=RoomOut, tags=["rooms"])
    async def close_room(request: web.Request) -> RoomOut:
        """Close the room (hosts): everyone inside is disconnected."""
        p = auth.principal(request)
        room_id = uuid.UUID(request.match_info["room_id"])
        await actions.close_room(app[DB], p, room_id)
        return await show(p, room_id)

    @api.get("/rooms/{room_id}/members", response=list[MemberOut], tags=["rooms"])
    async def list_members(request: web.Request) -> list[MemberOut]:
        """The professionals with a role in the room (owner first)."""
        p = auth.principal(request)
        async with app[DB].read() as session:
            room, _ = await access.room_for(session, p, uuid.UUID(request.match_info["room_id"]))
            owner = await session.get(User, room.owner_id)
            rows = await session.execute(
                select(RoomMember, User)
                .join(User, User.id == RoomMember.user_id)
                .where(RoomMember.room_id == room.id)
                .order_by(RoomMember.added_at)
            )
            out = [
                MemberOut(
                    user_id=room.owner_id,
                    name=owner.display_name if owner else "",
                    role="host",
                    owner=True,
                )
            ]
            out += [
                MemberOut(user_id=u.id, name=u.display_name, role=m.role.value, owner=False)
                for m, u in rows.all()
            ]
        return out

    @api.post(
        "/rooms/{room_id}/members",
        body=MemberIn,
        response=MemberOut,
        status=201,
        tags=["rooms"],
        errors=[409],
    )
    async def add_member(request: web.Request, body: MemberIn) -> MemberOut:
        """Give a professional a role in the room (hosts): a co-host or a participant."""
        p = auth.principal(request)
        m = await actions.add_member(
            app[DB], p, uuid.UUID(request.match_info["room_id"]), body.user_id, body.role
        )
        async with app[DB].read() as session:
            u = await session.get(User, m.user_id)
        return MemberOut(
            user_id=m.user_id, name=u.display_name if u else "", role=m.role.value, owner=False
        )

    @api.post(
        "/rooms/{room_id}/invitations",
        body=InvitationIn,
        response=InvitationCreated,
        status=201,
        tags=["invitations"],
        errors=[409, 429],
    )
    async def create_invitation(request: web.Request, body: InvitationIn) -> InvitationCreated:
        """Invite a person without an account (the patient): a link by e-mail and/or SMS.

        At most 10 invitations a minute per user and 20 an hour per room (429 with
        `Retry-After`)."""
        p = auth.principal(request)
        settings = app[SETTINGS]
        inv, _, delivery = await invitations.create_invitation(
            app[DB],
            app[NOTIFIER],
            settings,
            p,
            uuid.UUID(request.match_info["room_id"]),
            name=body.name,
            email=str(body.email) if body.email else None,
            mobile=body.mobile.replace(" ", "").replace(".", "") if body.mobile else None,
            scheduled_at=body.scheduled_at,
            expires_at=body.expires_at,
            single_use=body.single_use,
            limiter=app[LIMITER],
        )
        return InvitationCreated(
            **_invitation_out(inv),
            link=invitations.link_of(settings, inv),
            delivery={k: v for k, v in vars(delivery).items() if v},
        )

    @api.get("/rooms/{room_id}/invitations", response=list[InvitationOut], tags=["invitations"])
    async def list_invitations(request: web.Request) -> list[InvitationOut]:
        """The room's invitations (hosts), newest first."""
        rows = await invitations.list_invitations(
            app[DB], auth.principal(request), uuid.UUID(request.match_info["room_id"])
        )
        return [InvitationOut(**_invitation_out(i)) for i in rows]

    @api.post(
        "/rooms/{room_id}/invitations/{invitation_id}/revoke",
        response=InvitationOut,
        tags=["invitations"],
    )
    async def revoke_invitation(request: web.Request) -> InvitationOut:
        """Withdraw an invitation: its link stops working."""
        inv = await invitations.revoke_invitation(
            app[DB],
            auth.principal(request),
            uuid.UUID(request.match_info["room_id"]),
            uuid.UUID(request.match_info["invitation_id"]),
        )
        return InvitationOut(**_invitation_out(inv))

    @api.get(
        "/invitations/{token}",
        response=InvitationCheck,
        auth="none",
        tags=["invitations"],
        errors=[404, 410, 429],
    )
    async def check_invitation(request: web.Request) -> InvitationCheck:
        """Check an invitation link (no account needed): what it opens, or why it cannot."""
        await throttle(request)
        inv, room = await invitations.resolve(app[DB], app[SETTINGS], request.match_info["token"])
        async with app[DB].read() as session:
            host = await session.get(User, inv.created_by)
        return InvitationCheck(
            room_id=room.id,
            room_title=room.title,
            room_kind=room.kind,
            name=inv.name,
            scheduled_at=inv.scheduled_at or room.scheduled_at,
            expires_at=inv.expires_at,
            host=host.display_name if host else "",
            supported_browsers=[Browser(**b) for b in invitations.SUPPORTED_BROWSERS],
        )

    @api.post(
        "/invitations/{token}/accept",
        body=AcceptIn,
        response=AcceptOut,
        auth="none",
        tags=["invitations"],
        errors=[404, 410, 429],
    )
    async def accept_invitation(request: web.Request, body: AcceptIn) -> web.StreamResponse:
        """Enter with an invitation: a guest session bound to the room; next, the lobby."""
        await throttle(request)
        name = body.name.strip()
        inv, room, guest = await invitations.accept(
            app[DB], app[SETTINGS], request.match_info["token"], name, auth.client_ip(request)
        )
        out = AcceptOut(room_id=room.id, guest_id=guest.id, name=name, status="lobby")
        response = web.json_response(out.model_dump(mode="json"))
        await auth.start_session(
            request,
            response,
            kind="guest",
            subject_id=guest.id,  # each use of a link is a guest of its own, admitted alone
            stage="full",
            data={"label": name, "room_id": str(room.id), "invitation_id": str(inv.id)},
        )
        return response

    async def join_page(request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        try:
            await invitations.resolve(app[DB], app[SETTINGS], token)
        except Problem as p:
            status, page = invitations.problem_page(p.code)
            return web.Response(status=status, text=page, content_type="text/html")
        if JOIN_PAGE in app:  # the browser client (ui/) renders the real page
            return await app[JOIN_PAGE](request, token)
        page = (
            "<!doctype html><html lang='fr'><meta charset='utf-8'><title>Consilium</title>"
            "<main><h1>Invitation valide</h1><p>Ouvrez ce lien dans Chrome ou Firefox sur "
            "ordinateur, Safari sur iPhone ou Chrome sur Android.</p></main></html>"
        )
        return web.Response(text=page, content_type="text/html")

    app.router.add_get("/join/{token}", join_page)
