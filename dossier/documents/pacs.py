"""The establishment's PACS, from the dossier page (seed 003: « le transfert de l'examen
depuis le PACS est réalisé en tâche de fond »).

* :func:`search_studies` asks the PACS for the patient's exams (C-FIND, study level, Study
  Root): by Patient ID (the IPP, then the INS) and by birth name + birth date; the answers
  are merged by Study Instance UID.
* :func:`start_pull` starts a background job that retrieves one study with C-GET (the PACS
  sends the instances back on the same association: Consilium needs no inbound port). The
  job's progress (instances expected, received) is kept in memory and read by the page.
  Once the PACS says the retrieval is complete, every instance is added to the dossier
  through :func:`dossier.documents.store.add_document` in ONE transaction: a failure at any
  point (the PACS stalls, refuses, an instance is unreadable) leaves the dossier untouched
  and the job "failed" with a French reason.

Every association carries the ACSE, DIMSE and network timeouts of
``settings.pacs_timeout_seconds``: a peer that accepts the TCP connection and never answers
ends in an error, never a hung request. pynetdicom is blocking; it runs in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from core import audit
from core.config import Settings
from core.context import DB, REDIS, SETTINGS
from core.db import Database
from core.errors import Conflict, NotFound, Problem, ValidationFailed
from core.principal import Principal
from core.storage import StagedFile
from core.storage import of as storage_of
from dossier.documents import access
from dossier.documents.dicom import read_metadata
from dossier.documents.store import add_document
from dossier.models import Dossier, Patient

log = logging.getLogger(__name__)
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class PacsError(Problem):
    """The PACS could not be reached or answered with a failure."""

    status, code, title = 502, "pacs_error", "PACS error"


@dataclass
class Study:
    study_uid: str
    study_date: str = ""
    description: str = ""
    modalities: list[str] = field(default_factory=list)
    accession_number: str = ""
    patient_name: str = ""
    patient_id: str = ""
    patient_birth_date: str = ""
    instances: int | None = None


@dataclass
class PullJob:
    id: uuid.UUID
    dossier_id: uuid.UUID
    study_uid: str
    requested_by: str
    status: str = "queued"  # queued → running → filing → done | failed
    total: int | None = None
    received: int = 0
    documents: int = 0
    error: str = ""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                **{k: getattr(self, k) for k in _JOB_PLAIN},
                "id": str(self.id),
                "dossier_id": str(self.dossier_id),
                "created_at": self.created_at.isoformat(),
                "finished_at": self.finished_at.isoformat() if self.finished_at else None,
                "shared_at": time.time(),
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> PullJob:
        d = json.loads(text)
        return cls(
            **{k: d[k] for k in _JOB_PLAIN},
            id=uuid.UUID(d["id"]),
            dossier_id=uuid.UUID(d["dossier_id"]),
            created_at=datetime.fromisoformat(d["created_at"]),
            finished_at=datetime.fromisoformat(d["finished_at"]) if d["finished_at"] else None,
        )


_JOB_PLAIN = ("study_uid", "requested_by", "status", "total", "received", "documents", "error")
#: finished jobs are kept this long for the page (the documents stay)
JOB_KEPT_SECONDS = 86_400
#: how often a running job's progress is shared with the other nodes
JOB_SHARE_SECONDS = 1.0
#: a running job of another process not shared for this long died with its process
JOB_LOST_SECONDS = 30.0


@dataclass
class PacsJobs:
    """The pull jobs: run by the process that started them, and, with Redis, shared so that
    every node or worker (serve --workers) answers the page's progress polls."""

    jobs: dict[uuid.UUID, PullJob] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    redis: Any = None
    prefix: str = ""

    def _key(self, dossier_id: uuid.UUID) -> str:
        return f"{self.prefix}pacs:jobs:{dossier_id}"

    async def share(self, job: PullJob) -> None:
        """Publish ``job``'s state for the other processes (nothing without Redis)."""
        if self.redis is None:
            return
        key = self._key(job.dossier_id)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, str(job.id), job.to_json())
                pipe.expire(key, JOB_KEPT_SECONDS * 2)
                await pipe.execute()
        except Exception:  # progress is a courtesy: the import goes on
            log.warning("could not share PACS job %s", job.id, exc_info=True)

    async def of_dossier(self, dossier_id: uuid.UUID) -> list[PullJob]:
        """The dossier's jobs of every process (this process's own are the freshest)."""
        found: dict[uuid.UUID, PullJob] = {}
        if self.redis is not None:
            for raw in (await self.redis.hgetall(self._key(dossier_id))).values():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    job = PullJob.from_json(raw)
                    shared_at = float(json.loads(raw)["shared_at"])
                    if job.finished_at is None and time.time() - shared_at > JOB_LOST_SECONDS:
                        job.status, job.error = "failed", "Transfert interrompu (arrêt du serveur)."
                        job.finished_at = datetime.fromtimestamp(shared_at, UTC)
                    found[job.id] = job
        for job in self.jobs.values():
            if job.dossier_id == dossier_id:
                found[job.id] = job
        now = datetime.now(UTC)
        return [
            j
            for j in found.values()
            if j.finished_at is None or (now - j.finished_at).total_seconds() <= JOB_KEPT_SECONDS
        ]


