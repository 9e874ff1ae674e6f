"""The compte-rendu (report): a PDF of the dossier, signed by the installation (PAdES).

Built with pymupdf's Story (HTML laid out over as many A4 pages as needed), then a second
pass draws the header and the "page n / N" footer, then :mod:`dossier.signing` signs it.
The file name follows the seed's: ``<type>.crpt NOM (né NAISSANCE) Prénom jj-mm-aaaa.pdf``.
"""

from __future__ import annotations

import asyncio
import html
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.accounts import User
from core.db import Database, UnitOfWork
from core.errors import NotFound
from core.paris_time import PARIS, paris_date, paris_datetime
from core.principal import Principal
from dossier.documents import access as doc_access
from dossier.documents import filetypes
from dossier.documents.store import add_document, list_documents
from dossier.identity.ins import InsOid, exchangeable_ins
from dossier.models import (
    CareOffer,
    Document,
    Dossier,
    DossierRecipient,
    DossierState,
    FormPart,
    FormSide,
    FormStatus,
    Patient,
    RequestType,
)
from dossier.report import signing

SEX_LABELS = {"F": "Féminin", "M": "Masculin", "I": "Indéterminé"}


@dataclass
class FormPartView:
    title: str
    fields: list[tuple[str, str]]
    signed_by: str
    signed_at: datetime | None
    status: str


@dataclass
class ReportData:
    dossier_id: uuid.UUID
    number: str  # "TE-2026-000123"
    state_label: str
    expertised: bool
    patient: dict[str, str]
    patient_file_name: str
    request: dict[str, str]
    request_type_code: str
    parts: list[FormPartView]
    documents: list[tuple[str, str, str, str]]  # category label, name, author, date
    generated_at: datetime
    generated_by: str
    extra: dict[str, Any] = field(default_factory=dict)


