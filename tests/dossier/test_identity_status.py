"""INS identities (RNIV): the status moves only as the national reference allows, on the
evidence each step needs, with a reason and a history of who and when; only a qualified
identity's INS leaves the requester side (dossier view of the experts, report PDF)."""

from __future__ import annotations

import pymupdf
import pytest
from sqlalchemy import select, update

from core.audit import AuditEntry
from core.context import DB
from dossier.identity.ins import InsOid, ins_with_key
from dossier.models import Patient
from tests.dossier.dossier_fixtures import *  # noqa: F403
from tests.dossier.dossier_fixtures import CARDIO_EMAIL, new_patient
from tests.support.documents import make_dossier

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
INS = ins_with_key("2500338185001")  # female, born March 1950, as the fixture's patient


async def move(c, pid: str, status: str, **kw):
    return await c.post(
        f"/api/v1/patients/{pid}/status", json={"status": status, "reason": "test", **kw}
    )


async def code_of(r) -> str:
    assert r.content_type == "application/problem+json", await r.text()
    return (await r.json())["code"]


async def test_status_moves_as_the_rniv_allows_on_evidence_with_history(app, demo, as_user):
    req = await as_user(demo["users"]["requester"])
    p = await new_patient(req, ins=INS, first_names="Élise Marie")
    pid = p["id"]
    assert p["ins_status"] == "provisional" and p["ins_oid"] == InsOid.nir.value
    assert p["first_names_list"] == ["Élise", "Marie"]
    assert p["status_targets"] == ["recovered", "validated"]

    r = await move(req, pid, "qualified", insi=True, identity_document="passport")
    assert r.status == 409 and await code_of(r) == "illegal_identity_transition"
    assert (await r.json())["allowed"] == ["recovered", "validated"]
    r = await move(req, pid, "recovered")
    assert r.status == 422 and await code_of(r) == "evidence_required"
    assert (await r.json())["missing"] == ["insi"]
    r = await req.post(f"/api/v1/patients/{pid}/status", json={"status": "recovered"})
    assert r.status == 422  # no reason
    r = await move(req, pid, "recovered", insi=True)
    assert r.status == 200 and (await r.json())["ins_status_label"] == "Identité récupérée"
    assert (await r.json())["insi_checked_at"]
    r = await move(req, pid, "qualified")
    assert r.status == 422 and (await r.json())["missing"] == ["document"]
    r = await move(req, pid, "qualified", identity_document="bus_ticket")
    assert r.status == 422 and await code_of(r) == "validation_failed"
    r = await move(req, pid, "qualified", identity_document="identity_card")
    body = await r.json()
    assert r.status == 200 and body["ins_status"] == "qualified"
    assert body["identity_document_label"] == "Carte nationale d'identité"

    # The status has one write path: not through the correction route.
    r = await req.patch(f"/api/v1/patients/{pid}", json={"ins_status": "provisional"})
    assert r.status == 422 and await code_of(r) == "status_change_route"

    # A doubt: back to validated, the INSi answer no longer counts.
    r = await move(req, pid, "validated")
    assert r.status == 200 and (await r.json())["insi_checked_at"] is None

    r = await req.get(f"/api/v1/patients/{pid}/status-history")
    rows = await r.json()
    assert [(x["from_status"], x["to_status"]) for x in rows] == [
        (None, "provisional"),
        ("provisional", "recovered"),
        ("recovered", "qualified"),
        ("qualified", "validated"),
    ]
    assert rows[2]["identity_document"] == "identity_card" and rows[1]["insi"] is True
    assert all(x["changed_by"] == "Dr Claire Martin" for x in rows[1:])
    assert rows[3]["reason"] == "test"

    # Others may not change it: an expert of another team does not even see it.
    outsider = await as_user(demo["everyone"][CARDIO_EMAIL])
    r = await move(outsider, pid, "provisional")
    assert r.status == 404
    async with app[DB].read() as s:
        audited = (
            (
                await s.execute(
                    select(AuditEntry).where(
                        AuditEntry.action == "patient.identity_status",
                        AuditEntry.object_id == pid,
                    )
                )
            )
            .scalars()
            .all()
        )
    assert [(a.details["from"], a.details["to"]) for a in audited] == [
        ("provisional", "recovered"),
        ("recovered", "qualified"),
        ("qualified", "validated"),
    ]


