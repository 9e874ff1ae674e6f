from __future__ import annotations

import pytest

from rooms.live import Live
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


# -- one write path: decided, then changed, then audited (issue 10) --------------------------


async def guest_in_lobby(host, host_sock, make_client, sockets, room_id):
    r = await host.post(
        f"/api/v1/rooms/{room_id}/invitations",
        json={"name": "Jeanne Petit", "mobile": "+33612345678"},
    )
    assert r.status == 201, await r.text()
    token = (await r.json())["link"].rsplit("/join/", 1)[1]
    guest = await make_client()
    r = await guest.post(f"/api/v1/invitations/{token}/accept", json={"name": "Jeanne Petit"})
    assert r.status == 200, await r.text()
    g = await sockets(guest)
    assert (await g.ok("room:join", {"room_id": room_id}))["status"] == "lobby"
    await host_sock.wait_for("lobby:arrived")
    return g, (await r.json())["guest_id"]


async def demoted_cohost(browsers, sockets, users, host, room_id):
    """A co-host inside the room whose host role was taken back meanwhile: their connection
    still says host, the database no longer does."""
    expert_id = str(users["expert"].id)
    r = await host.post(
        f"/api/v1/rooms/{room_id}/members", json={"user_id": expert_id, "role": "host"}
    )
    assert r.status == 201
    e = await sockets(await browsers("expert"))
    assert (await e.ok("room:join", {"room_id": room_id}))["role"] == "host"
    r = await host.post(
        f"/api/v1/rooms/{room_id}/members", json={"user_id": expert_id, "role": "participant"}
    )
    assert r.status == 201
    return e


async def test_an_admission_refused_to_a_non_host_leaves_the_guest_in_the_lobby(
    browsers, make_client, sockets, users
):
    host = await browsers("requester")
    room = await create_room(host)
    h = await sockets(host)
    await h.ok("room:join", {"room_id": room["id"]})
    e = await demoted_cohost(browsers, sockets, users, host, room["id"])
    g, guest_id = await guest_in_lobby(host, h, make_client, sockets, room["id"])

    for event in ("room:admit", "room:refuse"):
        ack = await e.call(event, {"guest_id": guest_id})
        assert ack["error"]["code"] == "host_required", ack
    waiting = await h.ok("lobby:list")
    assert [x["guest_id"] for x in waiting["lobby"]] == [guest_id]
    actions = await audit_actions(browsers, room["id"])
    assert "lobby.admit" not in actions and "lobby.refuse" not in actions
    assert not g.events("lobby:admitted") and not g.events("lobby:refused")
    # The real host still decides.
    await h.ok("room:admit", {"guest_id": guest_id})
    await g.wait_for("lobby:admitted")
    assert "lobby.admit" in await audit_actions(browsers, room["id"])


async def test_a_mute_refused_or_failing_writes_no_audit_row(
    app, browsers, sockets, users, monkeypatch
):
    _host, room, h, _expert, e, pid = await estaff(browsers, sockets, users)
    await e.ok("participant:update", {"audio": True})
    state = Live.of(app).state

    async def left_meanwhile(room_id, participant_id, **changes):
        # The participant leaves between the host's click and the change.
        await state.remove(room_id, participant_id)
        return None

    with monkeypatch.context() as m:
        m.setattr(state, "update", left_meanwhile)
        ack = await h.call("room:mute", {"participant_id": pid})
    assert ack["error"]["code"] == "participant_not_found"
    assert "room.mute" not in await audit_actions(browsers, room["id"])
    assert not e.events("room:muted")

    # Refused: a co-host whose role was taken back.
    host2 = await browsers("requester")
    room2 = await create_room(host2, kind="estaff")
    h2 = await sockets(host2)
    owner = await h2.ok("room:join", {"room_id": room2["id"]})
    c = await demoted_cohost(browsers, sockets, users, host2, room2["id"])
    ack = await c.call("room:mute", {"participant_id": owner["participant_id"]})
    assert ack["error"]["code"] == "host_required"
    assert "room.mute" not in await audit_actions(browsers, room2["id"])
    assert not h2.events("room:muted")
