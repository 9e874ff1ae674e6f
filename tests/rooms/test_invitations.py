from __future__ import annotations

import re
import secrets
import uuid
from datetime import timedelta

import pytest

from core.context import DB, SETTINGS
from core.db import utcnow
from rooms.invitations import link_of
from rooms.models import Invitation
from tests.conftest import make_settings
from tests.rooms.conftest import create_room


@pytest.fixture
def settings(database_url, tmp_path, smtp):
    return make_settings(database_url, tmp_path / "data", smtp_host=smtp.host, smtp_port=smtp.port)


def token_from(link: str) -> str:
    return link.rsplit("/join/", 1)[1]


async def invite(host, room_id, **kw):
    body = {"name": "Mme Jeanne Petit", "email": "jeanne.petit@example.org", **kw}
    r = await host.post(f"/api/v1/rooms/{room_id}/invitations", json=body)
    assert r.status == 201, await r.text()
    return await r.json()


async def test_invited_guest_gets_mail_waits_in_lobby_is_admitted_and_appears(
    browsers, make_client, sockets, smtp
):
    host = await browsers("requester")
    room = await create_room(host, title="Téléconsultation", scheduled_at="2026-11-26T13:30:00Z")
    host_sock = await sockets(host)
    await host_sock.ok("room:join", {"room_id": room["id"]})
    inv = await invite(host, room["id"], mobile="+33 6 12 34 56 78", single_use=True)
    assert inv["delivery"] == {"email": "sent", "sms": "outbox"}

    [mail] = await smtp.wait_for("jeanne.petit@example.org")
    text = smtp.text_of(mail)
    # The date and time in Paris (13:30 UTC is 14 h 30 in winter), in French.
    assert "jeudi 26 novembre 2026 à 14 h 30" in text
    assert "Dr Claire Martin vous invite à une téléconsultation" in text
    link = re.search(r"https?://\S+/join/\S+", text).group(0)
    token = token_from(link)

    guest = await make_client()
    page = await guest.get(f"/join/{token}")
    assert page.status == 200 and page.content_type == "text/html"
    r = await guest.get(f"/api/v1/invitations/{token}")
    assert r.status == 200
    check = await r.json()
    assert check["room_id"] == room["id"] and check["host"] == "Dr Claire Martin"
    assert {"platform": "iphone", "browser": "Safari"} in check["supported_browsers"]
    r = await guest.post(f"/api/v1/invitations/{token}/accept", json={"name": "Jeanne Petit"})
    assert r.status == 200, await r.text()
    accepted = await r.json()
    assert accepted["status"] == "lobby"

    g = await sockets(guest)
    ack = await g.ok("room:join", {"room_id": room["id"]})
    assert ack["status"] == "lobby" and "participants" not in ack
    arrived = await host_sock.wait_for("lobby:arrived")
    assert arrived["name"] == "Jeanne Petit"
    assert arrived["guest_id"] == accepted["guest_id"]
    # Not yet inside: no chat, no presence.
    nope = await g.call("chat:send", {"id": "5d1f3c6e-4f0e-4a63-9a57-0b3b1f0b9f10", "text": "?"})
    assert nope["error"]["code"] == "not_in_room"

    await host_sock.ok("room:admit", {"guest_id": accepted["guest_id"]})
    await g.wait_for("lobby:admitted")
    joined = await g.ok("room:join", {"room_id": room["id"]})
    assert joined["status"] == "joined" and joined["role"] == "guest"
    assert sorted(p["name"] for p in joined["participants"]) == ["Dr Claire Martin", "Jeanne Petit"]
    seen = await host_sock.wait_for("participant:joined")
    assert seen["participant"]["role"] == "guest"

    # Single use: the link does not open a second session.
    other = await make_client()
    r = await other.post(f"/api/v1/invitations/{token}/accept", json={"name": "Intrus"})
    assert r.status == 410 and (await r.json())["code"] == "invitation_used"
    # A guest may not enter another room.
    room2 = await create_room(host, title="Autre")
    g2 = await sockets(guest)
    ack = await g2.call("room:join", {"room_id": room2["id"]})
    assert ack["error"]["code"] == "room_not_found"


