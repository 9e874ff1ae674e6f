"""The establishment's PACS from the dossier page, against a real Orthanc started here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.audit import AuditEntry
from core.context import DB
from dossier.models import Document
from tests.conftest import free_port, make_settings
from tests.support.documents import dicom_bytes, make_dossier
from tests.support.orthanc import Orthanc, StalledPeer, running_orthanc

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    with running_orthanc(
        tmp_path_factory.mktemp("orthanc"), consilium_ae="CONSILIUM", consilium_port=free_port()
    ) as o:
        yield o


@pytest.fixture
def stalled() -> Iterator[StalledPeer]:
    peer = StalledPeer()
    yield peer
    peer.close()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    if "stalled" in request.fixturenames:
        peer = request.getfixturevalue("stalled")
        pacs = {"pacs_host": "127.0.0.1", "pacs_port": peer.port, "pacs_timeout_seconds": 2}
    else:
        o = request.getfixturevalue("orthanc")
        pacs = {"pacs_host": "127.0.0.1", "pacs_port": o.dicom_port, "pacs_timeout_seconds": 60}
    return make_settings(
        database_url, tmp_path / "data", pacs_ae_title="ORTHANC", dicom_ae_title="CONSILIUM", **pacs
    )


@pytest.fixture
def app(settings: Any, request: pytest.FixtureRequest) -> Any:
    from core.app import create_app
    from dossier.documents import dicom_node

    app = create_app(settings)
    if "orthanc" in request.fixturenames:  # Consilium's C-STORE SCP, known to Orthanc
        o = request.getfixturevalue("orthanc")
        dicom_node.start(app, "127.0.0.1", o.consilium_port)
    return app


def _study(name: str, birth: str, patient_id: str, images: int) -> list[bytes]:
    """A CT study of ``images`` instances sharing one Study and Series UID."""
    import io

    import pydicom
    from pydicom.uid import generate_uid

    study, series = generate_uid(), generate_uid()
    out = []
    for i in range(images):
        ds = pydicom.dcmread(
            io.BytesIO(dicom_bytes(name=name, birth_date=birth, patient_id=patient_id))
        )
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.InstanceNumber = i + 1
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(buf.getvalue())
    return out


async def _wait_pull(client: Any, dossier_id: Any, pull_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r = await client.get(f"/api/v1/dossiers/{dossier_id}/pacs/pulls/{pull_id}")
        assert r.status == 200
        job = await r.json()
        if job["status"] in ("done", "failed"):
            return job  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)
    raise AssertionError("the pull did not finish")


@SQLITE
async def test_a_study_in_the_pacs_is_found_from_the_dossier_and_pulled_into_it(
    app, client, users, orthanc
):
    db = app[DB]
    dossier_id = await make_dossier(db, users, birth_name="DURAND", first_name="Paul", ipp="IPP-77")
    instances = _study("DURAND^PAUL", "19800101", "IPP-77", 3)
    for data in await asyncio.to_thread(lambda: [orthanc.store(d) for d in instances]):
        assert data["Status"] in ("Success", "AlreadyStored")
    # Another patient's exam is not offered.
    await asyncio.to_thread(orthanc.store, _study("AUTRE^ANNE", "19700202", "IPP-1", 1)[0])

    await client.sign_in_as(users["requester"].id)
    r = await client.get(f"/api/v1/dossiers/{dossier_id}/pacs/studies")
    assert r.status == 200, await r.text()
    [study] = (await r.json())["studies"]
    assert study["patient_id"] == "IPP-77" and study["modalities"] == ["CT"]
    assert study["description"] == "SCANNER CEREBRAL"

    r = await client.post(
        f"/api/v1/dossiers/{dossier_id}/pacs/pulls", json={"study_uid": study["study_uid"]}
    )
    assert r.status == 202, await r.text()
    job = await _wait_pull(client, dossier_id, (await r.json())["id"])
    assert job["status"] == "done", job
    assert job["total"] == 3 and job["received"] == 3 and job["documents"] == 3

    r = await client.get(f"/api/v1/dossiers/{dossier_id}/documents")
    listing = await r.json()
    [dicom] = [c for c in listing["categories"] if c["code"] == "dicom"]
    assert dicom["count"] == 3
    doc = dicom["documents"][0]
    assert doc["source"] == "pacs" and doc["source_label"] == "Importé du PACS"
    assert not doc["identity_mismatch"]
    # The images are viewable: the rendered frame of the viewer answers.
    r = await client.get(f"/api/v1/dossiers/{dossier_id}/documents/{doc['id']}/preview?frame=1")
    assert r.status == 200 and r.content_type == "image/png"

    async with db.read() as s:
        actions = [a.action for a in (await s.execute(select(AuditEntry))).scalars()]
    assert "pacs.search" in actions and "pacs.pull" in actions


@SQLITE
async def test_a_pacs_that_stalls_gives_a_clear_error_and_nothing_half_written(
    app, client, users, stalled
):
    db = app[DB]
    dossier_id = await make_dossier(db, users)
    await client.sign_in_as(users["requester"].id)

    r = await client.get(f"/api/v1/dossiers/{dossier_id}/pacs/studies")
    assert r.status == 502
    assert r.content_type == "application/problem+json"
    problem = await r.json()
    assert problem["code"] == "pacs_unreachable" and "ne répond pas" in problem["detail"]

    r = await client.post(f"/api/v1/dossiers/{dossier_id}/pacs/pulls", json={"study_uid": "1.2.3"})
    assert r.status == 202
    job = await _wait_pull(client, dossier_id, (await r.json())["id"])
    assert job["status"] == "failed" and "ne répond pas" in job["error"]
    async with db.read() as s:
        assert (await s.execute(select(Document))).scalars().all() == []

    r = await client.post(f"/api/v1/dossiers/{dossier_id}/pacs/pulls", json={"study_uid": "x; rm"})
    assert r.status == 422 and r.content_type == "application/problem+json"


# Both databases: the reconciliation list is a table of its own.
async def test_an_unmatched_exam_sent_by_the_pacs_waits_in_the_reconciliation_list(
    app, client, users, orthanc, settings
):
    db = app[DB]
    dossier_id = await make_dossier(db, users, birth_name="LEROY", first_name="Lucie", ipp="IPP-5")
    # The PACS pushes (C-STORE) an exam whose patient no dossier knows: a typo in the name
    # and another identifier.
    instances = _study("LEROI^LUCIE", "19800101", "EXT-999", 2)
    ids = [r["ID"] for r in await asyncio.to_thread(lambda: [orthanc.store(d) for d in instances])]
    await asyncio.to_thread(orthanc.send_to, "consilium", ids)

    await client.sign_in_as(users["requester"].id)
    r = await client.get("/api/v1/dicom-inbox")
    assert r.status == 403 and r.content_type == "application/problem+json"

    await client.sign_in_as(users["secretary"].id)
    r = await client.get("/api/v1/dicom-inbox")
    assert r.status == 200, await r.text()
    [exam] = (await r.json())["exams"]
    assert exam["patient_name"] == "LEROI^LUCIE" and exam["patient_id"] == "EXT-999"
    assert exam["instances"] == 2 and exam["reason"] == "no_matching_dossier"
    assert exam["status"] == "pending" and exam["modality"] == "CT"
    async with db.read() as s:
        assert (await s.execute(select(Document))).scalars().all() == []

    r = await client.post(
        f"/api/v1/dicom-inbox/{exam['id']}/attach", json={"dossier_id": str(dossier_id)}
    )
    assert r.status == 200, await r.text()
    assert (await r.json())["status"] == "attached"
    async with db.read() as s:
        docs = (await s.execute(select(Document))).scalars().all()
        actions = [a.action for a in (await s.execute(select(AuditEntry))).scalars()]
    assert len(docs) == 2 and {d.dossier_id for d in docs} == {dossier_id}
    # The name differs from the dossier's patient: the documents carry the warning to confirm.
    assert all(d.identity_mismatch for d in docs)
    assert "dicom.unmatched" in actions and "dicom_inbox.attach" in actions
    assert not list((settings.data_dir / "dicom-inbox").glob("*/*.dcm"))
    r = await client.get("/api/v1/dicom-inbox")
    assert (await r.json())["exams"] == []

    # Attached once: a second attempt is refused.
    r = await client.post(
        f"/api/v1/dicom-inbox/{exam['id']}/attach", json={"dossier_id": str(dossier_id)}
    )
    assert r.status == 409

    # Another unmatched exam is rejected, with why.
    other = _study("X^Y", "20000101", "EXT-1", 1)
    ids = [r["ID"] for r in await asyncio.to_thread(lambda: [orthanc.store(d) for d in other])]
    await asyncio.to_thread(orthanc.send_to, "consilium", ids)
    r = await client.get("/api/v1/dicom-inbox")
    [exam] = (await r.json())["exams"]
    r = await client.post(
        f"/api/v1/dicom-inbox/{exam['id']}/reject", json={"comment": "Patient d'un autre site"}
    )
    assert r.status == 200 and (await r.json())["status"] == "rejected"
    assert not list((settings.data_dir / "dicom-inbox").glob("*/*.dcm"))