def _value(field_def: dict[str, Any], value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "Oui" if value else "Non"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    options = field_def.get("options")
    if isinstance(options, list):
        for o in options:
            if isinstance(o, dict) and o.get("value") == value:
                return str(o.get("label", value))
    return str(value)


async def _user_label(session: AsyncSession, user_id: uuid.UUID | None) -> str:
    if user_id is None:
        return "—"
    u = await session.get(User, user_id)
    if u is None:
        return "—"
    label = u.display_name
    if u.rpps:
        label += f" (RPPS {u.rpps})"
    return label


async def collect(session: AsyncSession, dossier_id: uuid.UUID, by: str) -> ReportData:
    d = await session.get(Dossier, dossier_id)
    if d is None:
        raise NotFound("Dossier introuvable.", code="dossier_not_found")
    p = await session.get(Patient, d.patient_id)
    assert p is not None
    rt = await session.get(RequestType, d.request_type_id) if d.request_type_id else None
    offers = (
        await session.execute(
            select(CareOffer)
            .join(DossierRecipient, DossierRecipient.care_offer_id == CareOffer.id)
            .where(DossierRecipient.dossier_id == dossier_id)
            .order_by(DossierRecipient.position)
        )
    ).scalars()
    parts_rows = {
        fp.side: fp
        for fp in (
            await session.execute(select(FormPart).where(FormPart.dossier_id == dossier_id))
        ).scalars()
    }
    parts: list[FormPartView] = []
    for side, title in (
        (FormSide.requester, "Demande — partie du professionnel requérant"),
        (FormSide.expert, "Avis — partie du professionnel requis"),
    ):
        fp = parts_rows.get(side)
        if fp is None:
            parts.append(FormPartView(title, [], "—", None, "Non renseignée"))
            continue
        rows = [
            (str(f.get("label", f.get("name", ""))), _value(f, fp.values.get(f.get("name", ""))))
            for f in fp.fields
        ]
        signed = fp.status == FormStatus.signed
        parts.append(
            FormPartView(
                title,
                rows,
                await _user_label(session, fp.signed_by_id) if signed else "—",
                fp.signed_at if signed else None,
                "Signée" if signed else "Brouillon (non signée)",
            )
        )
    docs = [
        (
            filetypes.CATEGORIES.get(doc.category, doc.category),
            doc.filename,
            doc.author_label,
            paris_datetime(doc.created_at),
        )
        for doc in await list_documents(session, dossier_id)
        if doc.source != "report"
    ]
    birth = p.birth_name.upper()
    used = (p.used_name or p.birth_name).upper()
    first = p.used_first_name or p.first_name
    # RNIV: only a qualified identity's INS travels (the report leaves the establishment).
    ins = exchangeable_ins(p.ins_status, p.ins)
    oid_label = InsOid(p.ins_oid).label if p.ins_oid in set(InsOid) else "NIR"
    patient = {
        "Nom de naissance": birth,
        # No used name: a dash, as the dossier page shows it (not the birth name again).
        "Nom utilisé": p.used_name.upper() if p.used_name else "–",
        "Prénom(s)": p.first_names or p.first_name,
        "Prénom utilisé": first,
        "Sexe": SEX_LABELS.get(str(p.sex.value), str(p.sex.value)),
        "Date de naissance": paris_date(p.birth_date),
        "Lieu de naissance": " ".join(
            x
            for x in (p.birth_commune, f"({p.birth_insee_code})" if p.birth_insee_code else "")
            if x
        )
        or "—",
        "INS": f"{ins} ({oid_label} {p.ins_oid}) — {p.ins_status.label}"
        if ins
        else f"— ({p.ins_status.label})",
        "IPP": p.ipp or "—",
    }
    request = {
        "Type de demande": rt.label if rt else "—",
        "Urgence": "Urgent" if d.urgent else "Non urgent",
        "Consentement du patient": {True: "Recueilli", False: "Refusé", None: "Non renseigné"}[
            d.consent
        ],
        "Commentaire sur le consentement": d.consent_comment or "—",
        "Requérant": await _user_label(session, d.requester_id),
        "Expert": await _user_label(session, d.expert_id),
        "Destinataires": ", ".join(f"{o.name} — {o.establishment}" for o in offers) or "—",
        "Demande envoyée le": paris_datetime(d.submitted_at),
    }
    expertised = d.state in (DossierState.expertised, DossierState.closed) or (
        d.expertised_at is not None
    )
    name_for_file = f"{used} (né {birth}) {first}" if used != birth else f"{birth} {first}"
    return ReportData(
        dossier_id=d.id,
        number=d.number,
        state_label=d.state.label,
        expertised=expertised,
        patient=patient,
        patient_file_name=name_for_file,
        request=request,
        request_type_code=rt.code if rt else "dossier",
        parts=parts,
        documents=docs,
        generated_at=datetime.now(PARIS),
        generated_by=by,
    )


_CSS = """
* { font-family: sans-serif; font-size: 10pt; color: #1d2733; }
h1 { font-size: 16pt; color: #0b4f8a; margin: 0 0 4pt 0; }
h2 { font-size: 12pt; color: #0b4f8a; border-bottom: 1px solid #0b4f8a;
     margin: 12pt 0 4pt 0; padding-bottom: 2pt; }
p.sub { color: #5a6775; margin: 0 0 6pt 0; }
table { width: 100%; border-collapse: collapse; }
td, th { border-bottom: 0.5px solid #d5dbe1; padding: 3pt 4pt; vertical-align: top;
         text-align: left; }
th { background-color: #eef3f8; font-weight: bold; }
td.k { color: #5a6775; padding-right: 12pt; }
p.sign { background-color: #eef7ee; padding: 4pt; margin: 4pt 0; }
p.unsigned { background-color: #fdf3e6; padding: 4pt; margin: 4pt 0; }
p.note { color: #5a6775; font-size: 8pt; }
"""


def _kv(rows: dict[str, str] | list[tuple[str, str]]) -> str:
    items = rows.items() if isinstance(rows, dict) else rows
    body = "".join(
        # Non-breaking keys: the key column takes the width of the longest key.
        f"<tr><td class='k'>{html.escape(k).replace(' ', '&#160;')}</td>"
        f"<td>{html.escape(v)}</td></tr>"
        for k, v in items
    )
    return f"<table>{body}</table>"


def render_html(r: ReportData) -> str:
    title = "Compte-rendu de téléexpertise" if r.expertised else "Demande d'avis (provisoire)"
    out = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='sub'>Dossier n° {html.escape(r.number)} — {html.escape(r.state_label)} — "
        f"édité le {paris_datetime(r.generated_at)} par "
        f"{html.escape(r.generated_by)}</p>",
        "<h2>Identité du patient</h2>",
        _kv(r.patient),
        "<h2>Demande</h2>",
        _kv(r.request),
    ]
    for part in r.parts:
        out.append(f"<h2>{html.escape(part.title)}</h2>")
        out.append(_kv(part.fields) if part.fields else "<p>Aucune donnée.</p>")
        if part.signed_at:
            out.append(
                f"<p class='sign'>Signée par {html.escape(part.signed_by)} le "
                f"{paris_datetime(part.signed_at)} (heure de Paris)</p>"
            )
        else:
            out.append(f"<p class='unsigned'>{html.escape(part.status)}</p>")
    out.append(f"<h2>Documents du dossier ({len(r.documents)})</h2>")
    if r.documents:
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in d) + "</tr>" for d in r.documents
        )
        out.append(
            f"<table><tr><th>Type</th><th>Nom</th><th>Ajouté par</th><th>Le</th></tr>{rows}</table>"
        )
    else:
        out.append("<p>Aucun document.</p>")
    out.append(
        "<p class='note'>Ce compte-rendu est signé électroniquement (PAdES) par l'installation "
        "Consilium : toute modification du fichier invalide la signature. Il appartient à "
        "chaque professionnel participant d'en assurer la traçabilité dans le dossier du "
        "patient de son établissement ou de son cabinet.</p>"
    )
    return "".join(out)


