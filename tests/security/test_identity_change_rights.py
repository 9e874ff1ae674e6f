"""Who changes a patient's identity (issue 12, item 8): an admin rewrote a birth date and a
receiving expert changed the patient's contacts. The identity belongs to the requester side
(the creator practitioner, the requesters of the patient's dossiers, and the secretaries they
currently delegate to); the others get 403 ``identity_change_not_allowed`` (404 when they
cannot see the patient). A strict trait changes only with a reason, kept in the audit log."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from core.accounts import User
from core.audit import AuditEntry
from core.context import DB
from dossier.models import Patient
from tests.dossier.dossier_fixtures import *  # noqa: F403
from tests.dossier.dossier_fixtures import CARDIO_EMAIL, ENDO, TX_REQUESTER, draft_ready_to_sign

BIRTH = "1950-03-12"


async def test_only_the_requester_side_changes_an_identity(app, demo, as_user):
    u = demo["users"]
    req = await as_user(u["requester"])
    sec = await as_user(u["secretary"])
    expert = await as_user(u["expert"])
    adm = await as_user(u["admin"])
    outsider = await as_user(demo["everyone"][CARDIO_EMAIL])
    r = await adm.post(
        "/api/v1/users",
        json={
            "email": "expert.secretary@demo.consilium.fr",
            "password": "Un mot de passe assez long 42!",
            "role": "secretary",
            "first_name": "Lina",
            "last_name": "Morel",
            "delegates_for": [str(u["expert"].id)],
        },
    )
    assert r.status == 201, await r.text()
    ex_sec_id = uuid.UUID((await r.json())["id"])
    async with app[DB].read() as s:
        ex_sec = await as_user(await s.get(User, ex_sec_id))

    d = await draft_ready_to_sign(req, str(demo["offers"][ENDO].id), birth_date=BIRTH)
    url = f"/api/v1/dossiers/{d['id']}"
    r = await req.post(f"{url}/forms/requester/sign", json={"values": TX_REQUESTER})
    assert r.status == 200, await r.text()
    pid = d["patient"]["id"]
    purl = f"/api/v1/patients/{pid}"
    lookup = {"number": d["number"], "birth_date": BIRTH}
    r = await outsider.post("/api/v1/dossiers/lookup", json=lookup)
    assert r.status == 200, await r.text()

    contacts = {"contacts": [{"kind": "mobile", "value": "0612345678"}]}
    birth = {"birth_date": "1951-03-12", "reason": "Erreur de saisie"}
    for who, c, expected in (
        ("admin", adm, 403),
        ("expert", expert, 403),
        ("expert's secretary", ex_sec, 403),
        ("reader by number", outsider, 404),
    ):
        for change in (contacts, birth):
            r = await c.patch(purl, json=change)
            assert r.status == expected, (who, change, await r.text())
            assert r.content_type == "application/problem+json"
            if expected == 403:
                assert (await r.json())["code"] == "identity_change_not_allowed", who
    async with app[DB].read() as s:
        p = await s.get(Patient, uuid.UUID(pid))
        assert str(p.birth_date) == BIRTH and not p.contacts

    # The requester side: contacts freely, strict traits with a reason.
    r = await sec.patch(purl, json=contacts)
    assert r.status == 200, await r.text()
    r = await req.patch(purl, json={"birth_date": "1951-03-12"})
    assert r.status == 422 and (await r.json())["code"] == "reason_required"
    r = await sec.patch(purl, json={"birth_name": "Dupond", "reason": "  "})
    assert r.status == 422 and (await r.json())["code"] == "reason_required"
    r = await req.patch(purl, json=birth)
    assert r.status == 200, await r.text()
    assert (await r.json())["birth_date"] == "1951-03-12"
    async with app[DB].read() as s:
        rows = await s.execute(
            select(AuditEntry).where(
                AuditEntry.action == "patient.update", AuditEntry.object_id == pid
            )
        )
        entries = rows.scalars().all()
    ok = [e for e in entries if e.outcome == "success"]
    by_reason = {e.details.get("reason"): e.details["fields"] for e in ok}
    assert by_reason == {None: ["contacts"], "Erreur de saisie": ["birth_date"]}
    denied = [e for e in entries if e.outcome == "denied"]
    assert {e.actor_id for e in denied} == {u["admin"].id, u["expert"].id, ex_sec_id}