async def test_refused_revoked_expired_and_forged_tokens_are_refused(
    browsers, make_client, sockets, smtp, app
):
    host = await browsers("requester")
    room = await create_room(host)
    host_sock = await sockets(host)
    await host_sock.ok("room:join", {"room_id": room["id"]})

    # Refused from the lobby: the guest is told, disconnected, and the link is dead.
    inv = await invite(host, room["id"])
    token = token_from(inv["link"])
    guest = await make_client()
    r = await guest.post(f"/api/v1/invitations/{token}/accept", json={"name": "Jeanne"})
    gid = (await r.json())["guest_id"]
    g = await sockets(guest)
    await g.ok("room:join", {"room_id": room["id"]})
    await host_sock.wait_for("lobby:arrived")
    await host_sock.ok("room:refuse", {"guest_id": gid})
    await g.wait_for("lobby:refused")
    await g.disconnected.wait()
    r = await guest.post(f"/api/v1/invitations/{token}/accept", json={"name": "Jeanne"})
    assert r.status == 410 and (await r.json())["code"] == "invitation_revoked"

    # Revoked by the host.
    inv2 = await invite(host, room["id"], name="M. Paul Durand", email="paul@example.org")
    r = await host.post(f"/api/v1/rooms/{room['id']}/invitations/{inv2['id']}/revoke")
    assert r.status == 200 and (await r.json())["status"] == "revoked"
    t2 = token_from(inv2["link"])
    r = await guest.get(f"/api/v1/invitations/{t2}")
    assert r.status == 410 and (await r.json())["code"] == "invitation_revoked"
    page = await guest.get(f"/join/{t2}")
    assert page.status == 410 and page.content_type == "text/html"
    assert "Ce lien a été retiré" in await page.text()

    # Expired.
    async with app[DB].write() as uow:
        row = Invitation(
            room_id=uuid.UUID(room["id"]),
            name="Ancien",
            email=None,
            mobile="+33600000009",
            token_id=secrets.token_hex(16),
            expires_at=(utcnow() - timedelta(minutes=1)).replace(microsecond=0),
            created_by=uuid.UUID(room["owner_id"]),
        )
        uow.session.add(row)
    t3 = token_from(link_of(app[SETTINGS], row))
    r = await guest.post(f"/api/v1/invitations/{t3}/accept", json={"name": "Ancien"})
    assert r.status == 410 and (await r.json())["code"] == "invitation_expired"
    page = await guest.get(f"/join/{t3}")
    assert page.status == 410 and "expiré" in await page.text()

    # Forged or mangled.
    forged = token[:-2] + ("yy" if token.endswith("xx") else "xx")  # a changed signature
    for bad in (forged, "nonsense", "a" * 32 + ".zzz", "x" * 500):
        r = await guest.get(f"/api/v1/invitations/{bad}")
        assert r.status == 404 and (await r.json())["code"] == "invitation_invalid"
        page = await guest.get(f"/join/{bad}")
        assert page.status == 404 and "Lien invalide" in await page.text()

    # Withdrawn while the guest is inside: removed, and the way back is closed.
    inv4 = await invite(host, room["id"], name="Mme Lune", email="lune@example.org")
    late = await make_client()
    r = await late.post(
        f"/api/v1/invitations/{token_from(inv4['link'])}/accept", json={"name": "Lune"}
    )
    assert r.status == 200
    s4 = await sockets(late)
    await s4.ok("room:join", {"room_id": room["id"]})
    await host_sock.ok("room:admit", {"guest_id": (await r.json())["guest_id"]})
    await s4.wait_for("lobby:admitted")
    await s4.ok("room:join", {"room_id": room["id"]})
    await host.post(f"/api/v1/rooms/{room['id']}/invitations/{inv4['id']}/revoke")
    ended = await s4.wait_for("session:ended")
    assert ended == {"reason": "invitation_revoked", "room_id": room["id"]}
    await s4.disconnected.wait()
    assert (await late.get(f"/api/v1/rooms/{room['id']}")).status == 401  # session ended

    # Listing shows each invitation's state.
    r = await host.get(f"/api/v1/rooms/{room['id']}/invitations")
    assert sorted(i["status"] for i in await r.json()) == [
        "expired",
        "revoked",
        "revoked",
        "revoked",
    ]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_hammering_invitation_links_is_throttled(make_client, monkeypatch):
    import rooms.api

    monkeypatch.setattr(rooms.api, "INVITE_TRIES_PER_MINUTE", 5)
    anon = await make_client()
    codes = [(await anon.get(f"/api/v1/invitations/{'a' * 32}.x{i}")).status for i in range(7)]
    assert codes == [404] * 5 + [429] * 2
