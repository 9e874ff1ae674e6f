"""The "Messages" page's server side: direct conversations between professionals outside
rooms (``/api/v1/chat/…`` plus ``chat:direct``/``chat:read``/``chat:unread``), on SQLite and
PostgreSQL. Counts are read back from the real database through the routes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select

from chat.models import Message, ReadMarker
from core import accounts
from core.accounts import Role
from core.context import DB
from tests.chat.conftest import create_room
from tests.rooms.test_invitations import invite, token_from


async def direct(sock: Any, to: Any, text: str) -> dict[str, Any]:
    ack = await sock.ok(
        "chat:direct", {"id": str(uuid.uuid4()), "text": text, "to_user": str(to.id)}
    )
    return ack["message"]  # type: ignore[no-any-return]


async def get_json(api: Any, path: str, status: int = 200) -> Any:
    r = await api.get(path)
    assert r.status == status, await r.text()
    return await r.json()


async def unread(api: Any) -> int:
    return int((await get_json(api, "/api/v1/chat/unread"))["total"])


async def test_conversations_are_sorted_by_activity_with_unread_counts_from_read_markers(
    app, browsers, sockets, users
):
    claire, karim, sophie = users["requester"], users["expert"], users["secretary"]
    a_api, b_api, s_api = (
        await browsers("requester"),
        await browsers("expert"),
        await browsers("secretary"),
    )
    a, a2 = await sockets(a_api), await sockets(a_api)  # Claire in two tabs
    b, s = await sockets(b_api), await sockets(s_api)

    assert await get_json(a_api, "/api/v1/chat/conversations") == []
    assert await get_json(a_api, "/api/v1/chat/unread") == {"total": 0, "conversations": 0}

    k1 = await direct(b, claire, "Bonjour, pouvez-vous regarder l'HbA1c de Mme Petit ?")
    k2 = await direct(b, claire, "Résultat joint au dossier.")
    # Each arrival updates the recipient's badge on every tab, live.
    badge = await a.wait_for("chat:unread", lambda d: d["total"] == 2)
    assert badge["conversations"] == 1 and badge["at"] > 0  # "at" orders concurrent counts
    await a2.wait_for("chat:unread", lambda d: d["total"] == 2)
    got = await a.wait_for("chat:message", lambda m: m["id"] == k2["id"])
    assert got["room_id"] is None and got["sender"]["name"] == "Dr Karim Benali"
    await direct(s, claire, "Le patient de 14 h est arrivé.")
    mine = await direct(a, sophie, "Merci, je le reçois dans 5 minutes.")

    convs = await get_json(a_api, "/api/v1/chat/conversations")
    # The most recently active first: Sophie (my answer), then Karim.
    assert [c["peer"]["id"] for c in convs] == [str(sophie.id), str(karim.id)]
    assert convs[0]["peer"]["display_name"] == "Sophie Durand"
    assert convs[0]["peer"]["role"] == "secretary"
    assert convs[0]["last_message"]["id"] == mine["id"]
    assert convs[0]["last_message"]["mine"] is True
    assert convs[0]["unread"] == 1  # her message before my answer: I never marked it read
    assert convs[1]["peer"]["specialty"] == "Endocrinologie-diabétologie"
    assert convs[1]["peer"]["online"] is True
    assert convs[1]["last_message"]["excerpt"] == "Résultat joint au dossier."
    assert convs[1]["last_message"]["mine"] is False
    assert convs[1]["unread"] == 2
    assert await get_json(a_api, "/api/v1/chat/unread") == {"total": 3, "conversations": 2}
    # Karim's view: one conversation, nothing unread (he wrote both messages).
    b_convs = await get_json(b_api, "/api/v1/chat/conversations")
    assert [(c["peer"]["id"], c["unread"]) for c in b_convs] == [(str(claire.id), 0)]

    # Claire reads Karim's first message: one left; her other tab's badge follows.
    n = len(a2.received)
    await a.ok("chat:read", {"message_id": k1["id"], "with_user": str(karim.id)})
    await a2.wait_for("chat:unread", lambda d: d["total"] == 2, since=n)
    seen = await b.wait_for("chat:read")
    assert seen["message_id"] == k1["id"] and seen["reader"]["id"] == str(claire.id)
    assert await unread(a_api) == 2
    # Then the last: Karim's conversation is read.
    await a.ok("chat:read", {"message_id": k2["id"], "with_user": str(karim.id)})
    assert await unread(a_api) == 1
    # A late read of the first message (another tab, a retry) never moves the marker back.
    await a.ok("chat:read", {"message_id": k1["id"], "with_user": str(karim.id)})
    assert await unread(a_api) == 1
    async with app[DB].read() as session:
        marker = await session.scalar(select(ReadMarker).where(ReadMarker.reader_id == claire.id))
    assert marker is not None and str(marker.message_id) == k2["id"]
    detail = await get_json(a_api, f"/api/v1/chat/conversations/{karim.id}")
    assert detail["unread"] == 0 and detail["can_write"] is True
    assert detail["my_read"]["message_id"] == k2["id"]
    assert detail["peer_read"] is None
    assert detail["peer"]["display_name"] == "Dr Karim Benali"

    # Claire answers; Karim reads it: Claire sees "Lu" from the peer's marker.
    reply = await direct(a, karim, "Je regarde cet après-midi.")
    await b.wait_for("chat:unread", lambda d: d["total"] == 1)
    assert await unread(b_api) == 1
    await b.ok("chat:read", {"message_id": reply["id"], "with_user": str(claire.id)})
    read = await a.wait_for("chat:read", lambda d: d["message_id"] == reply["id"])
    assert read["reader"]["name"] == "Dr Karim Benali"
    assert await unread(b_api) == 0
    detail = await get_json(a_api, f"/api/v1/chat/conversations/{karim.id}")
    assert detail["peer_read"]["message_id"] == reply["id"]
    assert datetime.fromisoformat(
        detail["peer_read"]["message_created_at"]
    ) == datetime.fromisoformat(reply["created_at"])
    convs = await get_json(a_api, "/api/v1/chat/conversations")
    assert [c["peer"]["id"] for c in convs] == [str(karim.id), str(sophie.id)]
    assert [c["unread"] for c in convs] == [0, 1]

    # Retrying a send with the same id stores nothing new and counts nothing twice.
    retry_id = str(uuid.uuid4())
    body = {"id": retry_id, "text": "Une question encore", "to_user": str(karim.id)}
    first = await a.ok("chat:direct", body)
    again = await a.ok("chat:direct", body)
    assert first["message"] == again["message"]
    assert await unread(b_api) == 1
    async with app[DB].read() as session:
        rows = (await session.execute(select(Message.id).where(Message.room_id.is_(None)))).all()
    assert len(rows) == 6


async def test_room_messages_are_not_direct_conversations(browsers, sockets, users):
    """Chat inside a room (even a message to one participant) stays out of "Messages"."""
    host = await browsers("requester")
    room = await create_room(host, kind="estaff", title="RCP", capacity=4)
    await host.post(
        f"/api/v1/rooms/{room['id']}/members",
        json={"user_id": str(users["expert"].id), "role": "participant"},
    )
    h = await sockets(host)
    await h.ok("room:join", {"room_id": room["id"]})
    expert = await browsers("expert")
    e = await sockets(expert)
    joined = await e.ok("room:join", {"room_id": room["id"]})
    await h.ok("chat:send", {"id": str(uuid.uuid4()), "text": "À tous"})
    await h.ok(
        "chat:send",
        {"id": str(uuid.uuid4()), "text": "Pour vous", "to": joined["participant_id"]},
    )
    await e.wait_for("chat:message", lambda m: m["text"] == "Pour vous")
    assert await get_json(expert, "/api/v1/chat/conversations") == []
    assert await unread(expert) == 0


async def test_colleague_search_finds_active_professionals_only(app, browsers, users):
    karim = users["expert"]
    async with app[DB].write() as uow:

        async def make(first: str, last: str, role: Role = Role.practitioner, **kw: Any) -> Any:
            return await accounts.create_user(
                uow.session,
                email=f"{first}.{last}.{uuid.uuid4().hex[:6]}@example.org".lower(),
                password=None,
                role=role,
                first_name=first,
                last_name=last,
                **kw,
            )

        near = await make(
            "Zoé",
            "Marchal",
            title="Dr",
            specialty="Néphrologie",
            establishment=karim.establishment,
        )
        far = await make("Anne", "Marchand", title="Dr", establishment="CHU de Grenoble")
        gone = await make("Hélène", "Marceau")
        gone.active = False
        await make("Marc", "Admin-Martin", role=Role.admin)
        for i in range(25):
            await make(f"Interne{i:02d}", "Lefebvre")
    b = await browsers("expert")

    found = await get_json(b, "/api/v1/chat/colleagues?q=mar")
    names = [p["display_name"] for p in found]
    # My establishment first, then by name; the inactive account and the admin are absent.
    assert names == ["Dr Zoé Marchal", "Dr Anne Marchand", "Dr Claire Martin"]
    assert found[0]["id"] == str(near.id)
    assert found[0]["specialty"] == "Néphrologie"
    assert found[0]["establishment"] == karim.establishment
    assert found[1]["id"] == str(far.id) and found[1]["establishment"] == "CHU de Grenoble"
    assert str(gone.id) not in {p["id"] for p in found}
    # Accents and case ignored; every word must match; a secretary is a colleague too.
    assert [
        p["display_name"] for p in await get_json(b, "/api/v1/chat/colleagues?q=SOPH%20dur")
    ] == ["Sophie Durand"]
    assert await get_json(b, "/api/v1/chat/colleagues?q=helene") == []
    # Never myself.
    assert await get_json(b, "/api/v1/chat/colleagues?q=benali") == []
    # At most 20.
    assert len(await get_json(b, "/api/v1/chat/colleagues?q=lefebvre")) == 20
    # Two letters at least.
    r = await b.get("/api/v1/chat/colleagues?q=m")
    assert r.status == 422 and r.content_type == "application/problem+json"
    r = await b.get("/api/v1/chat/colleagues?q=%20m%20")
    assert r.status == 422
    # A professional can open a new conversation; not with an administrator or a closed account.
    detail = await get_json(b, f"/api/v1/chat/conversations/{near.id}")
    assert detail["peer"]["display_name"] == "Dr Zoé Marchal" and detail["unread"] == 0
    assert detail["my_read"] is None and detail["can_write"] is True
    for other in (users["admin"].id, gone.id, uuid.uuid4(), karim.id):
        r = await b.get(f"/api/v1/chat/conversations/{other}")
        assert r.status == 404, other
        assert (await r.json())["code"] == "conversation_not_found"


async def test_a_closed_account_keeps_its_history_but_cannot_be_written_to(
    app, browsers, sockets, users
):
    a_api = await browsers("requester")
    b_api = await browsers("expert")
    a, b = await sockets(a_api), await sockets(b_api)
    await direct(b, users["requester"], "Je pars à la retraite, voici mes notes.")
    async with app[DB].write() as uow:
        karim = await uow.session.get(accounts.User, users["expert"].id)
        assert karim is not None
        karim.active = False
    convs = await get_json(a_api, "/api/v1/chat/conversations")
    assert convs[0]["peer"]["active"] is False and convs[0]["peer"]["online"] is False
    detail = await get_json(a_api, f"/api/v1/chat/conversations/{users['expert'].id}")
    assert detail["can_write"] is False and detail["unread"] == 1
    refused = await a.call(
        "chat:direct",
        {"id": str(uuid.uuid4()), "text": "Bonne retraite", "to_user": str(users["expert"].id)},
    )
    assert refused["error"]["code"] == "user_not_found"
    myself = await a.call(
        "chat:direct",
        {"id": str(uuid.uuid4()), "text": "Note à moi-même", "to_user": str(users["requester"].id)},
    )
    assert myself["error"]["code"] == "cannot_message_self"


async def test_patients_and_strangers_are_refused(browsers, make_client, sockets, users):
    """An invited patient (a guest session from a real invitation) gets 403 problem+json on
    every route and error acks on the direct events; without a session, 401."""
    host = await browsers("requester")
    room = await create_room(host)
    inv = await invite(host, room["id"])
    guest = await make_client()
    r = await guest.post(
        f"/api/v1/invitations/{token_from(inv['link'])}/accept", json={"name": "Jeanne Petit"}
    )
    assert r.status == 200, await r.text()
    claire = users["requester"].id
    paths = [
        "/api/v1/chat/conversations",
        f"/api/v1/chat/conversations/{claire}",
        "/api/v1/chat/unread",
        "/api/v1/chat/colleagues?q=martin",
    ]
    for path in paths:
        r = await guest.get(path)
        assert r.status == 403, path
        assert r.content_type == "application/problem+json"
        assert (await r.json())["code"] == "account_required"
    g = await sockets(guest)
    for event, data in [
        ("chat:direct", {"id": str(uuid.uuid4()), "text": "Bonjour", "to_user": str(claire)}),
        ("chat:history", {"with_user": str(claire)}),
        ("presence:online", None),
    ]:
        ack = await g.call(event, data)
        assert ack["ok"] is False and ack["error"]["code"] == "account_required", event
    nobody = await make_client()
    for path in paths:
        r = await nobody.get(path)
        assert r.status == 401, path
        assert r.content_type == "application/problem+json"
    await asyncio.sleep(0)
