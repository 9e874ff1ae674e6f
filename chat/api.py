"""REST routes of the "Messages" page (``/api/v1/chat/…``): direct conversations between
professionals outside rooms.

Why REST next to the Socket.IO events: what the page reads when it opens (my conversations,
the unread total, a colleague search, one conversation's read markers) is a plain
request/response that also works before or without a live connection, is typed in the
OpenAPI document and refuses guests with a 403 problem+json like every other account route.
What happens live (a message arrives, the peer has read, the badge changes) rides on the
live connection: ``chat:direct``, ``chat:history``, ``chat:read``, and the server's
``chat:message``, ``chat:read`` and ``chat:unread`` events (chat/live.py).

Only accounts reach these routes (``auth="user"``): an invited patient gets 403
``account_required``.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from chat import inbox
from chat.actions import dm_scope
from core.accounts import Role, User
from core.api import Api
from core.auth import principal
from core.context import DB
from core.errors import NotFound, ValidationFailed
from rooms.live import Live


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PeerOut(BaseModel):
    id: uuid.UUID
    display_name: str
    role: Role | None = Field(description="None when the account no longer exists")
    profession: str
    specialty: str
    establishment: str
    active: bool = Field(description="False: the account was closed; its history stays")
    online: bool = Field(description="Connected right now (on any node)")


class LastMessageOut(BaseModel):
    id: uuid.UUID
    excerpt: str = Field(description=f"The first {inbox.EXCERPT} characters of the text")
    created_at: datetime
    mine: bool
    has_file: bool


class ConversationOut(BaseModel):
    peer: PeerOut
    last_message: LastMessageOut
    unread: int = Field(description="The peer's messages after my read marker")


class ConversationQuery(_In):
    limit: int = Field(50, ge=1, le=200)


class ReadMarkerOut(BaseModel):
    message_id: uuid.UUID
    message_created_at: datetime = Field(description="When the read message was sent")
    read_at: datetime


class ConversationDetailOut(BaseModel):
    peer: PeerOut
    unread: int
    can_write: bool = Field(description="False when the peer's account is closed or gone")
    my_read: ReadMarkerOut | None = Field(description="How far I have read")
    peer_read: ReadMarkerOut | None = Field(description="How far the peer has read ('Lu')")


class UnreadOut(BaseModel):
    total: int = Field(description="Direct messages waiting for me outside rooms")
    conversations: int = Field(description="Conversations holding some")


class ColleagueQuery(_In):
    q: str = Field(min_length=2, max_length=100, description="Part of a first or last name")
    limit: int = Field(inbox.MAX_COLLEAGUES, ge=1, le=inbox.MAX_COLLEAGUES)


def _peer(user: User | None, peer_id: uuid.UUID, stored_name: str, online: set[str]) -> PeerOut:
    if user is None:
        return PeerOut(
            id=peer_id,
            display_name=stored_name,
            role=None,
            profession="",
            specialty="",
            establishment="",
            active=False,
            online=False,
        )
    return PeerOut(
        id=user.id,
        display_name=user.display_name,
        role=user.role,
        profession=user.profession,
        specialty=user.specialty,
        establishment=user.establishment,
        active=user.active,
        online=user.active and str(user.id) in online,
    )


def _marker(m: inbox.Marker | None) -> ReadMarkerOut | None:
    if m is None:
        return None
    return ReadMarkerOut(
        message_id=m.message_id, message_created_at=m.message_created_at, read_at=m.read_at
    )


def setup(app: web.Application) -> None:
    api = Api.of(app)

    async def online_ids(request: web.Request) -> set[str]:
        return set(await Live.of(request.app).state.online_users())

    @api.get(
        "/chat/conversations",
        query=ConversationQuery,
        response=list[ConversationOut],
        tags=["chat"],
    )
    async def list_conversations(
        request: web.Request, query: ConversationQuery
    ) -> list[ConversationOut]:
        """My direct conversations outside rooms, the most recently active first."""
        me = principal(request).user_id
        db = request.app[DB]
        convs = await inbox.conversations(db, me, limit=query.limit)
        users = await inbox.users_by_id(db, [c.peer_id for c in convs])
        online = await online_ids(request)
        return [
            ConversationOut(
                peer=_peer(users.get(c.peer_id), c.peer_id, c.peer_name, online),
                last_message=LastMessageOut(
                    id=c.last.id,
                    excerpt=c.last.text[: inbox.EXCERPT],
                    created_at=c.last.created_at,
                    mine=c.last.sender_id == me,
                    has_file=c.last.document_id is not None or c.last.attachment_id is not None,
                ),
                unread=c.unread,
            )
            for c in convs
        ]

    @api.get(
        "/chat/conversations/{user_id}",
        response=ConversationDetailOut,
        tags=["chat"],
    )
    async def get_conversation(request: web.Request) -> ConversationDetailOut:
        """One conversation: the colleague, my unread count and both read markers. A
        conversation not started yet exists for any active professional."""
        me = principal(request).user_id
        peer_id = uuid.UUID(request.match_info["user_id"])
        db = request.app[DB]
        if peer_id == me:
            raise NotFound("No conversation with yourself", code="conversation_not_found")
        user = (await inbox.users_by_id(db, [peer_id])).get(peer_id)
        stored_name = await inbox.has_conversation(db, me, peer_id)
        if stored_name is None and not inbox.is_professional(user):
            raise NotFound("No colleague with this id", code="conversation_not_found")
        scope = dm_scope(me, peer_id)
        unread = (await inbox.unread_by_conversation(db, me)).get(scope, 0)
        return ConversationDetailOut(
            peer=_peer(user, peer_id, stored_name or "", await online_ids(request)),
            unread=unread,
            can_write=user is not None and user.active,
            my_read=_marker(await inbox.marker(db, me, scope)),
            peer_read=_marker(await inbox.marker(db, peer_id, scope)),
        )

    @api.get("/chat/unread", response=UnreadOut, tags=["chat"])
    async def unread(request: web.Request) -> UnreadOut:
        """How many direct messages wait for me (the "Messages" badge)."""
        total, convs = await inbox.unread_total(request.app[DB], principal(request).user_id)
        return UnreadOut(total=total, conversations=convs)

    @api.get(
        "/chat/colleagues",
        query=ColleagueQuery,
        response=list[PeerOut],
        tags=["chat"],
    )
    async def colleagues(request: web.Request, query: ColleagueQuery) -> list[PeerOut]:
        """Professionals to start a conversation with: practitioners and secretariats with an
        active account, by name (2 letters at least; accents and case ignored), my
        establishment's first; at most 20. Never administrators, never patients."""
        me = principal(request).user_id
        db = request.app[DB]
        if len("".join(query.q.split())) < 2:
            raise ValidationFailed("Type at least 2 letters", code="query_too_short")
        me_user = (await inbox.users_by_id(db, [me]))[me]
        found = await inbox.find_colleagues(db, me_user, query.q, limit=query.limit)
        online = await online_ids(request)
        return [_peer(u, u.id, u.display_name, online) for u in found]
