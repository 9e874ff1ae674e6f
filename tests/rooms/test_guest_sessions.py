"""Each use of an invitation link is a guest session of its own: it waits in the lobby and is
admitted alone; the invitation's expiry or withdrawal ends every guest session it opened
(security review, issue 12 item 3)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import socketio
from aiohttp import web
from sqlalchemy import update

from core.app import create_app
from core.context import DB
from core.db import utcnow
from rooms.live import Live
from rooms.models import Invitation
from tests.rooms.conftest import create_room
from tests.support.live import open_socket


@pytest.fixture
def app(settings, monkeypatch) -> web.Application:
    monkeypatch.setenv("CONSILIUM_ROOM_GUEST_CHECK_SECONDS", "0.2")  # expiry noticed quickly
    app = create_app(settings)
    Live.of(app).grace = 1.0
    return app


async def link(host, room_id, **kw):
    body = {"name": "Famille Petit", "mobile": "+33612345678", **kw}
    r = await host.post(f"/api/v1/rooms/{room_id}/invitations", json=body)
    assert r.status == 201, await r.text()
    inv = await r.json()
    return inv, inv["link"].rsplit("/join/", 1)[1]


async def guest_with(make_client, token, name):
    guest = await make_client()
    r = await guest.post(f"/api/v1/invitations/{token}/accept", json={"name": name})
    assert r.status == 200, await r.text()
    return guest, (await r.json())["guest_id"]


async def admitted(h, g, guest_id, room_id):
    assert (await g.ok("room:join", {"room_id": room_id}))["status"] == "lobby"
    await h.ok("room:admit", {"guest_id": guest_id})
    await g.wait_for("lobby:admitted")
    return await g.ok("room:join", {"room_id": room_id})


async def expire(app, invitation_id):
    """The invitation's validity ran out (as time passing would)."""
    async with app[DB].write() as uow:
        await uow.session.execute(
            update(Invitation)
            .where(Invitation.id == uuid.UUID(invitation_id))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )


async def test_every_guest_of_a_multi_use_link_waits_in_the_lobby_and_is_admitted_alone(
    browsers, make_client, sockets
):
    host = await browsers("requester")
    room = await create_room(host)
    h = await sockets(host)
    await h.ok("room:join", {"room_id": room["id"]})
    inv, token = await link(host, room["id"])
    assert inv["single_use"] is False

    first, first_id = await guest_with(make_client, token, "Jeanne Petit")
    g1 = await sockets(first)
    joined = await admitted(h, g1, first_id, room["id"])
    assert joined["status"] == "joined"

    # Someone else holding the same link: a guest of their own, in the lobby.
    second, second_id = await guest_with(make_client, token, "Inconnu")
    assert second_id != first_id
    g2 = await sockets(second)
    ack = await g2.ok("room:join", {"room_id": room["id"]})
    assert ack["status"] == "lobby" and "participants" not in ack
    arrived = await h.wait_for("lobby:arrived", lambda d: d["guest_id"] == second_id)
    assert arrived["name"] == "Inconnu"
    nope = await g2.call("chat:send", {"id": str(uuid.uuid4()), "text": "?"})
    assert nope["error"]["code"] == "not_in_room"
    r = await second.get(f"/api/v1/rooms/{room['id']}")
    assert r.status == 200  # their own room: waiting, they may see it
    # Admitted on their own.
    await h.ok("room:admit", {"guest_id": second_id})
    await g2.wait_for("lobby:admitted")
    inside = await g2.ok("room:join", {"room_id": room["id"]})
    guests = sorted(p["subject_id"] for p in inside["participants"] if p["kind"] == "guest")
    assert guests == sorted([first_id, second_id])


