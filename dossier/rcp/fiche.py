"""The « fiche RCP »: a PDF of one dossier's decision at an e-Staff meeting, laid out like
the compte-rendu (:mod:`dossier.report.pdf`), signed by the installation (PAdES) through
:func:`dossier.report.signing.sign_pdf`, the one signing path of the dossier."""

from __future__ import annotations

import asyncio
import html
import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.paris_time import paris_datetime
from dossier.report import signing
from dossier.report.pdf import _CSS, _kv


@dataclass
class FicheData:
    number: str
    patient: dict[str, str]
    patient_file_name: str
    meeting_title: str
    meeting_at: datetime
    lead: str
    question: str
    proposal: str
    present: list[str]
    signed_at: datetime


def render_html(f: FicheData) -> str:
    def para(text: str) -> str:
        return "".join(f"<p>{html.escape(line)}</p>" for line in text.splitlines() if line) or (
            "<p>—</p>"
        )

    present = "".join(f"<li>{html.escape(n)}</li>" for n in f.present) or "<li>—</li>"
    return "".join(
        [
            "<h1>Fiche RCP</h1>",
            f"<p class='sub'>Réunion de concertation pluridisciplinaire « "
            f"{html.escape(f.meeting_title)} » du {paris_datetime(f.meeting_at)} (heure de Paris)"
            f" — dossier n° {html.escape(f.number)}</p>",
            "<h2>Identité du patient</h2>",
            _kv(f.patient),
            "<h2>Question posée</h2>",
            para(f.question),
            "<h2>Proposition thérapeutique / avis de la RCP</h2>",
            para(f.proposal),
            "<h2>Participants présents</h2>",
            f"<ul>{present}</ul>",
            "<h2>Responsable de la réunion</h2>",
            f"<p class='sign'>Signée par {html.escape(f.lead)} le "
            f"{paris_datetime(f.signed_at)} (heure de Paris)</p>",
            "<p class='note'>Cette fiche est signée électroniquement (PAdES) par l'installation "
            "Consilium : toute modification du fichier invalide la signature.</p>",
        ]
    )


def render_pdf(f: FicheData) -> bytes:
    import pymupdf

    page_rect = pymupdf.paper_rect("a4")
    content = pymupdf.Rect(50, 70, page_rect.width - 50, page_rect.height - 60)
    story = pymupdf.Story(html=render_html(f), user_css=_CSS)
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
    header = f"Consilium — Fiche RCP — Dossier n° {f.number} — {f.patient_file_name}"
    for i in range(doc.page_count):
        page = doc[i]
        page.insert_text((50, 44), header, fontsize=8, fontname="helv", color=(0.3, 0.35, 0.4))
        page.insert_text(
            (50, page.rect.height - 32),
            f"Dossier n° {f.number} — document confidentiel (secret médical) — page "
            f"{i + 1} / {doc.page_count}",
            fontsize=7,
            fontname="helv",
            color=(0.4, 0.45, 0.5),
        )
    doc.set_metadata(
        {
            "title": f"Fiche RCP — {f.patient_file_name}",
            "author": "Consilium",
            "subject": f"Dossier n° {f.number}",
            "creator": "Consilium",
            "producer": "Consilium (pymupdf)",
        }
    )
    out = doc.tobytes(garbage=3, deflate=True)
    doc.close()
    return bytes(out)


def filename(f: FicheData) -> str:
    name = f"fiche-rcp {f.patient_file_name} {f.meeting_at.strftime('%d-%m-%Y')}.pdf"
    return "".join(c for c in name if c not in '/\\:*?"<>|')[:180]


async def build_signed(f: FicheData, data_dir: Path) -> bytes:
    pdf = await asyncio.to_thread(render_pdf, f)
    return await signing.sign_pdf(data_dir, pdf, reason="Fiche RCP", signer_name=f.lead)
