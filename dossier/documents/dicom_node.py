"""A DICOM node (C-STORE SCP, pynetdicom): studies sent by a modality or a PACS are filed
into the dossier of their patient (seed 003: "l'examen est associé automatiquement au
télédossier").

Each received instance is written to the staging area, then matched: the open dossiers
(not closed) whose patient shares an identifier with the DICOM Patient ID (INS or IPP), or
else has the same family name and birth date. Exactly one candidate → the instance is added
to it through :func:`dossier.documents.add_document` (``source="dicom_node"``, author
"Consilium"). None or several → nothing is attached: the exam lands in the reconciliation
list (:mod:`dossier.documents.inbox`, its file in ``<data_dir>/dicom-inbox/<study>/``) with
an audit row ``dicom.unmatched`` that says why. The
modality always gets "success" once the file is safely stored, so it does not resend.

pynetdicom serves associations in its own threads; each instance is handed to the server's
event loop and the thread waits for the result.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import ColumnElement, or_, select

from core.context import DB, SETTINGS
from core.db import Database
from core.storage import StagedFile, Storage
from core.storage import of as storage_of
from dossier.documents import inbox
from dossier.documents.dicom import DicomInfo, Identity, identity_mismatches, read_metadata
from dossier.documents.store import add_document
from dossier.models import Dossier, DossierState, Patient

log = logging.getLogger(__name__)


@dataclass
class Filed:
    dossier_id: uuid.UUID | None
    document_id: uuid.UUID | None
    reason: str = ""


async def candidate_dossiers(db: Database, info: DicomInfo) -> list[uuid.UUID]:
    """Open dossiers whose patient is the study's patient."""
    ids = [i for i in [info.patient_id, *info.other_patient_ids] if i]
    async with db.read() as session:
        conds: list[ColumnElement[bool]] = []
        if ids:
            conds += [Patient.ins.in_(ids), Patient.ipp.in_(ids)]
        if info.patient_birth_date:
            conds.append(Patient.birth_date == date.fromisoformat(info.patient_birth_date))
        if not conds:
            return []
        rows = (
            await session.execute(
                select(Dossier, Patient)
                .join(Patient, Patient.id == Dossier.patient_id)
                .where(Dossier.state != DossierState.closed, or_(*conds))
                .order_by(Dossier.modified_at.desc())
            )
        ).all()
    out: list[uuid.UUID] = []
    for d, p in rows:
        who = Identity(
            family_names=tuple(n for n in (p.birth_name, p.used_name) if n),
            given_names=(p.first_name,),
            birth_date=p.birth_date.isoformat(),
            ids=tuple(i for i in (p.ins, p.ipp) if i),
        )
        if not identity_mismatches(info, who):
            out.append(d.id)
    return out


async def file_instance(db: Database, storage: Storage, data_dir: Path, path: Path) -> Filed:
    """File one received DICOM file (already on disk in the staging area)."""
    info = await asyncio.to_thread(read_metadata, path)
    candidates = await candidate_dossiers(db, info)
    if len(candidates) == 1:
        import hashlib

        def stage() -> StagedFile:
            data = path.read_bytes()  # one instance: a few MB at most
            return StagedFile(path, len(data), hashlib.sha256(data).hexdigest(), data[:65536])

        staged = await asyncio.to_thread(stage)
        name = f"{info.modality or 'DICOM'} {info.study_date} {info.sop_instance_uid[-12:]}.dcm"
        async with db.write() as uow:
            doc = await add_document(
                uow, None, candidates[0], name, staged, "dicom_node", check_permission=False
            )
        return Filed(candidates[0], doc.id)
    reason = "no_matching_dossier" if not candidates else "several_matching_dossiers"
    await inbox.keep_unmatched(db, data_dir, path, info, reason, candidates)
    return Filed(None, None, reason)


class DicomNode:
    """The C-STORE SCP of one server process."""

    def __init__(self, app: web.Application, *, ae_title: str = "CONSILIUM") -> None:
        self.app = app
        self.ae_title = ae_title
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None

    def _handle_store(self, event: Any) -> int:
        assert self.loop is not None
        storage = storage_of(self.app)
        settings = self.app[SETTINGS]
        path = storage.staging.root / "once" / f"{uuid.uuid4().hex}.part"
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
            ds.save_as(str(path), enforce_file_format=True)
            fut = asyncio.run_coroutine_threadsafe(
                file_instance(self.app[DB], storage, Path(settings.data_dir), path), self.loop
            )
            fut.result(timeout=120)
            return 0x0000
        except Exception:
            log.exception("C-STORE: could not file the instance")
            path.unlink(missing_ok=True)
            return 0xC210  # Cannot understand / processing failure

    def start(self, host: str, port: int) -> None:
        from pynetdicom import AE, AllStoragePresentationContexts, evt
        from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

        self.loop = asyncio.get_running_loop()
        ae = AE(ae_title=self.ae_title)
        ae.supported_contexts = AllStoragePresentationContexts
        ae.add_supported_context(Verification)
        self._server = ae.start_server(
            (host, port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._handle_store)]
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None


def start(app: web.Application, host: str, port: int) -> None:
    """Serve C-STORE on ``host:port`` while the app runs."""

    async def ctx(app: web.Application) -> Any:
        node = DicomNode(app, ae_title=app[SETTINGS].dicom_ae_title)
        node.start(host, port)
        try:
            yield
        finally:
            await asyncio.to_thread(node.stop)

    app.cleanup_ctx.append(ctx)
