"""Invitations send e-mails and SMS outside: rate-limited per user and per room, one person
per invitation (security review, issue 12 item 12)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

import rooms.invitations
from core.context import DB
from rooms.models import Invitation
from tests.rooms.conftest import create_room


async def send(api, room_id, i, **kw):
    body = {"name": f"Patient {i}", "mobile": f"+3361234{i:04d}", **kw}
    return await api.post(f"/api/v1/rooms/{room_id}/invitations", json=body)


async def stored(app, room_id) -> int:
    async with app[DB].read() as s:
        q = select(func.count()).select_from(Invitation).where(Invitation.room_id == room_id)
        return (await s.execute(q)).scalar_one()


async def test_a_burst_of_invitations_from_one_user_is_stopped_at_ten_a_minute(app, browsers):
    host = await browsers("requester")
    room = await create_room(host)
    codes = [(await send(host, room["id"], i)).status for i in range(10)]
    assert codes == [201] * 10
    r = await send(host, room["id"], 10, email="patient10@example.org")
    assert r.status == 429 and r.content_type == "application/problem+json"
    assert (await r.json())["code"] == "rate_limited"
    assert r.headers["Retry-After"] == "60"
    assert await stored(app, uuid.UUID(room["id"])) == 10  # nothing created, nothing sent
    # Another room of the same user: the per-user limit holds there too.
    other = await create_room(host, title="Autre")
    assert (await send(host, other["id"], 11)).status == 429


async def test_a_room_gets_a_bounded_number_of_invitations_an_hour_whoever_sends(
    app, browsers, users, monkeypatch
):
    monkeypatch.setattr(rooms.invitations, "INVITES_PER_ROOM_PER_HOUR", 3)
    host = await browsers("requester")
    room = await create_room(host)
    r = await host.post(
        f"/api/v1/rooms/{room['id']}/members",
        json={"user_id": str(users["expert"].id), "role": "host"},
    )
    assert r.status == 201
    cohost = await browsers("expert")
    # Someone who is not a host does not use up the room's allowance.
    stranger = await browsers("admin")
    for i in range(5):
        assert (await send(stranger, room["id"], 100 + i)).status in (403, 404)
    assert [(await send(host, room["id"], i)).status for i in range(2)] == [201, 201]
    assert (await send(cohost, room["id"], 2)).status == 201
    r = await send(cohost, room["id"], 3)
    assert r.status == 429 and r.headers["Retry-After"] == "3600"
    assert (await r.json())["code"] == "rate_limited"
    assert await stored(app, uuid.UUID(room["id"])) == 3


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_an_invitation_goes_to_one_person(browsers):
    host = await browsers("requester")
    room = await create_room(host)
    for email in ("a@example.org, b@example.org", ["a@example.org", "b@example.org"]):
        r = await send(host, room["id"], 1, email=email)
        assert r.status == 422, await r.text()
    for mobile in ("+33612345678,+33612345679", ["+33612345678", "+33612345679"]):
        r = await send(host, room["id"], 1, mobile=mobile)
        assert r.status == 422, await r.text()
