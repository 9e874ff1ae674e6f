from __future__ import annotations

import pytest

from tests.rooms.conftest import create_room

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


async def estaff(browsers, sockets, users):
    host = await browsers("requester")
    room = await create_room(host, kind="estaff", title="RCP")
    await host.post(
        f"/api/v1/rooms/{room['id']}/members",
        json={"user_id": str(users["expert"].id), "role": "participant"},
    )
    h = await sockets(host)
    await h.ok("room:join", {"room_id": room["id"]})
    expert = await browsers("expert")
    e = await sockets(expert)
    joined = await e.ok("room:join", {"room_id": room["id"]})
    return host, room, h, expert, e, joined["participant_id"]


async def audit_actions(browsers, room_id):
    admin = await browsers("admin")
    r = await admin.get(f"/api/v1/audit?object_id={room_id}")
    return sorted(a["action"] for a in await r.json())


async def test_removed_participant_is_disconnected_and_cannot_rejoin(browsers, sockets, users):
    _host, room, h, expert, e, pid = await estaff(browsers, sockets, users)
    await h.ok("room:remove", {"participant_id": pid})
    await e.wait_for("room:removed")
    await e.disconnected.wait()
    left = await h.wait_for("participant:left")
    assert left == {"participant_id": pid, "reason": "removed"}
    again = await sockets(expert)
    ack = await again.call("room:join", {"room_id": room["id"]})
    assert ack["error"]["code"] == "removed"
    r = await expert.get(f"/api/v1/rooms/{room['id']}")
    assert r.status == 404
    assert "room.remove" in await audit_actions(browsers, room["id"])


async def test_mute_is_stored_and_ask_unmute_only_asks(browsers, sockets, users):
    _host, room, h, _expert, e, pid = await estaff(browsers, sockets, users)
    await e.ok("participant:update", {"audio": True, "video": True})
    ack = await h.ok("room:mute", {"participant_id": pid})
    assert ack["participant"]["muted_by_host"] is True
    assert ack["participant"]["media"]["audio"] is False
    await e.wait_for("room:muted")
    refused = await e.call("participant:update", {"audio": True})
    assert refused["error"]["code"] == "muted_by_host"
    mark = len(h.received)
    await h.ok("room:ask_unmute", {"participant_id": pid})
    await e.wait_for("room:unmute_requested")
    state = await h.wait_for("participant:updated", since=mark)
    assert state["participant"]["muted_by_host"] is False
    assert state["participant"]["media"]["audio"] is False  # asked, not forced
    await e.ok("participant:update", {"audio": True})
    # Only hosts moderate.
    nope = await e.call("room:mute", {"participant_id": pid})
    assert nope["error"]["code"] == "host_required"
    assert {"room.mute", "room.ask_unmute"} <= set(await audit_actions(browsers, room["id"]))


async def test_lock_keeps_newcomers_out_and_end_disconnects_everyone(browsers, sockets, users):
    host, room, h, expert, e, _pid = await estaff(browsers, sockets, users)
    await h.ok("room:lock", {"locked": True})
    await e.wait_for("room:updated", lambda d: d["locked"] is True)
    await host.post(
        f"/api/v1/rooms/{room['id']}/members",
        json={"user_id": str(users["admin"].id), "role": "participant"},
    )
    late = await sockets(await browsers("admin"))
    ack = await late.call("room:join", {"room_id": room["id"]})
    assert ack["error"]["code"] == "room_locked"
    # Already inside: a reconnect of the same browser is let back in.
    await e.close()
    e2 = await sockets(expert)
    assert (await e2.ok("room:join", {"room_id": room["id"]}))["resumed"] is True

    ack = await h.call("room:end")
    assert ack == {"ok": True}
    await e2.wait_for("room:ended")
    await e2.disconnected.wait()
    await h.disconnected.wait()
    r = await host.get(f"/api/v1/rooms/{room['id']}")
    body = await r.json()
    assert body["status"] == "closed" and body["occupancy"]["count"] == 0
    assert {"room.lock", "room.close"} <= set(await audit_actions(browsers, room["id"]))
