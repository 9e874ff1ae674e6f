"""The consultation report of a téléconsultation (issue 16 item 4; référentiel de la
téléconsultation, arrêté du 9 février 2024: the report reaches the patient's record and the
médecin traitant by MSSanté).

After the call, a practitioner of the téléconsultation writes the report (« Motif »,
« Examen clinique / constatations », « Conclusion », prescriptions as a document of the
dossier appended to the PDF) and signs it: the PDF goes through the reports' one write path
(:func:`dossier.report.pdf.file_signed_report`: PAdES signature, filed as a document of the
dossier, ``dossier.report`` audit row, ``report.signed`` after commit) and the
téléconsultation moves to « Compte-rendu signé » (:func:`actions.mark_report_signed`).
Sending reuses :mod:`dossier.sending`: the vault (link by e-mail + code by SMS) for the
patient, MSSanté for the médecin traitant.
"""

from __future__ import annotations

import asyncio
import html
import io
import uuid
from datetime import datetime
from typing import Any

from aiohttp import web

from core import audit
from core.accounts import User
from core.context import DB, NOTIFIER, SETTINGS
from core.db import utcnow
from core.errors import Conflict, Forbidden, Problem, ValidationFailed
from core.paris_time import PARIS, paris_datetime
from core.principal import Principal
from core.storage import of as storage_of
from dossier.documents.store import get_document
from dossier.models import Teleconsultation
from dossier.report.pdf import collect, file_signed_report, paginate
from dossier.sending.actions import send_mss, send_vault
from dossier.teleconsult import actions
from dossier.teleconsult.schemas import ReportIn, SendReportIn, SendReportOut, TeleconsultationOut
from dossier.workflow.dossiers import _changed

Step = actions.Step
PRESCRIPTION_TYPES = {"application/pdf", "image/png", "image/jpeg"}


def _may_write(p: Principal, tc: Teleconsultation) -> bool:
    """The practitioners of the téléconsultation (or, when none was named, whoever planned
    it); never a secretary, a nurse or a guest."""
    if not p.is_user or p.role == "secretary":
        return False
    ids = set(tc.practitioner_ids) or ({str(tc.planned_by_id)} if tc.planned_by_id else set())
    return str(p.subject_id) in ids


async def _refuse_not_practitioner(
    app: web.Application, p: Principal, tc: Teleconsultation
) -> None:
    await audit.record_now(
        app[DB],
        "dossier.teleconsultation.report",
        actor=p,
        object_type="dossier",
        object_id=tc.dossier_id,
        outcome="denied",
        teleconsultation_id=str(tc.id),
    )
    raise Forbidden(
        "Seuls les médecins de la téléconsultation rédigent, signent et envoient son compte-rendu.",
        code="report_not_allowed",
    )


def _html(
    number: str,
    patient: dict[str, str],
    tc: Teleconsultation,
    body: ReportIn,
    signer: str,
    participants: list[str],
    prescription: str,
    signed_at: datetime,
) -> str:
    def kv(rows: list[tuple[str, str]]) -> str:
        return (
            "<table>"
            + "".join(
                f"<tr><td class='k'>{html.escape(k).replace(' ', '&#160;')}</td>"
                f"<td>{html.escape(v)}</td></tr>"
                for k, v in rows
            )
            + "</table>"
        )

    def para(text: str) -> str:
        return "".join(f"<p>{html.escape(line)}</p>" for line in text.splitlines() if line.strip())

    gp = " — ".join(x for x in (body.gp_name, body.gp_mss or "") if x) or "—"
    return "".join(
        [
            "<h1>Compte-rendu de téléconsultation</h1>",
            f"<p class='sub'>Dossier n° {html.escape(number)} — téléconsultation du "
            f"{paris_datetime(tc.scheduled_at)} ({tc.duration_minutes} min)</p>",
            "<h2>Identité du patient</h2>",
            kv(list(patient.items())),
            "<h2>Téléconsultation</h2>",
            kv(
                [
                    ("Date", paris_datetime(tc.scheduled_at)),
                    ("Durée prévue", f"{tc.duration_minutes} min"),
                    ("Participants", ", ".join(participants) or "—"),
                    ("Médecin traitant", gp),
                ]
            ),
            "<h2>Motif</h2>",
            para(body.reason),
            "<h2>Examen clinique / constatations</h2>",
            para(body.findings),
            "<h2>Conclusion</h2>",
            para(body.conclusion),
            "<h2>Prescriptions</h2>",
            f"<p>{html.escape(prescription)}</p>"
            if prescription
            else "<p>Aucune prescription jointe.</p>",
            f"<p class='sign'>Signé électroniquement par {html.escape(signer)} le "
            f"{paris_datetime(signed_at)} (heure de Paris)</p>",
            "<p class='note'>Ce compte-rendu est signé électroniquement (PAdES) par "
            "l'installation Consilium : toute modification du fichier invalide la signature."
            "</p>",
        ]
    )


