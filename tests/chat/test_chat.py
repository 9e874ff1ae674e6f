from __future__ import annotations

import asyncio
import uuid

import pytest

from chat.models import Message, ReadMarker
from core.context import DB
from tests.chat.conftest import create_room

live_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


async def estaff(browsers, sockets, users, *extra):
    host = await browsers("requester")
    room = await create_room(host, kind="estaff", title="RCP", capacity=6)
    socks = [await sockets(host)]
    acks = [await socks[0].ok("room:join", {"room_id": room["id"]})]
    for who in ("expert", *extra):
        await host.post(
            f"/api/v1/rooms/{room['id']}/members",
            json={"user_id": str(users[who].id), "role": "participant"},
        )
        s = await sockets(await browsers(who))
        acks.append(await s.ok("room:join", {"room_id": room["id"]}))
        socks.append(s)
    return room, socks, acks


async def test_message_is_stored_before_ack_and_a_retry_is_stored_once(
    browsers, sockets, users, app
):
    _room, (a, b), _ = await estaff(browsers, sockets, users)
    mid = uuid.uuid4()
    ack = await a.ok("chat:send", {"id": str(mid), "text": "Bonjour <b>à tous</b>"})
    # Acknowledged means committed.
    async with app[DB].read() as session:
        stored = await session.get(Message, mid)
    assert stored is not None and stored.text == "Bonjour <b>à tous</b>"  # plain text, as sent
    assert ack["message"]["id"] == str(mid)
    got = await b.wait_for("chat:message")
    assert got["text"] == "Bonjour <b>à tous</b>" and got["sender"]["name"] == "Dr Claire Martin"
    # The ack was lost, the client retries with the same id: one row, no second delivery.
    again = await a.ok("chat:send", {"id": str(mid), "text": "Bonjour <b>à tous</b>"})
    assert again["message"] == ack["message"]
    async with app[DB].read() as session:
        from sqlalchemy import func, select

        n = await session.scalar(select(func.count()).select_from(Message).where(Message.id == mid))
    assert n == 1
    await asyncio.sleep(0.2)
    assert len(b.events("chat:message")) == 1
    assert a.events("chat:message") == []  # the sender has its ack
    # Someone else reusing the id is refused.
    clash = await b.call("chat:send", {"id": str(mid), "text": "autre"})
    assert clash["error"]["code"] == "duplicate_id"


async def test_history_pages_back_newest_first(browsers, sockets, users):
    room, (a, b), _ = await estaff(browsers, sockets, users)
    sent = []
    for i in range(7):
        ack = await a.ok("chat:send", {"id": str(uuid.uuid4()), "text": f"message {i}"})
        sent.append(ack["message"]["id"])
    page = await b.ok("chat:history", {"limit": 3})
    assert [m["text"] for m in page["messages"]] == ["message 6", "message 5", "message 4"]
    assert page["has_more"] is True
    page2 = await b.ok("chat:history", {"limit": 3, "before": page["messages"][-1]["id"]})
    assert [m["text"] for m in page2["messages"]] == ["message 3", "message 2", "message 1"]
    page3 = await b.ok("chat:history", {"limit": 3, "before": page2["messages"][-1]["id"]})
    assert [m["text"] for m in page3["messages"]] == ["message 0"]
    assert page3["has_more"] is False
    # History on join.
    c = await sockets(await browsers("expert"))
    joined = await c.ok("room:join", {"room_id": room["id"]})
    assert [m["id"] for m in joined["chat"]["messages"]] == sent[::-1]


@live_only
async def test_direct_message_reaches_only_its_target(browsers, sockets, users):
    _room, (a, b, c), acks = await estaff(browsers, sockets, users, "admin")
    target = acks[1]["participant_id"]
    ack = await a.ok(
        "chat:send",
        {
            "id": str(uuid.uuid4()),
            "text": "Pour vous seulement",
            "to": target,
            "document": {"id": str(uuid.uuid4()), "name": "bilan.pdf"},
        },
    )
    assert ack["message"]["to"]["name"] == "Dr Karim Benali"
    got = await b.wait_for("chat:message")
    assert got["text"] == "Pour vous seulement" and got["document"]["name"] == "bilan.pdf"
    await asyncio.sleep(0.3)
    assert c.events("chat:message") == []
    hist_c = await c.ok("chat:history", {})
    assert hist_c["messages"] == []
    hist_b = await b.ok("chat:history", {})
    assert [m["text"] for m in hist_b["messages"]] == ["Pour vous seulement"]