JOBS = web.AppKey("pacs_jobs", PacsJobs)


def jobs_of(app: web.Application) -> PacsJobs:
    try:
        return app[JOBS]
    except KeyError:
        raise RuntimeError("pacs.setup(app) was not called") from None


def setup(app: web.Application) -> None:
    """Keep the pull jobs of this process; cancel the running ones at shutdown."""
    app[JOBS] = PacsJobs(redis=app[REDIS], prefix=app[SETTINGS].redis_prefix)

    async def ctx(app: web.Application) -> Any:
        yield
        tasks = list(app[JOBS].tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t

    app.cleanup_ctx.append(ctx)


# -- the DICOM side (blocking, runs in a thread) ------------------------------------------


def _require_configured(settings: Settings) -> None:
    if not (settings.pacs_ae_title and settings.pacs_host):
        raise Conflict(
            "Aucun PACS n'est configuré pour cet établissement.", code="pacs_not_configured"
        )


def _ae(settings: Settings) -> Any:
    from pynetdicom import AE

    ae = AE(ae_title=settings.dicom_ae_title)
    t = settings.pacs_timeout_seconds
    ae.acse_timeout = t
    ae.dimse_timeout = t
    ae.network_timeout = t
    ae.connection_timeout = t
    return ae


def _where(settings: Settings) -> str:
    return f"{settings.pacs_ae_title}@{settings.pacs_host}:{settings.pacs_port}"


def _association_error(settings: Settings, assoc: Any) -> PacsError:
    if assoc.is_rejected:
        return PacsError(
            f"Le PACS {_where(settings)} a refusé l'association "
            f"(titre AE « {settings.dicom_ae_title} » inconnu ?).",
            code="pacs_rejected",
        )
    return PacsError(
        f"Le PACS {_where(settings)} ne répond pas "
        f"(aucune réponse en {settings.pacs_timeout_seconds:g} s).",
        code="pacs_unreachable",
    )


def _str(ds: Any, keyword: str) -> str:
    v = ds.get(keyword, "")
    if v is None:
        return ""
    return str(v).strip()


def c_find_studies(settings: Settings, queries: list[dict[str, str]]) -> list[Study]:
    """Run the study-level C-FINDs ``queries`` on one association; merged by Study UID."""
    from pydicom.dataset import Dataset
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelFind,
    )

    ae = _ae(settings)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate(settings.pacs_host, settings.pacs_port, ae_title=settings.pacs_ae_title)
    if not assoc.is_established:
        raise _association_error(settings, assoc)
    found: dict[str, Study] = {}
    try:
        for q in queries:
            ds = Dataset()
            ds.QueryRetrieveLevel = "STUDY"
            for kw in (
                "PatientName",
                "PatientID",
                "PatientBirthDate",
                "StudyInstanceUID",
                "StudyDate",
                "StudyDescription",
                "ModalitiesInStudy",
                "AccessionNumber",
                "NumberOfStudyRelatedInstances",
            ):
                setattr(ds, kw, q.get(kw, ""))
            for status, ident in assoc.send_c_find(ds, StudyRootQueryRetrieveInformationModelFind):
                code = getattr(status, "Status", None)
                if code is None:
                    raise PacsError(
                        f"Le PACS {_where(settings)} n'a pas terminé la recherche "
                        f"(aucune réponse en {settings.pacs_timeout_seconds:g} s).",
                        code="pacs_timeout",
                    )
                if code in (0xFF00, 0xFF01) and ident is not None:
                    uid = _str(ident, "StudyInstanceUID")
                    if not uid or uid in found:
                        continue
                    mods = ident.get("ModalitiesInStudy", "") or []
                    if isinstance(mods, str):
                        mods = [m for m in mods.split("\\") if m]
                    n = _str(ident, "NumberOfStudyRelatedInstances")
                    found[uid] = Study(
                        study_uid=uid,
                        study_date=_str(ident, "StudyDate"),
                        description=_str(ident, "StudyDescription"),
                        modalities=[str(m) for m in mods],
                        accession_number=_str(ident, "AccessionNumber"),
                        patient_name=_str(ident, "PatientName"),
                        patient_id=_str(ident, "PatientID"),
                        patient_birth_date=_str(ident, "PatientBirthDate"),
                        instances=int(n) if n.isdigit() else None,
                    )
                elif code != 0x0000:
                    raise PacsError(
                        f"Le PACS {_where(settings)} a répondu par une erreur (0x{code:04X}).",
                        code="pacs_find_failed",
                    )
    finally:
        if assoc.is_established:
            assoc.release()
    return sorted(found.values(), key=lambda s: s.study_date, reverse=True)