def paginate(body_html: str, *, header: str, number: str, title: str, subject: str) -> bytes:
    """Lay ``body_html`` out over A4 pages with the running header and the « Page n / N »
    footer every Consilium report carries (téléexpertise and consultation reports alike)."""
    import io

    import pymupdf

    page_rect = pymupdf.paper_rect("a4")
    content = pymupdf.Rect(50, 70, page_rect.width - 50, page_rect.height - 60)
    story = pymupdf.Story(html=body_html, user_css=_CSS)
    buf = io.BytesIO()
    writer = pymupdf.DocumentWriter(buf)
    more = True
    while more:
        dev = writer.begin_page(page_rect)
        more, _ = story.place(content)
        story.draw(dev)
        writer.end_page()
    writer.close()
    doc = pymupdf.open(stream=buf.getvalue(), filetype="pdf")
    total = doc.page_count
    for i in range(total):
        page = doc[i]
        w, h = page.rect.width, page.rect.height
        page.draw_line((50, 52), (w - 50, 52), color=(0.04, 0.31, 0.54), width=0.8)
        page.insert_text((50, 44), header, fontsize=8, fontname="helv", color=(0.3, 0.35, 0.4))
        page.draw_line((50, h - 45), (w - 50, h - 45), color=(0.8, 0.83, 0.86), width=0.5)
        page.insert_text(
            (50, h - 32),
            f"Dossier n° {number} — document confidentiel (secret médical)",
            fontsize=7,
            fontname="helv",
            color=(0.4, 0.45, 0.5),
        )
        label = f"Page {i + 1} / {total}"
        page.insert_text(
            (w - 50 - pymupdf.get_text_length(label, "helv", 8), h - 32),
            label,
            fontsize=8,
            fontname="helv",
        )
    doc.set_metadata(
        {
            "title": title,
            "author": "Consilium",
            "subject": subject,
            "creator": "Consilium",
            "producer": "Consilium (pymupdf)",
        }
    )
    out = doc.tobytes(garbage=3, deflate=True)
    doc.close()
    return bytes(out)