@live_only
async def test_chat_with_a_connected_colleague_outside_the_room(browsers, sockets, users):
    host = await browsers("requester")
    room = await create_room(host)
    a = await sockets(host)
    await a.ok("room:join", {"room_id": room["id"]})
    colleague = await sockets(await browsers("expert"))  # connected, in no room
    online = await a.ok("presence:online")
    assert online["users"] == [{"user_id": str(users["expert"].id), "name": "Dr Karim Benali"}]
    ack = await a.ok(
        "chat:direct",
        {"id": str(uuid.uuid4()), "text": "Tu as un moment ?", "to_user": str(users["expert"].id)},
    )
    got = await colleague.wait_for("chat:message")
    assert got["text"] == "Tu as un moment ?" and got["room_id"] is None
    await colleague.ok(
        "chat:direct",
        {"id": str(uuid.uuid4()), "text": "Oui", "to_user": str(users["requester"].id)},
    )
    await a.wait_for("chat:message", lambda m: m["text"] == "Oui")
    hist = await colleague.ok("chat:history", {"with_user": str(users["requester"].id)})
    assert [m["text"] for m in hist["messages"]] == ["Oui", "Tu as un moment ?"]
    await colleague.ok(
        "chat:read", {"message_id": ack["message"]["id"], "with_user": str(users["requester"].id)}
    )
    read = await a.wait_for("chat:read")
    assert read["message_id"] == ack["message"]["id"]


@live_only
async def test_typing_read_markers_and_flood_throttling(browsers, sockets, users, app):
    _room, (a, b), acks = await estaff(browsers, sockets, users)
    await a.ok("chat:typing", {"typing": True})
    typing = await b.wait_for("chat:typing")
    assert typing == {
        "participant_id": acks[0]["participant_id"],
        "name": "Dr Claire Martin",
        "typing": True,
    }
    ack = await a.ok("chat:send", {"id": str(uuid.uuid4()), "text": "lu ?"})
    await b.ok("chat:read", {"message_id": ack["message"]["id"]})
    read = await a.wait_for("chat:read")
    assert read["participant_id"] == acks[1]["participant_id"]
    async with app[DB].read() as session:
        marker = await session.get(ReadMarker, 1)
    assert marker is not None and str(marker.message_id) == ack["message"]["id"]
    bad = await b.call("chat:read", {"message_id": str(uuid.uuid4())})
    assert bad["error"]["code"] == "message_not_found"
    # Flooding: past the burst, error acks; the connection stays usable.
    results = [
        await b.call("chat:send", {"id": str(uuid.uuid4()), "text": f"spam {i}"}) for i in range(25)
    ]
    codes = [r["error"]["code"] for r in results if not r["ok"]]
    assert codes and set(codes) == {"rate_limited"}
    assert sum(r["ok"] for r in results) <= 12
    await asyncio.sleep(1)
    assert (await b.call("chat:send", {"id": str(uuid.uuid4()), "text": "calme"}))["ok"]


async def test_typing_to_a_participant_of_another_room_is_refused_and_not_delivered(
    browsers, sockets, users
):
    _room, (a, b), acks = await estaff(browsers, sockets, users)
    # Someone in another room, whose participant id the sender learnt somehow.
    elsewhere = await browsers("expert")
    other = await create_room(elsewhere, kind="estaff", title="Autre RCP")
    o = await sockets(elsewhere)
    stranger = (await o.ok("room:join", {"room_id": other["id"]}))["participant_id"]

    refused = await a.call("chat:typing", {"typing": True, "to": stranger})
    assert refused["ok"] is False and refused["error"]["code"] == "participant_not_found"
    refused = await a.call("chat:send", {"id": str(uuid.uuid4()), "text": "?", "to": stranger})
    assert refused["error"]["code"] == "participant_not_found"  # the same rule as messages
    # Within the room, a typing notice to one participant still reaches them.
    await a.ok("chat:typing", {"typing": True, "to": acks[1]["participant_id"]})
    got = await b.wait_for("chat:typing")
    assert got["participant_id"] == acks[0]["participant_id"]
    assert o.events("chat:typing") == []
