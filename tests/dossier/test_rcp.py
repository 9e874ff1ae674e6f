"""RCP (e-Staff) meetings (issue 16 item 3): an agenda of dossiers, invitations with an .ics
(real SMTP sink), the lead moving through the agenda live (real Socket.IO), the invitees
reading the agenda's dossiers through an audited ``rcp`` grant, and a « fiche RCP » signed
(PAdES) and filed into each dossier discussed. Refusals are problem+json."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import icalendar
import pytest
from sqlalchemy import select

from core.accounts import Role, create_user
from core.audit import AuditEntry
from core.context import DB
from core.db import utcnow
from dossier.report.signing import verify_pdf
from tests.conftest import make_settings
from tests.dossier.dossier_fixtures import *  # noqa: F403
from tests.dossier.dossier_fixtures import CARDIO_EMAIL, ENDO, draft_ready_to_sign
from tests.support.live import open_socket


@pytest.fixture
def settings(database_url, tmp_path, smtp):
    return make_settings(database_url, tmp_path / "data", smtp_host=smtp.host, smtp_port=smtp.port)


async def _stranger(app) -> Any:
    async with app[DB].write() as uow:
        return await create_user(
            uow.session,
            email="inconnu@example.org",
            password=None,
            role=Role.practitioner,
            first_name="Luc",
            last_name="Inconnu",
            title="Dr",
        )


def _ics_of(smtp, address: str) -> list[icalendar.Calendar]:
    out = []
    for m in smtp.to(address):
        for part in m.iter_attachments():
            if part.get_content_type() == "text/calendar":
                out.append(icalendar.Calendar.from_ical(part.get_payload(decode=True)))
    return out


async def _wait_ics(smtp, address: str, count: int) -> list[icalendar.Calendar]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while loop.time() < deadline:
        got = _ics_of(smtp, address)
        if len(got) >= count:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {count} .ics to {address}")


async def _plan(demo, as_user) -> tuple[Any, Any, list[dict], dict]:
    u = demo["users"]
    lead = await as_user(u["requester"])
    offer = str(demo["offers"][ENDO].id)
    d1 = await draft_ready_to_sign(lead, offer)
    d2 = await draft_ready_to_sign(lead, offer, first_name="Marc", birth_date="1961-07-02")
    cardio = demo["everyone"][CARDIO_EMAIL]
    at = (utcnow() + timedelta(days=2)).replace(second=0, microsecond=0)
    r = await lead.post(
        "/api/v1/rcp-meetings",
        json={
            "title": "RCP d'endocrinologie",
            "scheduled_at": at.isoformat(),
            "duration_minutes": 90,
            "invitee_ids": [str(cardio.id)],
            "agenda": [
                {"dossier_id": d1["id"], "question": "Faut-il opérer ?"},
                {"dossier_id": d2["id"], "question": "Quel traitement ?"},
            ],
        },
    )
    assert r.status == 201, await r.text()
    m = await r.json()
    return lead, await as_user(cardio), [d1, d2], m


async def test_an_rcp_of_two_dossiers_ends_with_a_signed_fiche_filed_in_each(
    demo, as_user, app, smtp, settings
):
    lead, cardio, (d1, d2), m = await _plan(demo, as_user)
    assert m["my_role"] == "lead" and m["status_label"] == "RCP planifiée"
    assert [i["question"] for i in m["items"]] == ["Faut-il opérer ?", "Quel traitement ?"]
    # The invitee got the .ics (no patient data) and reads the agenda with its patients.
    (cal,) = await _wait_ics(smtp, CARDIO_EMAIL, 1)
    (ev,) = cal.walk("VEVENT")
    assert ev["UID"] == f"rcp-{m['id']}@consilium" and m["room_id"] in str(ev["LOCATION"])
    assert "DUPONT" not in cal.to_ical().decode().upper()
    seen = await (await cardio.get(f"/api/v1/rcp-meetings/{m['id']}")).json()
    assert seen["my_role"] == "invitee"
    assert [i["patient"] for i in seen["items"]] == [
        "DUPONT Élise (12/03/1950)",
        "DUPONT Marc (02/07/1961)",
    ]
    # ... and may read the dossiers, audited; the room lists them as a member.
    r = await cardio.get(f"/api/v1/dossiers/{d1['id']}")
    assert r.status == 200, await r.text()
    assert (await cardio.get(f"/api/v1/rooms/{m['room_id']}")).status == 200
    mine = await (await cardio.get("/api/v1/rcp-meetings")).json()
    assert [x["id"] for x in mine] == [m["id"]] and mine[0]["items"] == 2

    # Live: the invitee in the room sees the current dossier change.
    sock = await open_socket(cardio)
    try:
        ack = await sock.ok("room:join", {"room_id": m["room_id"]})
        assert ack["rcp"]["item_id"] is None
        r = await lead.post(f"/api/v1/rcp-meetings/{m['id']}/current", json={})
        assert r.status == 200, await r.text()
        cur = await sock.wait_for("rcp:current", timeout=20)
        assert cur["item_id"] == m["items"][0]["id"] and cur["number"] == d1["number"]
        assert "patient" not in cur
        r = await lead.post(f"/api/v1/rcp-meetings/{m['id']}/current", json={})
        await sock.wait_for(
            "rcp:current", lambda c: c["item_id"] == m["items"][1]["id"], timeout=20
        )
    finally:
        await sock.close()
    # A client coming back gets the current dossier in its join state.
    sock = await open_socket(cardio)
    try:
        ack = await sock.ok("room:join", {"room_id": m["room_id"]})
        assert ack["rcp"]["item_id"] == m["items"][1]["id"] and ack["rcp"]["position"] == 2
    finally:
        await sock.close()

    # The fiche of each dossier, signed by the lead, lands in that dossier.
    for item, d in zip(m["items"], (d1, d2), strict=True):
        r = await lead.put(
            f"/api/v1/rcp-items/{item['id']}/fiche",
            json={
                "question": item["question"],
                "proposal": f"Avis de la RCP pour {d['number']}",
                "present": ["Dr Claire Martin", "Dr Thomas Roux"],
            },
        )
        assert r.status == 200, await r.text()
        r = await lead.post(f"/api/v1/rcp-items/{item['id']}/sign")
        assert r.status == 200, await r.text()
        signed = await r.json()
        assert signed["status"] == "signed" and signed["signed_by"]["name"] == "Dr Claire Martin"
        listing = await (await lead.get(f"/api/v1/dossiers/{d['id']}/documents")).json()
        docs = [doc for c in listing["categories"] for doc in c["documents"]]
        (doc,) = [x for x in docs if x["id"] == signed["document_id"]]
        assert doc["filename"].startswith("fiche-rcp ")
        pdf = await (
            await lead.get(f"/api/v1/dossiers/{d['id']}/documents/{doc['id']}/content")
        ).read()
        v = await verify_pdf(settings.data_dir, pdf)
        assert v.ok
        # The invitee reads it too (the grant of the RCP).
        r = await cardio.get(f"/api/v1/dossiers/{d['id']}/documents/{doc['id']}/content")
        assert r.status == 200
    done = await (await lead.get(f"/api/v1/rcp-meetings/{m['id']}")).json()
    assert [i["status_label"] for i in done["items"]] == ["Fiche RCP signée"] * 2
    async with app[DB].read() as s:
        actions = {
            (a.action, a.object_id)
            for a in (await s.execute(select(AuditEntry))).scalars()
            if a.action.startswith("dossier.rcp") or a.action == "document.add"
        }
    for d in (d1, d2):
        assert ("dossier.rcp.grant", d["id"]) in actions
        assert ("dossier.rcp.fiche_signed", d["id"]) in actions
        assert ("dossier.rcp.read", d["id"]) in actions


async def test_only_the_lead_conducts_and_signs_and_strangers_see_nothing(demo, as_user, app):
    lead, cardio, (d1, _), m = await _plan(demo, as_user)
    item = m["items"][0]["id"]
    for r in (
        await cardio.post(f"/api/v1/rcp-meetings/{m['id']}/current", json={}),
        await cardio.put(
            f"/api/v1/rcp-items/{item}/fiche", json={"question": "q", "proposal": "p"}
        ),
        await cardio.post(f"/api/v1/rcp-items/{item}/sign"),
        await cardio.post(f"/api/v1/rcp-meetings/{m['id']}/cancel", json={}),
    ):
        assert r.status == 403 and r.content_type == "application/problem+json"
        assert (await r.json())["code"] == "rcp_lead_only"
    # A stranger learns nothing, and may not put someone else's dossier on an agenda.
    stranger = await as_user(await _stranger(app))
    r = await stranger.get(f"/api/v1/rcp-meetings/{m['id']}")
    assert r.status == 404 and (await r.json())["code"] == "rcp_not_found"
    assert await (await stranger.get("/api/v1/rcp-meetings")).json() == []
    at = (utcnow() + timedelta(days=1)).isoformat()
    r = await stranger.post(
        "/api/v1/rcp-meetings",
        json={"title": "x", "scheduled_at": at, "agenda": [{"dossier_id": d1["id"]}]},
    )
    assert r.status == 404 and r.content_type == "application/problem+json"
    # The invitee reads the dossier but may not put it on an agenda (a reader, not a side).
    r = await cardio.post(
        "/api/v1/rcp-meetings",
        json={"title": "x", "scheduled_at": at, "agenda": [{"dossier_id": d1["id"]}]},
    )
    assert r.status == 403 and (await r.json())["code"] == "rcp_not_allowed"
    # Bad input: past, naive time, empty agenda, duplicate dossier, a secretary as lead.
    past = (utcnow() - timedelta(hours=1)).isoformat()
    sec = demo["users"]["secretary"]
    one = [{"dossier_id": d1["id"]}]
    for body, code in (
        ({"title": "x", "scheduled_at": past, "agenda": one}, "invalid_schedule"),
        ({"title": "x", "scheduled_at": "2030-01-01T10:00:00", "agenda": one}, None),
        ({"title": "x", "scheduled_at": at, "agenda": []}, None),
        ({"title": "x", "scheduled_at": at, "agenda": one * 2}, "duplicate_dossier"),
        (
            {"title": "x", "scheduled_at": at, "lead_id": str(sec.id), "agenda": one},
            "lead_not_practitioner",
        ),
    ):
        r = await lead.post("/api/v1/rcp-meetings", json=body)
        assert r.status == 422 and r.content_type == "application/problem+json", await r.text()
        if code:
            assert (await r.json())["code"] == code
    # Signing needs a proposal; a signed fiche is final; the agenda has an end.
    r = await lead.post(f"/api/v1/rcp-items/{item}/sign")
    assert r.status == 422 and (await r.json())["code"] == "fiche_incomplete"
    await lead.put(f"/api/v1/rcp-items/{item}/fiche", json={"question": "q", "proposal": "p"})
    assert (await lead.post(f"/api/v1/rcp-items/{item}/sign")).status == 200
    r = await lead.post(f"/api/v1/rcp-items/{item}/sign")
    assert r.status == 409 and (await r.json())["code"] == "fiche_signed"
    for _ in range(2):
        assert (await lead.post(f"/api/v1/rcp-meetings/{m['id']}/current", json={})).status == 200
    r = await lead.post(f"/api/v1/rcp-meetings/{m['id']}/current", json={})
    assert r.status == 409 and (await r.json())["code"] == "rcp_end"


async def test_rescheduling_and_cancelling_tell_everyone_and_cancel_withdraws_reads(
    demo, as_user, app, smtp
):
    lead, cardio, (d1, _), m = await _plan(demo, as_user)
    await _wait_ics(smtp, CARDIO_EMAIL, 1)
    later = (utcnow() + timedelta(days=5)).replace(second=0, microsecond=0)
    r = await lead.post(
        f"/api/v1/rcp-meetings/{m['id']}/reschedule", json={"scheduled_at": later.isoformat()}
    )
    assert r.status == 200, await r.text()
    cals = await _wait_ics(smtp, CARDIO_EMAIL, 2)
    (ev,) = cals[-1].walk("VEVENT")
    assert ev.decoded("dtstart") == later and int(ev["SEQUENCE"]) == 1
    r = await lead.post(f"/api/v1/rcp-meetings/{m['id']}/cancel", json={"reason": "Congrès"})
    assert r.status == 200 and (await r.json())["status_label"] == "RCP annulée"
    cals = await _wait_ics(smtp, CARDIO_EMAIL, 3)
    assert cals[-1]["METHOD"] == "CANCEL"
    # The invitee's read of the dossier ends with the meeting.
    assert (await cardio.get(f"/api/v1/dossiers/{d1['id']}")).status == 404
    r = await lead.post(f"/api/v1/rcp-meetings/{m['id']}/current", json={})
    assert r.status == 409 and (await r.json())["code"] == "illegal_state"
