"""A room opened on a dossier: the dossier's people may enter it, strangers may not, a room
cannot name a dossier its creator may not see, and dossier changes reach connected users live."""

from __future__ import annotations

import pytest

from tests.dossier.dossier_fixtures import *  # noqa: F403
from tests.dossier.dossier_fixtures import CARDIO_EMAIL, ENDO, TX_REQUESTER, draft_ready_to_sign
from tests.support.live import open_socket


async def submitted_dossier(demo, req):
    d = await draft_ready_to_sign(req, str(demo["offers"][ENDO].id))
    r = await req.post(
        f"/api/v1/dossiers/{d['id']}/forms/requester/sign", json={"values": TX_REQUESTER}
    )
    assert r.status == 200, await r.text()
    return d


async def test_the_dossiers_expert_enters_its_room_and_a_stranger_does_not(demo, as_user):
    u = demo["users"]
    req, exp = await as_user(u["requester"]), await as_user(u["expert"])
    stranger = await as_user(demo["everyone"][CARDIO_EMAIL])
    d = await submitted_dossier(demo, req)
    r = await req.post(
        "/api/v1/rooms", json={"kind": "expertise", "title": "Avis en visio", "dossier_id": d["id"]}
    )
    assert r.status == 201, await r.text()
    room = await r.json()
    r = await exp.get(f"/api/v1/rooms/{room['id']}")
    assert r.status == 200
    assert (await r.json())["my_role"] == "participant"
    listed = {x["id"] for x in await (await exp.get("/api/v1/rooms")).json()}
    assert room["id"] in listed
    r = await stranger.get(f"/api/v1/rooms/{room['id']}")
    assert r.status == 404
    listed = {x["id"] for x in await (await stranger.get("/api/v1/rooms")).json()}
    assert room["id"] not in listed


async def test_a_room_cannot_name_a_dossier_its_creator_may_not_see(demo, as_user):
    u = demo["users"]
    req = await as_user(u["requester"])
    stranger = await as_user(demo["everyone"][CARDIO_EMAIL])
    d = await submitted_dossier(demo, req)
    r = await stranger.post(
        "/api/v1/rooms", json={"kind": "expertise", "title": "x", "dossier_id": d["id"]}
    )
    assert r.status == 404
    assert (await r.json())["code"] == "dossier_not_found"
    r = await stranger.get("/api/v1/rooms")
    assert all(x["dossier_id"] != d["id"] for x in await r.json())


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_the_requester_sees_live_that_the_expert_opened_the_dossier(demo, as_user):
    u = demo["users"]
    req, exp = await as_user(u["requester"]), await as_user(u["expert"])
    d = await submitted_dossier(demo, req)
    sock = await open_socket(req)
    try:
        r = await exp.get(f"/api/v1/dossiers/{d['id']}")
        assert r.status == 200
        ev = await sock.wait_for("dossier:updated", lambda p: p["change"] == "read")
        assert ev["dossier_id"] == d["id"]
    finally:
        await sock.close()
