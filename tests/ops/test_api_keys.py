"""Another application (an appointment system) creates a room with its API key and lets a
patient in with an access token it minted, without a Consilium session; the ``consilium
api-key`` command makes, lists and revokes keys (run as a real process)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from sqlalchemy import select

from core.audit import AuditEntry
from core.context import DB
from ops import tokens
from tests.conftest import SECRET
from tests.support.live import Sock, base_url, cookie_header

CONSILIUM = str(Path(sys.executable).with_name("consilium"))


def cli(settings: Any, *args: str) -> str:
    env = {
        **os.environ,
        "CONSILIUM_DATABASE_URL": settings.database_url,
        "CONSILIUM_SECRET_KEY": SECRET,
        "CONSILIUM_DEV": "1",
        "CONSILIUM_DATA_DIR": str(settings.data_dir),
    }
    done = subprocess.run(
        [CONSILIUM, "api-key", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def basic(key_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def problem(r: Any, status: int, code: str) -> None:
    assert r.status == status, await r.text()
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert (await r.json())["code"] == code


async def test_an_application_creates_a_room_and_its_token_lets_a_patient_into_the_lobby(
    app: Any, settings: Any, client: Any, make_client: Any, users: Any
) -> None:
    out = cli(settings, "create", "--name", "Prise de RDV", "--user", users["requester"].email)
    key_id = out.split("API key: ")[1].split()[0]
    secret = out.split("API secret: ")[1].split()[0]
    assert key_id in cli(settings, "list")

    # server to server: the key itself, no cookie, no CSRF token
    r = await client.post(
        "/api/v1/server/rooms",
        json={"title": "Téléconsultation Mme Martin"},
        headers=basic(key_id, secret),
    )
    assert r.status == 201, await r.text()
    room = await r.json()
    assert room["owner_id"] == str(users["requester"].id)
    # or a short token with the room_create grant
    create_token = tokens.mint(key_id, secret, identity="rdv-app", room_create=True)
    r = await client.post(
        "/api/v1/server/rooms",
        json={"title": "Autre"},
        headers={"Authorization": f"Bearer {create_token}"},
    )
    assert r.status == 201, await r.text()

    # the practitioner is in the room
    host = await make_client()
    await host.sign_in_as(users["requester"].id)
    host_sock = await Sock(base_url(host), cookie_header(host)).connect()
    await host_sock.ok("room:join", {"room_id": room["id"]})

    # the patient's join link carries a token minted by the application
    join = tokens.mint(
        key_id, secret, identity="patient-4711", name="Mme Martin", room_join=True, room=room["id"]
    )
    patient = await make_client()
    r = await patient.post("/api/v1/access/join", json={"token": join, "room_id": room["id"]})
    assert r.status == 200, await r.text()
    entered = await r.json()
    assert entered["status"] == "lobby" and entered["name"] == "Mme Martin"
    sock = await Sock(base_url(patient), cookie_header(patient)).connect()
    ack = await sock.ok("room:join", {"room_id": room["id"]})
    assert ack["status"] == "lobby"
    arrived = await host_sock.wait_for("lobby:arrived", timeout=30)
    assert arrived["name"] == "Mme Martin"
    await host_sock.ok("room:admit", {"guest_id": arrived["guest_id"]})
    ack = await sock.ok("room:join", {"room_id": room["id"]})
    assert ack["status"] == "joined" and ack["role"] == "guest"
    await sock.close()
    await host_sock.close()

    # the browser link: a guest session and the room page
    browser = await make_client()
    r = await browser.get(f"/access?token={join}", allow_redirects=False)
    assert r.status == 303, await r.text()
    assert r.headers["Location"] == f"/app/rooms/{room['id']}"
    assert "consilium_session" in cookie_header(browser)


async def test_forged_expired_misdirected_and_revoked_tokens_are_refused_and_audited(
    app: Any, settings: Any, client: Any, users: Any
) -> None:
    out = cli(settings, "create", "--name", "DPI", "--user", users["requester"].email)
    key_id = out.split("API key: ")[1].split()[0]
    secret = out.split("API secret: ")[1].split()[0]
    r = await client.post(
        "/api/v1/server/rooms", json={"title": "Salle"}, headers=basic(key_id, secret)
    )
    room = await r.json()
    other_room = str(uuid.uuid4())

    def join_token(**kw: Any) -> str:
        return tokens.mint(
            key_id,
            kw.pop("secret", secret),
            identity="p1",
            name="P",
            room_join=True,
            room=kw.pop("room", room["id"]),
            **kw,
        )

    async def enter(token: str, room_id: str | None = None) -> Any:
        body: dict[str, Any] = {"token": token}
        if room_id:
            body["room_id"] = room_id
        return await client.post("/api/v1/access/join", json=body)

    await problem(
        await enter(join_token(secret="not-the-secret-of-this-key-0123456789")),
        401,
        "token_invalid",
    )
    now = int(time.time())
    expired = jwt.encode(
        {
            "iss": key_id,
            "sub": "p1",
            "iat": now - 900,
            "exp": now - 300,
            "grants": {"room_join": True, "room": room["id"]},
        },
        secret,
        algorithm="HS256",
    )
    await problem(await enter(expired), 401, "token_expired")
    await problem(await enter(join_token(), other_room), 403, "token_wrong_room")
    await problem(await enter(join_token(room=other_room)), 404, "room_not_found")
    no_grant = tokens.mint(key_id, secret, identity="p1", room=room["id"])
    await problem(await enter(no_grant), 403, "grant_missing")
    too_long = join_token(ttl=settings.api_token_max_ttl_seconds + 3600)
    await problem(await enter(too_long), 401, "token_invalid")
    none_alg = jwt.encode({"iss": key_id, "sub": "x", "exp": now + 60}, None, algorithm="none")
    await problem(await enter(none_alg), 401, "token_invalid")
    await problem(await enter("not.a.token"), 401, "token_invalid")
    await problem(
        await client.post(
            "/api/v1/server/rooms", json={"title": "x"}, headers=basic(key_id, "wrong")
        ),
        401,
        "api_key_invalid",
    )
    await problem(
        await client.post(
            "/api/v1/server/rooms",
            json={"title": "x"},
            headers={"Authorization": f"Bearer {join_token()}"},
        ),
        403,
        "grant_missing",
    )
    await problem(
        await client.post("/api/v1/server/rooms", json={"title": "x"}), 401, "api_key_required"
    )

    good = join_token()
    assert (await enter(good)).status == 200
    assert "Revoked" in cli(settings, "revoke", key_id)
    assert "revoked" in cli(settings, "list")
    await problem(await enter(good), 401, "api_key_revoked")
    await problem(
        await client.post(
            "/api/v1/server/rooms", json={"title": "x"}, headers=basic(key_id, secret)
        ),
        401,
        "api_key_revoked",
    )

    async with app[DB].read() as s:
        refused = (
            (await s.execute(select(AuditEntry).where(AuditEntry.action == "api_key.refused")))
            .scalars()
            .all()
        )
        made = await s.scalar(
            select(AuditEntry.id).where(
                AuditEntry.action == "api_key.revoke", AuditEntry.object_id == key_id
            )
        )
    codes = [r.details["code"] for r in refused]
    for code in ("token_invalid", "token_expired", "token_wrong_room", "api_key_revoked"):
        assert code in codes
    assert all(r.outcome == "failure" for r in refused)
    assert made is not None


async def test_api_keys_are_managed_by_administrators(client: Any, users: Any) -> None:
    await client.sign_in_as(users["expert"].id)
    r = await client.post(
        "/api/v1/api-keys", json={"name": "x", "user_email": users["expert"].email}
    )
    assert r.status == 403
    await client.sign_in_as(users["admin"].id)
    r = await client.post(
        "/api/v1/api-keys", json={"name": "Agenda", "user_email": users["expert"].email}
    )
    assert r.status == 201, await r.text()
    key = await r.json()
    assert key["secret"] and key["id"].startswith("CK")
    r = await client.get("/api/v1/api-keys")
    listed = await r.json()
    assert [k["id"] for k in listed] == [key["id"]] and "secret" not in listed[0]
    r = await client.delete(f"/api/v1/api-keys/{key['id']}")
    assert r.status == 204
    r = await client.delete("/api/v1/api-keys/CKNOPE")
    assert r.status == 404