@SQLITE
async def test_validated_then_qualified_and_strict_change_drops_to_provisional(demo, as_user):
    req = await as_user(demo["users"]["requester"])
    p = await new_patient(req, birth_name="Sans-Ins", birth_insee_code="38185")
    pid = p["id"]
    assert p["birth_commune"] == "Grenoble"  # as given; the code exists
    r = await move(req, pid, "validated", identity_document="passport")
    assert r.status == 200
    r = await move(req, pid, "qualified", insi=True)
    assert r.status == 422 and await code_of(r) == "ins_required"  # no INS yet
    # Correcting a strict trait of a validated identity: the document no longer vouches.
    r = await req.patch(
        f"/api/v1/patients/{pid}", json={"birth_date": "1950-03-13", "reason": "Erreur de jour"}
    )
    body = await r.json()
    assert r.status == 200 and body["ins_status"] == "provisional"
    assert body["identity_document"] == ""
    rows = await (await req.get(f"/api/v1/patients/{pid}/status-history")).json()
    assert rows[-1]["to_status"] == "provisional"
    assert rows[-1]["reason"].startswith("Traits stricts modifiés (birth_date)")


@SQLITE
async def test_created_qualified_with_its_evidence_and_a_nia(demo, as_user):
    req = await as_user(demo["users"]["requester"])
    p = await new_patient(
        req,
        ins=INS,
        ins_oid=InsOid.nia.value,
        ins_status="qualified",
        insi=True,
        identity_document="identity_card",
        status_reason="INSi et carte d'identité vérifiés à l'accueil",
    )
    assert p["ins_status"] == "qualified" and p["ins_oid_label"] == "NIA"
    rows = await (await req.get(f"/api/v1/patients/{p['id']}/status-history")).json()
    assert rows == [
        {
            **rows[0],
            "from_status": None,
            "to_status": "qualified",
            "reason": "INSi et carte d'identité vérifiés à l'accueil",
            "insi": True,
            "identity_document": "identity_card",
        }
    ]


async def report_text(client, dossier_id) -> str:
    r = await client.post(f"/api/v1/dossiers/{dossier_id}/report")
    assert r.status == 201, await r.text()
    doc = await r.json()
    r = await client.get(f"/api/v1/dossiers/{dossier_id}/documents/{doc['id']}/content")
    with pymupdf.open(stream=await r.read(), filetype="pdf") as pdf:
        return " ".join(" ".join(page.get_text() for page in pdf).split())


@SQLITE
async def test_only_a_qualified_ins_leaves_the_requester_side(app, client, users):
    ins = ins_with_key("1800175101042")
    dossier_id = await make_dossier(app[DB], users, ins=ins, state="expertised", signed_parts=True)
    async with app[DB].write() as uow:
        await uow.session.execute(
            update(Patient).where(Patient.ins == ins).values(ins_status="recovered")
        )
    await client.sign_in_as(users["requester"].id)
    r = await client.get(f"/api/v1/dossiers/{dossier_id}")
    assert (await r.json())["patient"]["ins"] == ins  # its holders see it
    await client.sign_in_as(users["expert"].id)
    r = await client.get(f"/api/v1/dossiers/{dossier_id}")
    patient = (await r.json())["patient"]
    assert patient["ins"] is None and patient["ins_oid"] is None
    assert patient["ins_status"] == "recovered"
    r = await client.get(f"/api/v1/patients/{patient['id']}")  # the card, seen by an expert
    assert r.status == 200 and (await r.json())["ins"] is None
    assert (await r.json())["insi_checked_at"] is None
    text = await report_text(client, dossier_id)
    assert ins not in text and "Identité récupérée" in text

    async with app[DB].write() as uow:
        await uow.session.execute(
            update(Patient)
            .where(Patient.ins == ins)
            .values(ins_status="qualified", ins_oid=InsOid.nir.value)
        )
    r = await client.get(f"/api/v1/dossiers/{dossier_id}")
    assert (await r.json())["patient"]["ins"] == ins
    text = await report_text(client, dossier_id)
    assert ins in text and "1.2.250.1.213.1.4.8" in text and "Identité quali" in text
