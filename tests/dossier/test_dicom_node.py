from __future__ import annotations

import asyncio
import io

import pydicom
import pytest
from sqlalchemy import select

from core.app import create_app
from core.audit import AuditEntry
from core.context import DB
from dossier.documents import dicom_node
from dossier.models import Document
from tests.conftest import free_port
from tests.support.documents import dicom_bytes, make_dossier

PORT = free_port()


@pytest.fixture
def app(settings):
    app = create_app(settings)
    dicom_node.start(app, "127.0.0.1", PORT)
    return app


def _c_store(data: bytes) -> int:
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    ds = pydicom.dcmread(io.BytesIO(data))
    ae = AE(ae_title="SCANNER")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", PORT, ae_title="CONSILIUM")
    assert assoc.is_established
    try:
        status = assoc.send_c_store(ds)
        return int(status.Status)
    finally:
        assoc.release()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_study_sent_by_a_modality_is_filed_into_its_patients_dossier(
    app, client, users, settings
):
    db = app[DB]
    dossier_id = await make_dossier(db, users, birth_name="MARTIN", ipp="IPP-123")
    await make_dossier(db, users, birth_name="SIMON", first_name="Marie", ipp="IPP-9")

    status = await asyncio.to_thread(_c_store, dicom_bytes(name="MARTIN^JEAN", patient_id="X"))
    assert status == 0x0000
    async with db.read() as s:
        [doc] = (await s.execute(select(Document))).scalars().all()
    assert doc.dossier_id == dossier_id and doc.source == "dicom_node"
    assert doc.author_label == "Consilium" and not doc.identity_mismatch
    assert doc.meta["dicom"]["modality"] == "CT" and doc.preview_key

    # Unknown patient: stored aside, never attached, audited.
    status = await asyncio.to_thread(
        _c_store, dicom_bytes(name="INCONNU^PAUL", birth_date="19991231", patient_id="Z")
    )
    assert status == 0x0000
    async with db.read() as s:
        assert len((await s.execute(select(Document))).scalars().all()) == 1
        [row] = (
            (await s.execute(select(AuditEntry).where(AuditEntry.action == "dicom.unmatched")))
            .scalars()
            .all()
        )
    assert row.details["reason"] == "no_matching_dossier"
    assert len(list((settings.data_dir / "dicom-inbox").glob("*/*.dcm"))) == 1
