from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from core.context import DB
from dossier.documents.dicom import (
    BadDicom,
    DicomInfo,
    Identity,
    identity_mismatches,
    read_metadata,
    render_preview,
)
from dossier.models import Document
from tests.support.documents import blob_files, dicom_bytes, make_dossier, staging_files

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _png(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def test_ct_preview_applies_rescale_and_window(tmp_path):
    # Stored 0..2047 with intercept -1024 → -1024..1023 HU; window 40/400 → [-160, 240] HU.
    stored = np.array([[0, 864, 1064, 1264, 2000]] * 5, dtype=np.uint16)
    path = tmp_path / "ct.dcm"
    path.write_bytes(dicom_bytes(pixels=stored))
    im = _png(render_preview(path))
    row = [im.getpixel((x, 0)) for x in range(5)]
    # air black; -160 HU at the bottom of the window; 40 HU mid-grey; 240 HU and bone white
    assert row[0] == 0 and row[1] == 0
    assert 120 <= row[2] <= 135
    assert row[3] == 255 and row[4] == 255


def test_monochrome1_is_inverted_and_mr_without_window_uses_its_range(tmp_path):
    pixels = np.array([[0, 500, 1000]] * 3, dtype=np.uint16)
    path = tmp_path / "mr.dcm"
    path.write_bytes(
        dicom_bytes(modality="MR", pixels=pixels, slope=None, intercept=None, window=None)
    )
    assert [_png(render_preview(path)).getpixel((x, 0)) for x in range(3)] == [0, 127, 255]
    path.write_bytes(
        dicom_bytes(
            modality="MR",
            pixels=pixels,
            slope=None,
            intercept=None,
            window=None,
            photometric="MONOCHROME1",
        )
    )
    assert [_png(render_preview(path)).getpixel((x, 0)) for x in range(3)] == [255, 128, 0]


def test_metadata_is_read_and_a_corrupt_file_is_refused(tmp_path):
    path = tmp_path / "ct.dcm"
    data = dicom_bytes(name="DURAND^MARIE", birth_date="19600202", patient_id="IPP9")
    path.write_bytes(data)
    info = read_metadata(path)
    assert (info.patient_family_name, info.patient_birth_date, info.modality) == (
        "DURAND",
        "1960-02-02",
        "CT",
    )
    assert info.study_uid and info.series_uid and info.study_description == "SCANNER CEREBRAL"
    path.write_bytes(data[:200])  # cut right after the preamble and a few tags
    with pytest.raises(BadDicom):
        read_metadata(path)


def test_identity_matching_rules():
    who = Identity(
        family_names=("MARTIN", "DUPONT"),
        given_names=("Jean",),
        birth_date="1980-01-01",
        ids=("1800175123456", "123"),
    )
    ok = DicomInfo(
        patient_name="Martin^Jean",
        patient_family_name="Martin",
        patient_birth_date="1980-01-01",
        patient_id="X",
    )
    assert identity_mismatches(ok, who) == []
    used = DicomInfo(patient_family_name="Dupont", patient_birth_date="1980-01-01")
    assert identity_mismatches(used, who) == []  # used name counts
    by_id = DicomInfo(patient_family_name="MARTEN", patient_id="123")
    assert identity_mismatches(by_id, who) == []  # shared IPP is enough
    other = DicomInfo(
        patient_name="SIMON^MARIE",
        patient_family_name="SIMON",
        patient_birth_date="1960-02-02",
        patient_id="999",
    )
    assert len(identity_mismatches(other, who)) == 2
    nodate = DicomInfo(patient_family_name="MARTIN")
    assert identity_mismatches(nodate, who) == ["Date de naissance absente du fichier DICOM"]


async def _upload(client, dossier_id, name, data):
    return await client.post(
        f"/api/v1/dossiers/{dossier_id}/documents?filename={quote(name)}", data=data
    )


async def test_a_study_of_the_dossier_patient_is_attached_and_another_is_flagged(
    app, client, users
):
    db = app[DB]
    dossier_id = await make_dossier(db, users, birth_name="MARTIN", first_name="Jean", ipp="123")
    await client.sign_in_as(users["requester"].id)

    r = await _upload(client, dossier_id, "scanner.dcm", dicom_bytes(name="MARTIN^JEAN"))
    assert r.status == 201, await r.text()
    doc = await r.json()
    assert doc["category"] == "dicom" and doc["content_type"] == "application/dicom"
    assert doc["identity_mismatch"] is False
    meta = doc["meta"]["dicom"]
    assert meta["modality"] == "CT" and meta["patient_birth_date"] == "1980-01-01"
    r = await client.get(f"/api/v1/dossiers/{dossier_id}/documents/{doc['id']}/preview")
    assert r.status == 200 and _png(await r.read()).size == (64, 64)

    other = dicom_bytes(name="SIMON^MARIE", birth_date="19600202", patient_id="999", modality="MR")
    r = await _upload(client, dossier_id, "IRM", other)  # no extension: the bytes decide
    assert r.status == 201, await r.text()
    flagged = await r.json()
    assert flagged["identity_mismatch"] is True and flagged["pending_identity_check"] is True
    assert "SIMON" in flagged["identity_warning"] and "1960-02-02" in flagged["identity_warning"]

    # The listing shows exams (studies), each with its instances.
    r = await client.get(f"/api/v1/dossiers/{dossier_id}/documents")
    [dicom] = [c for c in (await r.json())["categories"] if c["code"] == "dicom"]
    assert sorted(
        (s["modalities"], s["instances"], s["identity_mismatch"]) for s in dicom["studies"]
    ) == [(["CT"], 1, False), (["MR"], 1, True)]

    # A flagged study is listed with its warning until someone confirms it explicitly.
    r = await client.post(
        f"/api/v1/dossiers/{dossier_id}/documents/{flagged['id']}/confirm-identity"
    )
    assert r.status == 200
    assert (await r.json())["pending_identity_check"] is False
    r = await client.post(f"/api/v1/dossiers/{dossier_id}/documents/{doc['id']}/confirm-identity")
    assert r.status == 409


@sqlite_only
async def test_a_corrupt_dicom_is_refused_with_nothing_left(app, client, users, settings):
    dossier_id = await make_dossier(app[DB], users)
    await client.sign_in_as(users["requester"].id)
    data = dicom_bytes()
    r = await _upload(client, dossier_id, "scanner.dcm", data[:140])
    assert r.status == 422, await r.text()
    assert (await r.json())["code"] == "bad_dicom"
    async with app[DB].read() as s:
        assert (await s.execute(select(func.count()).select_from(Document))).scalar_one() == 0
    assert blob_files(settings.data_dir) == [] and staging_files(settings.data_dir) == []
    _ = Path
