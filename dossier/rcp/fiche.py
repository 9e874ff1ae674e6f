"""The « fiche RCP »: a PDF of one dossier's decision at an e-Staff meeting, laid out like
the compte-rendu (:mod:`dossier.report.pdf`), signed by the installation (PAdES) through
:func:`dossier.report.signing.sign_pdf`, the one signing path of the dossier."""

from __future__ import annotations

import asyncio
import html
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.paris_time import paris_datetime
from dossier.report import signing
from dossier.report.pdf import _kv, paginate


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
    return paginate(
        render_html(f),
        header=f"Consilium — Fiche RCP — Dossier n° {f.number} — {f.patient_file_name}",
        number=f.number,
        title=f"Fiche RCP — {f.patient_file_name}",
        subject=f"Dossier n° {f.number}",
    )


def filename(f: FicheData) -> str:
    name = f"fiche-rcp {f.patient_file_name} {f.meeting_at.strftime('%d-%m-%Y')}.pdf"
    return "".join(c for c in name if c not in '/\\:*?"<>|')[:180]


async def build_signed(f: FicheData, data_dir: Path) -> bytes:
    pdf = await asyncio.to_thread(render_pdf, f)
    return await signing.sign_pdf(data_dir, pdf, reason="Fiche RCP", signer_name=f.lead)
