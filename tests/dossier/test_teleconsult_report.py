"""The consultation report of a téléconsultation (issue 16 item 4): written after the call by
one of its practitioners, signed (PAdES, the reports' one write path), filed in the dossier,
the step « Compte-rendu signé », sent to the patient through the vault (link by e-mail, code
by SMS: real SMTP sink and HTTP gateway) and to the médecin traitant by MSSanté; and the
refusals, in French, as problem+json."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

import pymupdf
from sqlalchemy import select

from core.audit import AuditEntry
from core.context import DB
from core.db import utcnow
from tests.dossier.dossier_fixtures import *  # noqa: F403
from tests.dossier.dossier_fixtures import (
    CARDIO_EMAIL,
    ENDO,
    TX_REQUESTER,
    draft_ready_to_sign,
)
from tests.dossier.test_teleconsultations import settings  # noqa: F401

PATIENT_EMAIL = "elise.dupont@example.org"
PATIENT_MOBILE = "+33612345678"
GP_MSS = "jacques.bernard@medecin.mssante.fr"
REPORT = {
    "reason": "Suivi du diabète après adaptation du traitement.",
    "findings": "Glycémies capillaires entre 1,10 et 1,60 g/L.\nPas d'hypoglycémie rapportée.",
    "conclusion": "Poursuite du traitement, contrôle HbA1c dans 3 mois.",
    "gp_name": "Dr Jacques Bernard",
    "gp_mss": GP_MSS,
}


def _pdf(text: str) -> bytes:
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), text)
    out = doc.tobytes()
    doc.close()
    return bytes(out)


async def _planned(demo, as_user, *, practitioners: tuple[str, ...] = ("requester", "expert")):
    u = demo["users"]
    req = await as_user(u["requester"])
    d = await draft_ready_to_sign(req, str(demo["offers"][ENDO].id))
    # Sent: the dossier's expert sees it (and may or may not be a practitioner of the call).
    r = await req.post(
        f"/api/v1/dossiers/{d['id']}/forms/requester/sign", json={"values": TX_REQUESTER}
    )
    assert r.status == 200, await r.text()
    at = (utcnow() + timedelta(days=2)).replace(second=0, microsecond=0)
    r = await req.post(
        f"/api/v1/dossiers/{d['id']}/teleconsultations",
        json={
            "scheduled_at": at.isoformat(),
            "practitioner_ids": [str(u[p].id) for p in practitioners],
            "guests": [
                {
                    "name": "Élise Dupont",
                    "relation": "patient",
                    "email": PATIENT_EMAIL,
                    "mobile": PATIENT_MOBILE,
                }
            ],
        },
    )
    assert r.status == 201, await r.text()
    return req, d, await r.json()


async def _problem(r: Any, status: int, code: str) -> dict:
    assert r.status == status, await r.text()
    assert r.content_type == "application/problem+json"
    body = await r.json()
    assert body["code"] == code, body
    return body


async def test_the_report_is_signed_filed_and_sent_to_the_patient_and_the_gp(
    demo, as_user, app, smtp, sms_gateway
):
    req, d, tc = await _planned(demo, as_user)
    await smtp.wait_for(PATIENT_EMAIL)  # the invitation
    # The prescription: a PDF added to the dossier, chosen in the form.
    r = await req.post(
        f"/api/v1/dossiers/{d['id']}/documents?filename=ordonnance.pdf",
        data=_pdf("ORDONNANCE Metformine 1000 mg"),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status == 201, await r.text()
    rx = await r.json()
    r = await req.post(f"/api/v1/teleconsultations/{tc['id']}/done")
    assert r.status == 200, await r.text()
    r = await req.post(
        f"/api/v1/teleconsultations/{tc['id']}/report",
        json={**REPORT, "prescription_document_id": rx["id"]},
    )
    assert r.status == 201, await r.text()
    out = await r.json()
    assert out["step"] == "report_signed" and out["step_label"] == "Compte-rendu signé"
    rep = out["report"]
    assert rep["signed_by"]["name"] == "Dr Claire Martin" and rep["gp_mss"] == GP_MSS
    assert rep["sent"] == []
    # In the dossier's documents, signed and verifiable; the prescription's page follows.
    doc_id = rep["document_id"]
    docs = await (await req.get(f"/api/v1/dossiers/{d['id']}/documents")).json()
    reports = next(c for c in docs["categories"] if c["code"] == "report")["documents"]
    (doc,) = [x for x in reports if x["id"] == doc_id]
    assert doc["filename"].startswith("teleconsultation.crpt ")
    assert doc["meta"]["kind"] == "teleconsultation" and doc["meta"]["pades"] is True
    v = await (await req.get(f"/api/v1/dossiers/{d['id']}/documents/{doc_id}/verification")).json()
    assert v["ok"] is True
    body = await (await req.get(f"/api/v1/dossiers/{d['id']}/documents/{doc_id}/content")).read()
    pdf = pymupdf.open(stream=body, filetype="pdf")
    text = "".join(p.get_text() for p in pdf)
    assert pdf.page_count >= 2
    for words in (
        "Compte-rendu de téléconsultation",
        "Motif",
        "Examen clinique / constatations",
        "Pas d'hypoglycémie rapportée.",
        "Conclusion",
        "ordonnance.pdf",
        "ORDONNANCE Metformine 1000 mg",
        "Dr Jacques Bernard",
    ):
        assert words in text, words
    # The activity view filters on the step.
    page = await (await req.get("/api/v1/dossiers?teleconsultation=report_signed")).json()
    assert [x["id"] for x in page["items"]] == [d["id"]]

    # Sent: the patient through the vault, the médecin traitant by MSSanté.
    r = await req.post(f"/api/v1/teleconsultations/{tc['id']}/report/send", json={})
    assert r.status == 200, await r.text()
    assert (await r.json())["sent_to"] == [f"vault:{PATIENT_EMAIL}", f"mss:{GP_MSS}"]
    mails = await smtp.wait_for(PATIENT_EMAIL, count=2)
    link = re.search(r"/vault/(\S+)", smtp.text_of(mails[-1]))
    assert link, smtp.text_of(mails[-1])
    sms = await sms_gateway.wait_for(PATIENT_MOBILE)
    assert re.search(r"\b\d{6}\b", sms["text"])
    (gp,) = await smtp.wait_for(GP_MSS)
    pdf_parts = [p for p in gp.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert pdf_parts and pdf_parts[0].get_content() == body
    listed = await (await req.get(f"/api/v1/dossiers/{d['id']}/teleconsultations")).json()
    assert [x["channel"] for x in listed[0]["report"]["sent"]] == ["vault", "mss"]
    async with app[DB].read() as s:
        actions = [
            (a.action, a.details.get("channel"), a.details.get("kind"))
            for a in (
                await s.execute(
                    select(AuditEntry)
                    .where(AuditEntry.object_id == d["id"])
                    .order_by(AuditEntry.id)
                )
            ).scalars()
        ]
    assert ("dossier.report", None, "teleconsultation") in actions
    assert ("dossier.teleconsultation.report_signed", None, None) in actions
    assert ("dossier.send", "vault", None) in actions and ("dossier.send", "mss", None) in actions
    assert ("dossier.teleconsultation.report_sent", None, None) in actions


async def test_refusals_are_french_problems(demo, as_user, app, smtp, sms_gateway):
    req, d, tc = await _planned(demo, as_user, practitioners=("requester",))
    url = f"/api/v1/teleconsultations/{tc['id']}/report"
    # Not yet held.
    body = await _problem(await req.post(url, json=REPORT), 409, "teleconsultation_not_done")
    assert "pas encore eu lieu" in body["detail"]
    assert (await req.post(f"/api/v1/teleconsultations/{tc['id']}/done")).status == 200
    # Not sent before it is signed.
    await _problem(await req.post(f"{url}/send", json={}), 409, "report_not_signed")
    # The expert of the dossier did not take part as a practitioner of this call.
    exp = await as_user(demo["users"]["expert"])
    body = await _problem(await exp.post(url, json=REPORT), 403, "report_not_allowed")
    assert "Seuls les médecins de la téléconsultation" in body["detail"]
    # A stranger does not even see it.
    stranger = await as_user(demo["everyone"][CARDIO_EMAIL])
    assert (await stranger.post(url, json=REPORT)).status == 404
    # An empty finding is bad input, not a 500.
    r = await req.post(url, json={**REPORT, "findings": "   "})
    assert r.status == 422 and r.content_type == "application/problem+json"
    # A prescription of another kind than PDF or picture.
    r = await req.post(
        f"/api/v1/dossiers/{d['id']}/documents?filename=notes.txt",
        data=b"Notes de consultation\n",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status == 201, await r.text()
    other = (await r.json())["id"]
    await _problem(
        await req.post(url, json={**REPORT, "prescription_document_id": other}),
        422,
        "prescription_type",
    )
    # Signed without a médecin traitant address…
    no_gp = {k: v for k, v in REPORT.items() if k != "gp_mss"}
    r = await req.post(url, json=no_gp)
    assert r.status == 201, await r.text()
    # …twice: refused.
    body = await _problem(await req.post(url, json=REPORT), 409, "report_already_signed")
    assert body["detail"] == "Le compte-rendu de cette téléconsultation est déjà signé."
    # Sending to the médecin traitant needs his MSSanté address.
    body = await _problem(
        await req.post(f"{url}/send", json={"to_patient": False}), 422, "no_gp_address"
    )
    assert "annuaire MSSanté" in body["detail"]
    await _problem(
        await req.post(f"{url}/send", json={"to_patient": False, "to_gp": False}),
        422,
        "no_recipient",
    )
    # Nothing left before the checks passed.
    assert smtp.to(GP_MSS) == []
    # Given at sending time, it goes.
    r = await req.post(f"{url}/send", json={"to_patient": False, "gp_mss": GP_MSS})
    assert r.status == 200, await r.text()
    await smtp.wait_for(GP_MSS)
    # The expert may not send it either.
    await _problem(await exp.post(f"{url}/send", json={}), 403, "report_not_allowed")
    async with app[DB].read() as s:
        denied = (
            (
                await s.execute(
                    select(AuditEntry).where(
                        AuditEntry.object_id == d["id"],
                        AuditEntry.action == "dossier.teleconsultation.report",
                        AuditEntry.outcome == "denied",
                    )
                )
            )
            .scalars()
            .all()
        )
    assert len(denied) == 2


async def test_a_cancelled_teleconsultation_has_no_report(demo, as_user, app, smtp):
    req, _, tc = await _planned(demo, as_user)
    r = await req.post(f"/api/v1/teleconsultations/{tc['id']}/cancel", json={})
    assert r.status == 200
    await _problem(
        await req.post(f"/api/v1/teleconsultations/{tc['id']}/report", json=REPORT),
        409,
        "illegal_state",
    )


async def test_two_signatures_at_once_file_one_report(demo, as_user, app, smtp):
    """Two tabs sign at the same moment: the téléconsultation's row is locked, the second
    sees the first's report and is refused; one document is filed."""
    req, d, tc = await _planned(demo, as_user)
    assert (await req.post(f"/api/v1/teleconsultations/{tc['id']}/done")).status == 200
    other_tab = await as_user(demo["users"]["requester"])
    url = f"/api/v1/teleconsultations/{tc['id']}/report"
    rs = await asyncio.gather(req.post(url, json=REPORT), other_tab.post(url, json=REPORT))
    assert sorted(r.status for r in rs) == [201, 409]
    (refused,) = [r for r in rs if r.status == 409]
    assert (await refused.json())["code"] == "report_already_signed"
    docs = await (await req.get(f"/api/v1/dossiers/{d['id']}/documents")).json()
    reports = [x for c in docs["categories"] for x in c["documents"] if x["source"] == "report"]
    assert len(reports) == 1