def render_pdf(r: ReportData) -> bytes:
    return paginate(
        render_html(r),
        header=f"Consilium — Téléexpertise — Dossier n° {r.number} — {r.patient_file_name}",
        number=r.number,
        title=f"Compte-rendu — {r.patient_file_name}",
        subject=f"Dossier n° {r.number} ({r.dossier_id})",
    )


def report_filename(r: ReportData) -> str:
    day = r.generated_at.strftime("%d-%m-%Y")
    name = f"{r.request_type_code}.crpt {r.patient_file_name} {day}.pdf"
    return "".join(c for c in name if c not in '/\\:*?"<>|')[:180]


async def build_signed_report(
    session: AsyncSession, dossier_id: uuid.UUID, by: str, data_dir: Path
) -> tuple[str, bytes, ReportData]:
    """The signed PDF bytes and its file name (nothing stored)."""
    data = await collect(session, dossier_id, by)
    pdf = await asyncio.to_thread(render_pdf, data)
    signed = await signing.sign_pdf(
        data_dir, pdf, reason="Compte-rendu de téléexpertise", signer_name="Consilium"
    )
    return report_filename(data), signed, data


async def file_signed_report(
    uow: UnitOfWork,
    principal: Principal,
    dossier_id: uuid.UUID,
    name: str,
    pdf: bytes,
    data_dir: Path,
    *,
    reason: str,
    meta: dict[str, Any],
    previous: Document | None = None,
) -> Document:
    """THE write path of a signed report, whatever its kind (téléexpertise report, consultation
    report): sign ``pdf`` (PAdES, :mod:`dossier.report.signing`), file it as a document of the
    dossier (``source="report"``), audit ``dossier.report`` and emit ``report.signed`` after
    the commit (the DPI filing and the webhooks follow it)."""
    session = uow.session
    await doc_access.require_document_write(session, principal, dossier_id)
    signed = await signing.sign_pdf(data_dir, pdf, reason=reason, signer_name="Consilium")
    doc = await add_document(
        uow,
        principal,
        dossier_id,
        name,
        signed,
        "report",
        previous=previous,
        category="report",
        meta={"signed": True, "pades": True, **meta},
    )
    audit.record(
        session,
        "dossier.report",
        actor=principal,
        object_type="dossier",
        object_id=dossier_id,
        document_id=str(doc.id),
        sha256=doc.sha256,
        kind=str(meta.get("kind", "teleexpertise")),
    )
    uow.emit(
        "report.signed",
        {"dossier_id": str(dossier_id), "document_id": str(doc.id), "sha256": doc.sha256},
        dossier_id=str(dossier_id),
    )
    return doc


async def generate_report(
    uow: UnitOfWork, principal: Principal, dossier_id: uuid.UUID, data_dir: Path
) -> Document:
    """Generate ("Générer PDF"), sign and file the report as a document of the dossier."""
    session = uow.session
    await doc_access.require_document_write(session, principal, dossier_id)
    data = await collect(session, dossier_id, principal.label)
    pdf = await asyncio.to_thread(render_pdf, data)
    previous = (
        await session.execute(
            select(Document)
            .where(
                Document.dossier_id == dossier_id,
                Document.source == "report",
                Document.category == "report",
            )
            .order_by(Document.version.desc())
        )
    ).scalars()
    # Versions chain the téléexpertise reports only (a consultation report stands alone).
    prev = next((x for x in previous if (x.meta or {}).get("kind") != "teleconsultation"), None)
    return await file_signed_report(
        uow,
        principal,
        dossier_id,
        report_filename(data),
        pdf,
        data_dir,
        reason="Compte-rendu de téléexpertise",
        meta={"expertised": data.expertised},
        previous=prev,
    )


async def file_report(
    db: Database, principal: Principal, dossier_id: uuid.UUID, data_dir: Path
) -> Document:
    """The "Générer PDF" action: :func:`generate_report` in a transaction of its own."""
    async with db.write() as uow:
        return await generate_report(uow, principal, dossier_id, data_dir)
