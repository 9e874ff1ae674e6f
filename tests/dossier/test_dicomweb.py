"""DICOMweb of a dossier, driven by a real DICOMweb client (dicomweb-client, the library
viewers and gateways use): STOW-RS stores a study, WADO-RS serves it back byte for byte."""

from __future__ import annotations

import asyncio
import io

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from sqlalchemy import select

from core.context import DB
from core.sessions import COOKIE, CSRF_HEADER
from dossier.models import Document
from tests.dossier.test_pacs import _study
from tests.support.documents import make_dossier, pdf_bytes

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


async def test_stow_rs_stores_a_study_in_the_dossier_and_wado_rs_serves_it_back(app, client, users):
    db = app[DB]
    dossier_id = await make_dossier(db, users, birth_name="MOREAU", first_name="Jean", ipp="IPP-3")
    await client.sign_in_as(users["requester"].id)
    http = requests.Session()
    http.cookies.set(
        COOKIE,
        client.client.session.cookie_jar.filter_cookies(client.client.make_url("/"))[COOKIE].value,
    )
    http.headers[CSRF_HEADER] = client.csrf
    url = str(client.client.make_url(f"/api/v1/dossiers/{dossier_id}/dicomweb"))
    dw = DICOMwebClient(url=url, session=http)

    files = _study("MOREAU^JEAN", "19800101", "IPP-3", 2)
    datasets = [pydicom.dcmread(io.BytesIO(b)) for b in files]
    answer = await asyncio.to_thread(dw.store_instances, datasets)
    refs = answer.ReferencedSOPSequence
    assert {r.ReferencedSOPInstanceUID for r in refs} == {d.SOPInstanceUID for d in datasets}
    assert "FailedSOPSequence" not in answer

    async with db.read() as s:
        docs = (await s.execute(select(Document))).scalars().all()
    assert len(docs) == 2 and {d.source for d in docs} == {"dicomweb"}
    assert all(d.dossier_id == dossier_id and not d.identity_mismatch for d in docs)

    study = datasets[0].StudyInstanceUID
    back = await asyncio.to_thread(dw.retrieve_study, study)
    assert sorted(d.SOPInstanceUID for d in back) == sorted(d.SOPInstanceUID for d in datasets)
    one = datasets[1]
    inst = await asyncio.to_thread(
        dw.retrieve_instance, study, one.SeriesInstanceUID, one.SOPInstanceUID
    )
    assert inst.PatientName == "MOREAU^JEAN" and inst.pixel_array.shape == (64, 64)
    meta = await asyncio.to_thread(dw.retrieve_study_metadata, study)
    assert len(meta) == 2 and all(
        "7FE00010" not in m or not m["7FE00010"].get("Value") for m in meta
    )

    # A part that is not DICOM is refused (409: nothing stored), listed as failed.
    bad = await asyncio.to_thread(
        lambda: requests.post(
            f"{url}/studies",
            data=b"--b\r\nContent-Type: application/dicom\r\n\r\n" + pdf_bytes() + b"\r\n--b--\r\n",
            headers={
                "Content-Type": 'multipart/related; type="application/dicom"; boundary=b',
                CSRF_HEADER: client.csrf,
            },
            cookies=http.cookies,
            timeout=30,
        )
    )
    assert bad.status_code == 409 and bad.headers["Content-Type"].startswith(
        "application/problem+json"
    )
    assert bad.json()["code"] == "nothing_stored" and "00081198" in bad.json()

    async with db.read() as s:
        assert len((await s.execute(select(Document))).scalars().all()) == 2

    # An instance the dossier does not hold: problem+json 404.
    r = await client.get(f"/api/v1/dossiers/{dossier_id}/dicomweb/studies/1.2.3")
    assert r.status == 404 and r.content_type == "application/problem+json"
