from __future__ import annotations

import asyncio

import pytest

from tests.rooms.conftest import create_room

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


async def test_two_clients_see_each_other_join_and_leave(browsers, sockets, users):
    host = await browsers("requester")
    room = await create_room(host, kind="estaff", title="RCP diabétologie")
    await host.post(
        f"/api/v1/rooms/{room['id']}/members", json={"user_id": str(users["expert"].id)}
    )
    a = await sockets(host)
    ack = await a.ok("room:join", {"room_id": room["id"]})
    assert ack["role"] == "host"
    assert [p["name"] for p in ack["participants"]] == ["Dr Claire Martin"]

    expert = await browsers("expert")
    b = await sockets(expert)
    ack_b = await b.ok("room:join", {"room_id": room["id"]})
    names = sorted(p["name"] for p in ack_b["participants"])
    assert names == ["Dr Claire Martin", "Dr Karim Benali"]
    joined = await a.wait_for("participant:joined")
    assert joined["participant"]["name"] == "Dr Karim Benali"
    assert joined["participant"]["media"] == {"audio": False, "video": False, "screen": False}

    await b.ok("participant:update", {"audio": True, "hand_raised": True})
    upd = await a.wait_for("participant:updated", lambda d: d["participant"]["hand_raised"])
    assert upd["participant"]["media"]["audio"] is True

    await b.ok("room:leave")
    left = await a.wait_for("participant:left")
    assert left == {"participant_id": ack_b["participant_id"], "reason": "left"}


async def test_reconnect_within_grace_keeps_one_entry_and_vanished_is_removed(
    browsers, sockets, users
):
    host = await browsers("requester")
    room = await create_room(host, kind="estaff", title="RCP")
    await host.post(
        f"/api/v1/rooms/{room['id']}/members", json={"user_id": str(users["expert"].id)}
    )
    a = await sockets(host)
    await a.ok("room:join", {"room_id": room["id"]})
    expert = await browsers("expert")
    b = await sockets(expert)
    first = await b.ok("room:join", {"room_id": room["id"]})
    await a.wait_for("participant:joined")

    # The connection drops, the same browser comes back within the grace period.
    await b.close()
    await a.wait_for("participant:updated", lambda d: d["participant"]["connected"] is False)
    b2 = await sockets(expert)
    again = await b2.ok("room:join", {"room_id": room["id"]})
    assert again["resumed"] is True
    assert again["participant_id"] == first["participant_id"]
    assert sorted(p["name"] for p in again["participants"]) == [
        "Dr Claire Martin",
        "Dr Karim Benali",
    ]
    await asyncio.sleep(1.5)  # past the (test) grace period: still one entry, never left
    assert a.events("participant:joined").__len__() == 1
    assert a.events("participant:left") == []
    r = await host.get(f"/api/v1/rooms/{room['id']}")
    assert (await r.json())["occupancy"]["count"] == 2

    # Vanishing for good: removed once the grace period is over.
    await b2.close()
    left = await a.wait_for("participant:left", timeout=5)
    assert left == {"participant_id": first["participant_id"], "reason": "timeout"}
    r = await host.get(f"/api/v1/rooms/{room['id']}")
    occ = (await r.json())["occupancy"]
    assert occ == {
        "count": 1,
        "participants": [{"name": "Dr Claire Martin", "role": "host", "connected": True}],
    }


async def test_room_capacity_is_enforced(browsers, sockets, users):
    host = await browsers("requester")
    room = await create_room(host, kind="estaff", title="Petite salle", capacity=2)
    for who in ("expert", "secretary"):
        await host.post(
            f"/api/v1/rooms/{room['id']}/members",
            json={"user_id": str(users[who].id), "role": "participant"},
        )
    await (await sockets(host)).ok("room:join", {"room_id": room["id"]})
    await (await sockets(await browsers("expert"))).ok("room:join", {"room_id": room["id"]})
    third = await sockets(await browsers("admin"))
    ack = await third.call("room:join", {"room_id": room["id"]})
    assert ack["error"]["code"] == "room_not_found"  # the admin has no role in this room
    fourth = await sockets(await browsers("secretary"))
    ack = await fourth.call("room:join", {"room_id": room["id"]})
    assert ack == {"ok": False, "error": {"code": "room_full", "message": "The room is full"}}
