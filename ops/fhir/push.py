"""Report filed back into the establishment's record (DPI): each signed report is pushed to
``CONSILIUM_FHIR_PUSH_URL`` as a FHIR ``DocumentReference`` with the PDF inline.

Durable and exactly once:

- the filing is a row of ``report_filings`` written in the transaction that signs the
  report (a hook on ``Database.before_commit`` for the ``report.signed`` event): no signed
  report without its filing, no filing for a report that was rolled back;
- every node runs a :class:`Pusher`; a filing is *claimed* by a conditional update (the
  attempt count as read) that moves its next attempt past the request timeout, so two nodes
  never send it at once and a node that dies mid-request leaves it to another later;
- the create is conditional, ``If-None-Exist: identifier=urn:ietf:rfc:3986|urn:uuid:<id>``:
  a retry after an answer that got lost finds the resource already there (200) instead of
  creating a second one;
- anything but a 2xx is retried with exponential back-off (±20 % jitter) until accepted,
  or until ``fhir_push_max_attempts`` (then ``failed``, visible on the dossier page).
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.accounts import User
from core.config import Settings
from core.db import Database, utcnow
from core.events import Event
from dossier.documents.store import storage_for
from dossier.models import Document, Dossier, Patient, ReportFiling
from ops.fhir import resources
from ops.outbox import OutboxWorker

log = logging.getLogger(__name__)

BATCH = 20
FHIR_JSON = "application/fhir+json"


async def enqueue(session: AsyncSession, events: list[Event], settings: Settings) -> None:
    """The outbox hook: a filing for each report signed in this transaction."""
    if not settings.fhir_push_url:
        return
    now = utcnow()
    for e in events:
        if e.name != "report.signed":
            continue
        session.add(
            ReportFiling(
                dossier_id=uuid.UUID(e.payload["dossier_id"]),
                document_id=uuid.UUID(e.payload["document_id"]),
                target=settings.fhir_push_url,
                status="pending",
                attempts=0,
                created_at=now,
                next_attempt_at=now,
                last_error="",
                remote_id="",
            )
        )


@dataclass
class Job:
    filing_id: uuid.UUID
    attempt: int
    target: str
    document_id: uuid.UUID
    body: bytes


@dataclass
class Outcome:
    ok: bool
    status: int | None
    error: str
    remote_id: str = ""


class Pusher(OutboxWorker):
    label = "FHIR report filing"

    def __init__(self, db: Database, settings: Settings) -> None:
        super().__init__()
        self.db = db
        self.settings = settings

    def timings(self) -> tuple[float, float, float, float]:
        s = self.settings
        return (
            s.fhir_push_timeout_seconds,
            s.fhir_push_poll_seconds,
            s.fhir_push_retry_base_seconds,
            s.fhir_push_retry_max_seconds,
        )

    async def run_pass(self, http: aiohttp.ClientSession) -> bool:
        return await self.push_due(http)

    async def count_pending(self) -> int:
        async with self.db.read() as s:
            n = await s.scalar(select(func.count()).where(ReportFiling.status == "pending"))
        return int(n or 0)

    async def claim(self) -> list[tuple[uuid.UUID, int]]:
        now = utcnow()
        lease = now + timedelta(seconds=self.settings.fhir_push_timeout_seconds + 30)
        async with self.db.read() as s:
            due = (
                await s.execute(
                    select(ReportFiling.id, ReportFiling.attempts)
                    .where(ReportFiling.status == "pending", ReportFiling.next_attempt_at <= now)
                    .order_by(ReportFiling.next_attempt_at)
                    .limit(BATCH)
                )
            ).all()
        claimed: list[tuple[uuid.UUID, int]] = []
        if not due:
            return claimed
        async with self.db.write() as uow:
            for filing_id, attempts in due:
                result = await uow.session.execute(
                    update(ReportFiling)
                    .where(
                        ReportFiling.id == filing_id,
                        ReportFiling.status == "pending",
                        ReportFiling.attempts == attempts,
                    )
                    .values(next_attempt_at=lease, attempts=attempts + 1)
                )
                if getattr(result, "rowcount", 0) == 1:
                    claimed.append((filing_id, attempts + 1))
        return claimed

    async def build(self, filing_id: uuid.UUID, attempt: int) -> Job | None:
        """The DocumentReference to send, the PDF inline; the subject by its identifiers
        (the DPI knows the patient by IPP or qualified INS, not by Consilium's id)."""
        async with self.db.read() as s:
            row = (
                await s.execute(
                    select(ReportFiling, Document, Dossier, Patient)
                    .join(Document, Document.id == ReportFiling.document_id)
                    .join(Dossier, Dossier.id == ReportFiling.dossier_id)
                    .join(Patient, Patient.id == Dossier.patient_id)
                    .where(ReportFiling.id == filing_id)
                )
            ).first()
            if row is None:
                return None
            filing, doc, dossier, patient = row
            author = await s.get(User, doc.author_id) if doc.author_id else None
            pdf = await storage_for(s).blobs.read(doc.blob_key)
        subject: dict[str, object] = {
            "type": "Patient",
            "display": f"{patient.birth_name} {patient.first_name}",
        }
        identifiers = resources.patient_identifiers(patient, self.settings)
        if identifiers:  # the INS when qualified, else the IPP
            ident = dict(identifiers[0])
            ident.pop("use", None)
            subject["identifier"] = ident
        ref = resources.document_reference(
            doc,
            pdf,
            subject=subject,
            author=author,
            dossier=dossier,
            base=self.settings.public_url,
            url=None,
        )
        data = resources.dump(ref)
        data.pop("id", None)  # the DPI names its own resources
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        return Job(filing.id, attempt, filing.target, doc.id, body)

    async def push_due(self, http: aiohttp.ClientSession) -> bool:
        claimed = await self.claim()
        if not claimed:
            return False
        for filing_id, attempt in claimed:
            job = await self.build(filing_id, attempt)
            out = (
                await self.send(http, job)
                if job is not None
                else Outcome(False, None, "report not found")
            )
            await self.record(filing_id, attempt, out)
        return len(claimed) == BATCH

    async def send(self, http: aiohttp.ClientSession, job: Job) -> Outcome:
        ident = resources.document_identifier(job.document_id)
        headers = {
            "Content-Type": f"{FHIR_JSON}; charset=utf-8",
            "Accept": FHIR_JSON,
            "If-None-Exist": f"identifier={ident['system']}|{ident['value']}",
        }
        if self.settings.fhir_push_authorization:
            headers["Authorization"] = self.settings.fhir_push_authorization
        url = f"{job.target}/DocumentReference"
        try:
            async with http.post(url, data=job.body, headers=headers, allow_redirects=False) as r:
                text = await r.text(errors="replace")
                if 200 <= r.status < 300:
                    return Outcome(True, r.status, "", _remote_id(r.headers.get("Location"), text))
                return Outcome(False, r.status, f"HTTP {r.status}: {_diagnostics(text)}")
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            return Outcome(False, None, f"{type(e).__name__}: {e}")

    async def record(self, filing_id: uuid.UUID, attempt: int, out: Outcome) -> None:
        async with self.db.write() as uow:
            f = await uow.session.get(ReportFiling, filing_id)
            if f is None:
                return
            f.last_attempt_at = utcnow()
            f.last_status_code = out.status
            f.last_error = out.error[:500]
            if out.ok:
                f.status, f.filed_at, f.remote_id = "filed", f.last_attempt_at, out.remote_id[:200]
                audit.record(
                    uow.session,
                    "report.filed",
                    actor=None,
                    actor_label="Dépôt FHIR (DPI)",
                    object_type="dossier",
                    object_id=f.dossier_id,
                    document_id=str(f.document_id),
                    target=f.target,
                    remote_id=f.remote_id,
                    attempts=attempt,
                )
                uow.emit(
                    "report.filed",
                    {
                        "dossier_id": str(f.dossier_id),
                        "document_id": str(f.document_id),
                        "remote_id": f.remote_id,
                    },
                    dossier_id=str(f.dossier_id),
                )
            elif attempt >= self.settings.fhir_push_max_attempts:
                f.status = "failed"
                audit.record(
                    uow.session,
                    "report.filing_failed",
                    actor=None,
                    actor_label="Dépôt FHIR (DPI)",
                    object_type="dossier",
                    object_id=f.dossier_id,
                    document_id=str(f.document_id),
                    target=f.target,
                    error=f.last_error,
                )
            else:
                f.next_attempt_at = f.last_attempt_at + timedelta(seconds=self.backoff(attempt))


def _remote_id(location: str | None, text: str) -> str:
    """The peer's id: from ``Location`` (``…/DocumentReference/<id>/_history/<v>``), else
    the body."""
    if location:
        parts = location.rstrip("/").split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        return parts[-1]
    with contextlib.suppress(ValueError, AttributeError):
        return str(json.loads(text).get("id", ""))
    return ""


def _diagnostics(text: str) -> str:
    """The peer's OperationOutcome, shortly."""
    with contextlib.suppress(ValueError, AttributeError, IndexError, TypeError):
        issue = json.loads(text)["issue"][0]
        return str(issue.get("diagnostics") or issue.get("code"))[:300]
    return text[:300]