async def test_an_expired_invitation_ends_its_guests_inside_and_waiting(
    app, browsers, make_client, sockets
):
    host = await browsers("requester")
    room = await create_room(host)
    h = await sockets(host)
    await h.ok("room:join", {"room_id": room["id"]})
    inv, token = await link(host, room["id"])
    inside, inside_id = await guest_with(make_client, token, "Jeanne Petit")
    gi = await sockets(inside)
    joined = await admitted(h, gi, inside_id, room["id"])
    waiting, waiting_id = await guest_with(make_client, token, "Paul Petit")
    gw = await sockets(waiting)
    assert (await gw.ok("room:join", {"room_id": room["id"]}))["status"] == "lobby"

    await expire(app, inv["id"])
    for g in (gi, gw):
        ended = await g.wait_for("session:ended", timeout=30)
        assert ended == {"reason": "invitation_expired", "room_id": room["id"]}
        await g.disconnected.wait()
    left = await h.wait_for("participant:left", timeout=30)
    assert left == {"participant_id": joined["participant_id"], "reason": "removed"}
    await h.wait_for("lobby:left", lambda d: d["guest_id"] == waiting_id, timeout=30)

    for guest in (inside, waiting):
        r = await guest.get(f"/api/v1/rooms/{room['id']}")
        assert r.status == 401 and r.content_type == "application/problem+json"
        with pytest.raises(socketio.exceptions.ConnectionError):
            await open_socket(guest)
    r = await inside.post(f"/api/v1/invitations/{token}/accept", json={"name": "Jeanne"})
    assert r.status in (404, 410)  # its signature covered the expiry we moved: dead either way
    r = await h.ok("lobby:list")
    assert r["lobby"] == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_an_expired_invitation_refuses_its_guest_before_the_sweep(
    app, browsers, make_client, sockets, monkeypatch
):
    """Between the expiry and the periodic sweep, nothing lets the guest back in either."""
    # No sweep from now on (the one already waiting runs long before the expiry below; a sweep
    # after it would end the guest at once, on every node).
    monkeypatch.setattr(Live.of(app).config, "guest_check_seconds", 3600.0)
    host = await browsers("requester")
    room = await create_room(host)
    h = await sockets(host)
    await h.ok("room:join", {"room_id": room["id"]})
    inv, token = await link(host, room["id"])
    guest, guest_id = await guest_with(make_client, token, "Jeanne Petit")
    g = await sockets(guest)
    await admitted(h, g, guest_id, room["id"])
    await g.ok("room:leave")
    await expire(app, inv["id"])

    r = await guest.get(f"/api/v1/rooms/{room['id']}")
    assert r.status == 403 and r.content_type == "application/problem+json"
    assert (await r.json())["code"] == "invitation_expired"
    r = await guest.get(f"/api/v1/rooms/{room['id']}/attachments")
    assert r.status == 403 and (await r.json())["code"] == "invitation_expired"
    ack = await g.call("room:join", {"room_id": room["id"]})
    assert ack["error"]["code"] == "invitation_expired"
    assert (await h.ok("lobby:list"))["lobby"] == []
    with pytest.raises(socketio.exceptions.ConnectionError):
        await open_socket(guest)


async def test_a_withdrawn_multi_use_invitation_ends_all_its_guests(browsers, make_client, sockets):
    host = await browsers("requester")
    room = await create_room(host)
    h = await sockets(host)
    await h.ok("room:join", {"room_id": room["id"]})
    inv, token = await link(host, room["id"])
    a, a_id = await guest_with(make_client, token, "Jeanne Petit")
    ga = await sockets(a)
    await admitted(h, ga, a_id, room["id"])
    b, _ = await guest_with(make_client, token, "Paul Petit")
    gb = await sockets(b)
    assert (await gb.ok("room:join", {"room_id": room["id"]}))["status"] == "lobby"

    r = await host.post(f"/api/v1/rooms/{room['id']}/invitations/{inv['id']}/revoke")
    assert r.status == 200
    for g in (ga, gb):
        ended = await g.wait_for("session:ended", timeout=30)
        assert ended["reason"] == "invitation_revoked"
        await g.disconnected.wait()
    for guest in (a, b):
        assert (await guest.get(f"/api/v1/rooms/{room['id']}")).status == 401