def _append(pdf: bytes, extra: bytes, content_type: str) -> bytes:
    """The prescription's pages after the report's (a picture becomes an A4 page)."""
    import pymupdf

    doc = pymupdf.open(stream=pdf, filetype="pdf")
    if content_type == "application/pdf":
        src = pymupdf.open(stream=extra, filetype="pdf")
        doc.insert_pdf(src)
        src.close()
    else:
        rect = pymupdf.paper_rect("a4")
        page = doc.new_page(width=rect.width, height=rect.height)
        page.insert_image(pymupdf.Rect(40, 40, rect.width - 40, rect.height - 40), stream=extra)
    out = io.BytesIO()
    doc.save(out, garbage=3, deflate=True)
    doc.close()
    return out.getvalue()


async def sign_report(
    app: web.Application,
    p: Principal,
    tc_id: uuid.UUID,
    body: ReportIn,
    *,
    now: datetime | None = None,
) -> TeleconsultationOut:
    """« Signer le compte-rendu »: write, sign (PAdES) and file the report; the
    téléconsultation becomes « Compte-rendu signé » (one transaction)."""
    db = app[DB]
    now = now or utcnow()
    # The refusal is audited in a transaction of its own: checked before the write begins.
    async with db.read() as s:
        tc, _ = await actions._load(app, s, p, tc_id, for_update=False)
    if not _may_write(p, tc):
        await _refuse_not_practitioner(app, p, tc)
    async with db.write() as uow:
        s = uow.session
        tc, d = await actions._load(app, s, p, tc_id)
        if not _may_write(p, tc):  # the practitioners do not change after planning
            raise Forbidden("Seuls les médecins de la téléconsultation signent son compte-rendu.")
        if tc.step == Step.report_signed or tc.report_document_id is not None:
            raise Conflict(
                "Le compte-rendu de cette téléconsultation est déjà signé.",
                code="report_already_signed",
            )
        if tc.step == Step.cancelled:
            raise Conflict("Cette téléconsultation est annulée.", code="illegal_state")
        if tc.step == Step.planned and tc.scheduled_at > now:
            raise Conflict(
                "La téléconsultation n'a pas encore eu lieu : le compte-rendu se rédige après.",
                code="teleconsultation_not_done",
            )
        prescription_name, extra = "", None
        if body.prescription_document_id:
            doc = await get_document(s, body.prescription_document_id, d.id)
            if doc.content_type not in PRESCRIPTION_TYPES:
                raise ValidationFailed(
                    "L'ordonnance jointe doit être un PDF ou une image (PNG, JPEG).",
                    code="prescription_type",
                )
            if doc.pending_identity_check:
                raise ValidationFailed(
                    "Ce document attend une vérification d'identité.",
                    code="identity_unconfirmed",
                )
            prescription_name = doc.filename
            extra = (await storage_of(app).blobs.read(doc.blob_key), doc.content_type)
        if tc.step == Step.planned:  # begun, the call took place: « Réalisée » first
            tc.step, tc.done_at = Step.done, now
            await _changed(uow, p, d, "teleconsultation.done", teleconsultation_id=str(tc.id))
        me = await s.get(User, p.subject_id)
        signer = p.label + (f" (RPPS {me.rpps})" if me and me.rpps else "")
        ids = [uuid.UUID(i) for i in tc.practitioner_ids] + ([tc.nurse_id] if tc.nurse_id else [])
        people = {u.id: u.display_name for u in [await s.get(User, i) for i in ids] if u}
        participants = [people[i] for i in ids if i in people] + [
            str(g.get("name", "")) for g in tc.guests
        ]
        data = await collect(s, d.id, p.label)
        page_html = _html(
            d.number, data.patient, tc, body, signer, participants, prescription_name, now
        )
        pdf = await asyncio.to_thread(
            paginate,
            page_html,
            header=f"Consilium — Téléconsultation — Dossier n° {d.number} — "
            f"{data.patient_file_name}",
            number=d.number,
            title=f"Compte-rendu de téléconsultation — {data.patient_file_name}",
            subject=f"Dossier n° {d.number} ({d.id})",
        )
        if extra is not None:
            pdf = await asyncio.to_thread(_append, pdf, *extra)
        day = tc.scheduled_at.astimezone(PARIS).strftime("%d-%m-%Y")
        name = "".join(
            c
            for c in f"teleconsultation.crpt {data.patient_file_name} {day}.pdf"
            if c not in '/\\:*?"<>|'
        )[:180]
        doc = await file_signed_report(
            uow,
            p,
            d.id,
            name,
            pdf,
            app[SETTINGS].data_dir,
            reason="Compte-rendu de téléconsultation",
            meta={"kind": "teleconsultation", "teleconsultation_id": str(tc.id)},
        )
        tc.report = {
            "reason": body.reason,
            "findings": body.findings,
            "conclusion": body.conclusion,
            "prescription_document_id": str(body.prescription_document_id)
            if body.prescription_document_id
            else None,
            "gp_name": body.gp_name,
            "gp_mss": body.gp_mss or "",
        }
        tc.report_document_id, tc.report_signed_by_id, tc.report_signed_at = (
            doc.id,
            p.subject_id,
            now,
        )
        await actions.mark_report_signed(uow, d.id, teleconsultation_id=tc.id)
        await _changed(
            uow,
            p,
            d,
            "teleconsultation.report_signed",
            teleconsultation_id=str(tc.id),
            document_id=str(doc.id),
            sha256=doc.sha256,
        )
    return await actions._out(app, tc)