def _storage_contexts() -> list[Any]:
    from pynetdicom import StoragePresentationContexts

    # 128 presentation contexts at most, one of them for C-GET itself.
    return list(StoragePresentationContexts[:120])


def c_get_study(
    settings: Settings,
    study_uid: str,
    into: Path,
    on_progress: Callable[[int | None, int], None],
) -> list[Path]:
    """Retrieve every instance of ``study_uid`` into the folder ``into`` (C-GET)."""
    from pydicom.dataset import Dataset
    from pynetdicom import build_role, evt
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelGet,
    )

    ae = _ae(settings)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    roles = []
    for cx in _storage_contexts():
        ae.add_requested_context(cx.abstract_syntax)
        roles.append(build_role(cx.abstract_syntax, scp_role=True))
    paths: list[Path] = []
    total: list[int | None] = [None]

    def on_store(event: Any) -> int:
        path = into / f"{len(paths):05d}-{uuid.uuid4().hex}.dcm"
        with path.open("wb") as f:
            f.write(event.encoded_dataset())
        paths.append(path)
        on_progress(total[0], len(paths))
        return 0x0000

    assoc = ae.associate(
        settings.pacs_host,
        settings.pacs_port,
        ae_title=settings.pacs_ae_title,
        ext_neg=roles,
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    if not assoc.is_established:
        raise _association_error(settings, assoc)
    try:
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = study_uid
        final: int | None = None
        failed = 0
        for status, _ident in assoc.send_c_get(ds, StudyRootQueryRetrieveInformationModelGet):
            code = getattr(status, "Status", None)
            if code is None:
                raise PacsError(
                    f"Le PACS {_where(settings)} s'est interrompu pendant le transfert "
                    f"(aucune réponse en {settings.pacs_timeout_seconds:g} s).",
                    code="pacs_timeout",
                )
            counts = [
                int(status.get(k, 0) or 0)
                for k in (
                    "NumberOfRemainingSuboperations",
                    "NumberOfCompletedSuboperations",
                    "NumberOfFailedSuboperations",
                    "NumberOfWarningSuboperations",
                )
            ]
            if code == 0xFF00:
                total[0] = sum(counts)
                on_progress(total[0], len(paths))
            else:
                final = code
                failed = counts[2]
    finally:
        if assoc.is_established:
            assoc.release()
    if final != 0x0000 or failed:
        raise PacsError(
            f"Le PACS {_where(settings)} n'a pas transmis tout l'examen "
            f"(statut 0x{(final or 0):04X}, {failed} image(s) en échec).",
            code="pacs_get_failed",
        )
    if not paths:
        raise PacsError("Le PACS n'a envoyé aucune image pour cet examen.", code="pacs_empty")
    return paths


# -- the actions ----------------------------------------------------------------------------


async def _patient(db: Database, principal: Principal, dossier_id: uuid.UUID) -> Patient:
    async with db.read() as session:
        await access.require_document_write(session, principal, dossier_id)
        dossier = await session.get(Dossier, dossier_id)
        if dossier is None:
            raise NotFound("Dossier introuvable.", code="dossier_not_found")
        patient = await session.get(Patient, dossier.patient_id)
        if patient is None:
            raise NotFound("Patient introuvable.", code="patient_not_found")
        return patient


def patient_queries(p: Patient) -> list[dict[str, str]]:
    """The C-FIND keys for a patient: by each identifier, then by name and birth date."""
    out = [{"PatientID": i} for i in (p.ipp, p.ins) if i]
    birth = p.birth_date.strftime("%Y%m%d")
    for name in dict.fromkeys(n for n in (p.birth_name, p.used_name) if n):
        out.append({"PatientName": f"{name.upper()}*", "PatientBirthDate": birth})
    return out


async def search_studies(
    db: Database, settings: Settings, principal: Principal, dossier_id: uuid.UUID
) -> list[Study]:
    """The patient's exams known to the PACS (audited: a search about this patient)."""
    patient = await _patient(db, principal, dossier_id)
    _require_configured(settings)
    studies = await asyncio.to_thread(c_find_studies, settings, patient_queries(patient))
    await audit.record_now(
        db,
        "pacs.search",
        actor=principal,
        object_type="dossier",
        object_id=dossier_id,
        pacs=_where(settings),
        count=len(studies),
    )
    return studies


async def start_pull(
    app: web.Application, principal: Principal, dossier_id: uuid.UUID, study_uid: str
) -> PullJob:
    """Start retrieving ``study_uid`` into the dossier in the background."""
    settings: Settings = app[SETTINGS]
    db: Database = app[DB]
    if not _UID.match(study_uid) or len(study_uid) > 64:
        raise ValidationFailed("Identifiant d'examen DICOM invalide.", code="bad_study_uid")
    await _patient(db, principal, dossier_id)
    _require_configured(settings)
    registry = jobs_of(app)
    # Finished jobs are kept a day for the page, then forgotten (the documents stay).
    now = datetime.now(UTC)
    for old in [
        j.id
        for j in registry.jobs.values()
        if j.finished_at is not None and (now - j.finished_at).total_seconds() > 86_400
    ]:
        del registry.jobs[old]
    for j in await registry.of_dossier(dossier_id):
        if (
            j.dossier_id == dossier_id
            and j.study_uid == study_uid
            and j.status
            in (
                "queued",
                "running",
                "filing",
            )
        ):
            return j
    job = PullJob(uuid.uuid4(), dossier_id, study_uid, principal.label)
    registry.jobs[job.id] = job
    await registry.share(job)
    await audit.record_now(
        db,
        "pacs.pull",
        actor=principal,
        object_type="dossier",
        object_id=dossier_id,
        study_uid=study_uid,
        job_id=str(job.id),
        pacs=_where(settings),
    )
    task = asyncio.get_running_loop().create_task(_run_pull(app, principal, job))
    registry.tasks.add(task)
    task.add_done_callback(registry.tasks.discard)
    return job


async def jobs_for(app: web.Application, dossier_id: uuid.UUID) -> list[PullJob]:
    return sorted(
        await jobs_of(app).of_dossier(dossier_id), key=lambda j: j.created_at, reverse=True
    )


async def readable_jobs(
    app: web.Application, principal: Principal, dossier_id: uuid.UUID
) -> list[PullJob]:
    async with app[DB].read() as session:
        await access.require_document_read(session, principal, dossier_id)
    return await jobs_for(app, dossier_id)


async def _run_pull(app: web.Application, principal: Principal, job: PullJob) -> None:
    settings: Settings = app[SETTINGS]
    db: Database = app[DB]
    storage = storage_of(app)
    into = storage.staging.root / "once" / f"pacs-{job.id.hex}"
    registry = jobs_of(app)
    job.status = "running"

    async def share_progress() -> None:  # the page may poll another node or worker
        while True:
            await registry.share(job)
            await asyncio.sleep(JOB_SHARE_SECONDS)

    sharing = asyncio.get_running_loop().create_task(share_progress())

    def progress(total: int | None, received: int) -> None:
        job.total, job.received = total, received

    try:
        await asyncio.to_thread(into.mkdir, parents=True, exist_ok=True)
        paths = await asyncio.to_thread(c_get_study, settings, job.study_uid, into, progress)
        job.status = "filing"

        def stage(path: Path) -> tuple[StagedFile, str]:
            data = path.read_bytes()  # one instance: a few MB at most
            info = read_metadata(path)
            name = f"{info.modality or 'DICOM'} {info.study_date} {info.sop_instance_uid[-12:]}.dcm"
            return StagedFile(path, len(data), hashlib.sha256(data).hexdigest(), data[:65536]), name

        async with db.write() as uow:  # all the study or nothing
            for path in paths:
                staged, name = await asyncio.to_thread(stage, path)
                await add_document(
                    uow,
                    principal,
                    job.dossier_id,
                    name,
                    staged,
                    "pacs",
                    meta={"pacs_job": str(job.id)},
                )
        job.documents = len(paths)
        job.status = "done"
    except asyncio.CancelledError:
        job.status, job.error = "failed", "Transfert interrompu (arrêt du serveur)."
        raise
    except Exception as e:
        if isinstance(e, Problem):
            job.error = e.detail or e.title
        else:
            log.exception("PACS pull %s failed", job.id)
            job.error = "Le transfert depuis le PACS a échoué ; aucune image n'a été ajoutée."
        job.status = "failed"
        await audit.record_now(
            db,
            "pacs.pull_failed",
            actor=principal,
            object_type="dossier",
            object_id=job.dossier_id,
            outcome="failure",
            study_uid=job.study_uid,
            job_id=str(job.id),
            reason=job.error,
        )
    finally:
        job.finished_at = datetime.now(UTC)
        sharing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sharing
        await registry.share(job)

        def cleanup() -> None:
            if into.exists():
                for p in into.iterdir():
                    p.unlink(missing_ok=True)
                into.rmdir()

        with contextlib.suppress(OSError):
            await asyncio.to_thread(cleanup)
