from __future__ import annotations

import uuid

import pytest

from tests.rooms.conftest import create_room


async def test_create_list_with_live_occupancy_show_close(browsers, sockets, users):
    host = await browsers("requester")
    room = await create_room(
        host, title="Téléconsultation Mme Petit", scheduled_at="2026-11-26T13:30:00Z"
    )
    assert room["my_role"] == "host" and room["status"] == "open" and room["capacity"] == 2
    assert room["occupancy"] == {"count": 0, "participants": []}
    sock = await sockets(host)
    await sock.ok("room:join", {"room_id": room["id"]})

    r = await host.get("/api/v1/rooms")
    assert r.status == 200
    [listed] = await r.json()
    assert listed["id"] == room["id"]
    # Who is inside, as the guide shows before entering.
    assert listed["occupancy"] == {
        "count": 1,
        "participants": [{"name": "Dr Claire Martin", "role": "host", "connected": True}],
    }
    r = await host.post(f"/api/v1/rooms/{room['id']}/close")
    assert r.status == 200
    assert (await r.json())["status"] == "closed"
    await sock.wait_for("room:ended")
    r = await host.get("/api/v1/rooms")
    assert await r.json() == []
    r = await host.get("/api/v1/rooms?include_closed=true")
    assert [x["id"] for x in await r.json()] == [room["id"]]


async def test_another_practitioner_cannot_see_or_close_my_room(browsers, users):
    host = await browsers("requester")
    room = await create_room(host)
    other = await browsers("expert")
    r = await other.get(f"/api/v1/rooms/{room['id']}")
    assert r.status == 404
    assert (await r.json())["code"] == "room_not_found"
    r = await other.post(f"/api/v1/rooms/{room['id']}/close")
    assert r.status == 404
    r = await other.post(
        f"/api/v1/rooms/{room['id']}/invitations", json={"name": "X", "email": "x@example.org"}
    )
    assert r.status == 404
    assert await (await other.get("/api/v1/rooms")).json() == []
    # A participant (not a host) sees it but may not close it.
    await host.post(
        f"/api/v1/rooms/{room['id']}/members",
        json={"user_id": str(users["expert"].id), "role": "participant"},
    )
    r = await other.get(f"/api/v1/rooms/{room['id']}")
    assert r.status == 200 and (await r.json())["my_role"] == "participant"
    r = await other.post(f"/api/v1/rooms/{room['id']}/close")
    assert r.status == 403
    assert (await r.json())["code"] == "host_required"
    # The secretary acting for the owner manages the room.
    sec = await browsers("secretary")
    r = await sec.get(f"/api/v1/rooms/{room['id']}")
    assert (await r.json())["my_role"] == "host"
    # Unknown room, wrong ids, anonymous caller.
    assert (await host.get(f"/api/v1/rooms/{uuid.uuid4()}")).status == 404
    assert (await host.get("/api/v1/rooms/not-a-uuid")).status == 404
    host.sign_out()
    assert (await host.get("/api/v1/rooms")).status == 401


async def test_added_host_can_close_and_actions_are_audited(browsers, users, app):
    host = await browsers("requester")
    room = await create_room(host, kind="estaff", title="RCP")
    r = await host.post(
        f"/api/v1/rooms/{room['id']}/members", json={"user_id": str(users["expert"].id)}
    )
    assert r.status == 201
    r = await host.get(f"/api/v1/rooms/{room['id']}/members")
    assert [(m["name"], m["role"], m["owner"]) for m in await r.json()] == [
        ("Dr Claire Martin", "host", True),
        ("Dr Karim Benali", "host", False),
    ]
    expert = await browsers("expert")
    r = await expert.post(f"/api/v1/rooms/{room['id']}/close")
    assert r.status == 200
    admin = await browsers("admin")
    r = await admin.get(f"/api/v1/audit?object_id={room['id']}")
    actions = sorted(a["action"] for a in await r.json())
    assert actions == ["room.close", "room.create", "room.member_add"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_bad_room_input_gives_problems(browsers):
    host = await browsers("requester")
    for body in (
        {"kind": "party", "title": "x"},
        {"kind": "estaff", "title": ""},
        {"kind": "estaff", "title": "x", "capacity": 500},
        {"kind": "estaff", "title": "x", "scheduled_at": "2026-11-26T13:30:00"},
    ):
        r = await host.post("/api/v1/rooms", json=body)
        assert r.status == 422, body
        assert r.content_type == "application/problem+json"
    spec = await (await host.get("/api/v1/openapi.json")).json()
    for path in ("/api/v1/rooms", "/api/v1/invitations/{token}/accept"):
        assert path in spec["paths"]
