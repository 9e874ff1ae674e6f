"""Chat over the live connection: ``chat:send``, ``chat:direct``, ``chat:history``,
``chat:typing``, ``chat:read``; the server emits ``chat:message``, ``chat:typing``,
``chat:read``. Messages are broadcast after they are committed (``chat.message`` event)."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Annotated, Any

from pydantic import BaseModel, Field

from chat import actions, inbox
from chat.config import ChatSettings
from chat.models import MAX_TEXT
from core.accounts import User
from core.context import DB
from core.events import Event
from rooms.live import (
    Conn,
    EventError,
    Live,
    Payload,
    channel_guest,
    channel_participant,
    channel_user,
)
from rooms.presence import Participant

log = logging.getLogger(__name__)

# The chat item of a file sent in a room has an id derived from the file's: posted once.
ATTACHMENT_ITEMS = uuid.UUID("6f1c2a52-5b0e-4d8e-9a51-3b1f6f0c0a11")

Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]


class DocumentRef(BaseModel):
    id: uuid.UUID
    name: Annotated[str, Field(min_length=1, max_length=255)]


class SendIn(Payload):
    id: uuid.UUID
    text: Text
    to: Annotated[str, Field(max_length=64)] | None = None  # a participant id: direct message
    document: DocumentRef | None = None


class DirectIn(Payload):
    id: uuid.UUID
    text: Text
    to_user: uuid.UUID
    document: DocumentRef | None = None


class HistoryIn(Payload):
    before: uuid.UUID | None = None
    limit: int = Field(50, ge=1, le=200)
    with_user: uuid.UUID | None = None  # a direct conversation outside rooms


class TypingIn(Payload):
    typing: bool = True
    to: Annotated[str, Field(max_length=64)] | None = None


class ReadIn(Payload):
    message_id: uuid.UUID
    with_user: uuid.UUID | None = None


async def room_participant(live: Live, conn: Conn, participant_id: str) -> Participant:
    """The participant of the connection's room that a direct message or typing notice names;
    anyone else (another room's participant included) is refused."""
    assert conn.room_id is not None
    target = await live.state.get(str(conn.room_id), participant_id)
    if target is None:
        raise EventError("No such participant in this room", code="participant_not_found")
    return target


def _sender(conn: Conn) -> actions.Sender:
    p = conn.principal
    return actions.Sender(id=p.subject_id, kind=p.kind, name=p.label)


def register(live: Live, config: ChatSettings | None = None) -> None:
    db = live.app[DB]
    cfg = config or ChatSettings()

    def throttle(conn: Conn) -> None:
        if not conn.allow("chat", cfg.messages_per_second, cfg.burst):
            raise EventError("You are sending too fast; wait a moment", code="rate_limited")

    @live.event("chat:send", SendIn)
    async def send(live: Live, conn: Conn, body: SendIn) -> dict[str, Any]:
        assert conn.room_id is not None
        throttle(conn)
        recipient = None
        target_pid = None
        if body.to is not None:
            target = await room_participant(live, conn, body.to)
            recipient = actions.Sender(
                id=uuid.UUID(target.subject_id), kind=target.kind, name=target.name
            )
            target_pid = target.id
        msg, _ = await actions.send_message(
            db,
            _sender(conn),
            message_id=body.id,
            text=body.text,
            room_id=conn.room_id,
            recipient=recipient,
            document=(body.document.id, body.document.name) if body.document else None,
            routing={"origin_sid": conn.sid, "to_participant": target_pid},
        )
        return {"message": actions.message_out(msg)}

    @live.event("chat:direct", DirectIn, in_room=False)
    async def direct(live: Live, conn: Conn, body: DirectIn) -> dict[str, Any]:
        if conn.principal.kind != "user":
            raise EventError("Reserved to professionals with an account", code="account_required")
        if body.to_user == conn.principal.subject_id:
            raise EventError("Write to a colleague, not to yourself", code="cannot_message_self")
        throttle(conn)
        async with db.read() as session:
            user = await session.get(User, body.to_user)
        if user is None or not user.active:
            raise EventError("No account with this id", code="user_not_found")
        msg, _ = await actions.send_message(
            db,
            _sender(conn),
            message_id=body.id,
            text=body.text,
            room_id=None,
            recipient=actions.Sender(id=user.id, kind="user", name=user.display_name),
            document=(body.document.id, body.document.name) if body.document else None,
            routing={"origin_sid": conn.sid},
        )
        return {"message": actions.message_out(msg)}

    @live.event("presence:online", in_room=False)
    async def online(live: Live, conn: Conn, body: Any) -> dict[str, Any]:
        """Colleagues connected right now (on any node), to chat with outside the room."""
        if conn.principal.kind != "user":
            raise EventError("Reserved to professionals", code="account_required")
        me = str(conn.principal.subject_id)
        users = await live.state.online_users()
        return {
            "users": sorted(
                ({"user_id": u, "name": n} for u, n in users.items() if u != me),
                key=lambda x: x["name"],
            )
        }

    @live.event("chat:history", HistoryIn, in_room=False)
    async def history(live: Live, conn: Conn, body: HistoryIn) -> dict[str, Any]:
        me = conn.principal.subject_id
        if body.with_user is not None:
            if conn.principal.kind != "user":
                raise EventError("Reserved to professionals", code="account_required")
            msgs, more = await actions.history(
                db, me, peer_id=body.with_user, before=body.before, limit=body.limit
            )
        else:
            if conn.room_id is None:
                raise EventError("Join a room first", code="not_in_room")
            msgs, more = await actions.history(
                db, me, room_id=conn.room_id, before=body.before, limit=body.limit
            )
        return {"messages": [actions.message_out(m) for m in msgs], "has_more": more}

    @live.event("chat:typing", TypingIn)
    async def typing(live: Live, conn: Conn, body: TypingIn) -> dict[str, Any]:
        data = {
            "participant_id": conn.participant_id,
            "name": conn.principal.label,
            "typing": body.typing,
        }
        if body.to:
            target = await room_participant(live, conn, body.to)  # as chat:send: same room only
            await live.emit_to_participant(target.id, "chat:typing", data)
        else:
            await live.emit_to_room(conn.room_id or "", "chat:typing", data, skip_sid=conn.sid)
        return {}

    @live.event("chat:read", ReadIn, in_room=False)
    async def read(live: Live, conn: Conn, body: ReadIn) -> dict[str, Any]:
        me = conn.principal.subject_id
        if body.with_user is not None:
            scope = actions.dm_scope(me, body.with_user)
        elif conn.room_id is not None:
            scope = f"room:{conn.room_id}"
        else:
            raise EventError("Join a room first", code="not_in_room")
        if not await actions.message_in_scope(db, body.message_id, scope):
            raise EventError("No message with this id here", code="message_not_found")
        at = await actions.mark_read(db, me, scope, body.message_id)
        if at is None:  # already read that far (another tab, a late retry): nothing changes
            return {}
        data = {
            "reader": {"id": str(me), "name": conn.principal.label},
            "participant_id": conn.participant_id,
            "message_id": str(body.message_id),
            "read_at": at.isoformat(),
        }
        if body.with_user is not None:
            await live.emit_to_user(body.with_user, "chat:read", data)
            await emit_unread(me)  # every tab of mine updates its badge
        else:
            await live.emit_to_room(conn.room_id or "", "chat:read", data, skip_sid=conn.sid)
        return {}

    async def emit_unread(user_id: uuid.UUID | str) -> None:
        """``chat:unread {total, conversations, at}`` to every connection of a user: the
        number of direct messages waiting for them outside rooms (the navigation badge);
        ``at`` (epoch seconds, taken before counting) orders counts computed concurrently."""
        at = time.time()  # taken before counting: clients keep the newest count
        total, convs = await inbox.unread_total(db, uuid.UUID(str(user_id)))
        await live.emit_to_user(
            user_id, "chat:unread", {"total": total, "conversations": convs, "at": at}
        )

    async def emit_unread_quietly(user_id: str) -> None:
        try:
            await emit_unread(user_id)
        except Exception:
            log.warning("unread count for %s failed", user_id, exc_info=True)

    @live.hooks.on_join_ack
    async def history_on_join(live: Live, conn: Conn) -> dict[str, Any]:
        assert conn.room_id is not None
        me = conn.principal.subject_id
        msgs, more = await actions.history(db, me, room_id=conn.room_id, limit=cfg.history_page)
        marker = await actions.read_marker(db, me, f"room:{conn.room_id}")
        return {
            "chat": {
                "messages": [actions.message_out(m) for m in msgs],
                "has_more": more,
                "read_up_to": str(marker) if marker else None,
            }
        }

    async def on_message(event: Event) -> None:
        m = event.payload
        origin = event.routing.get("origin_sid")
        if m["room_id"] is None:  # a direct conversation outside rooms
            assert m["to"] is not None
            await live.sio.emit("chat:message", m, room=channel_user(m["to"]["id"]))
            await live.sio.emit(
                "chat:message", m, room=channel_user(m["sender"]["id"]), skip_sid=origin
            )
            # Counted off the commit path: the sender's ack does not wait for it.
            live.spawn(emit_unread_quietly(m["to"]["id"]))
        elif event.routing.get("to_subjects"):
            channels = sorted(
                channel_user(i) if k == "user" else channel_guest(i)
                for k, i in event.routing["to_subjects"]
            )
            await live.sio.emit("chat:message", m, room=channels)
        elif event.routing.get("to_participant"):
            await live.sio.emit(
                "chat:message", m, room=channel_participant(event.routing["to_participant"])
            )
        else:
            await live.emit_to_room(m["room_id"], "chat:message", m, skip_sid=origin)

    db.bus.subscribe("chat.message", on_message)

    async def on_attachment(event: Event) -> None:
        """A file sent to someone (or everyone) in a room arrives as a downloadable chat item;
        captures kept by the one who took them do not."""
        a = event.payload
        if a["source"] in ("snapshot", "screenshot"):
            return
        sender = actions.Sender(
            id=uuid.UUID(a["uploaded_by"]["id"]),
            kind=a["uploaded_by"]["kind"],
            name=a["uploaded_by"]["label"],
        )
        to = a["recipient"]
        recipient = (
            actions.Sender(id=uuid.UUID(to["id"]), kind=to["kind"], name=to["label"])
            if to
            else None
        )
        routing: dict[str, Any] = {}
        if recipient is not None:
            routing["to_subjects"] = [
                (recipient.kind, str(recipient.id)),
                (sender.kind, str(sender.id)),
            ]
        await actions.send_message(
            db,
            sender,
            message_id=uuid.uuid5(ATTACHMENT_ITEMS, a["id"]),
            text=f"Fichier : {a['filename']}",
            room_id=uuid.UUID(a["room_id"]),
            recipient=recipient,
            attachment=(uuid.UUID(a["id"]), a["filename"]),
            routing=routing,
        )

    db.bus.subscribe("room.attachment", on_attachment)