def _patient_contact(tc: Teleconsultation, body: SendReportIn) -> tuple[str, str]:
    guest: dict[str, Any] = next(
        (g for g in tc.guests if g.get("relation") == "patient"), tc.guests[0] if tc.guests else {}
    )
    email = body.patient_email or str(guest.get("email") or "")
    phone = body.patient_phone or str(guest.get("mobile") or "")
    return email, phone


async def send_report(
    app: web.Application, p: Principal, tc_id: uuid.UUID, body: SendReportIn
) -> SendReportOut:
    """« Envoyer le compte-rendu »: to the patient through the vault (link by e-mail, code by
    SMS) and to the médecin traitant by MSSanté. Everything is checked before anything
    leaves; each sending is audited by :mod:`dossier.sending`, the summary kept on the
    téléconsultation (``dossier.teleconsultation.report_sent``)."""
    db = app[DB]
    async with db.read() as s:
        tc, d = await actions._load(app, s, p, tc_id, for_update=False)
    if not _may_write(p, tc):
        await _refuse_not_practitioner(app, p, tc)
    if tc.report_document_id is None:
        raise Conflict(
            "Le compte-rendu n'est pas encore signé : signez-le avant de l'envoyer.",
            code="report_not_signed",
        )
    if not body.to_patient and not body.to_gp:
        raise ValidationFailed(
            "Choisissez au moins un destinataire (patient ou médecin traitant).",
            code="no_recipient",
        )
    report = tc.report or {}
    gp_mss = body.gp_mss or str(report.get("gp_mss") or "")
    if body.to_gp and not gp_mss:
        raise ValidationFailed(
            "Aucune adresse MSSanté du médecin traitant : renseignez-la ou cherchez-la dans "
            "l'annuaire MSSanté.",
            code="no_gp_address",
        )
    email, phone = _patient_contact(tc, body)
    if body.to_patient and not (email and phone):
        raise ValidationFailed(
            "Le coffre-fort demande l'adresse e-mail et le téléphone portable du patient "
            "(le lien part par e-mail, le code par SMS).",
            code="no_patient_contact",
        )
    sent: list[dict[str, str]] = []
    expires: datetime | None = None
    if body.to_patient:
        dep = await send_vault(
            db, app[SETTINGS], app[NOTIFIER], p, d.id, tc.report_document_id, email, phone
        )
        expires = dep.expires_at
        sent.append({"channel": "vault", "to": email, "at": utcnow().isoformat()})
    failed: list[str] = []
    if body.to_gp:
        reached = await send_mss(
            db,
            storage_of(app),
            app[NOTIFIER],
            p,
            d.id,
            tc.report_document_id,
            [gp_mss],
            body.message,
        )
        if reached:
            sent.append({"channel": "mss", "to": gp_mss, "at": utcnow().isoformat()})
        else:
            failed.append(gp_mss)
    if sent:
        async with db.write() as uow:
            row, dd = await actions._load(app, uow.session, p, tc_id)
            row.report_sent = [*(row.report_sent or []), *sent]
            await _changed(
                uow,
                p,
                dd,
                "teleconsultation.report_sent",
                teleconsultation_id=str(tc.id),
                document_id=str(tc.report_document_id),
                to=[x["channel"] for x in sent],
            )
    if failed:
        raise Problem(
            "La messagerie sécurisée n'a pas accepté l'envoi au médecin traitant"
            + (" (le patient l'a bien reçu)." if sent else "."),
            status=502,
            code="delivery_failed",
            title="Delivery failed",
        )
    return SendReportOut(
        sent_to=[f"{x['channel']}:{x['to']}" for x in sent],
        vault_expires_at=expires,
    )
