"""Imaging results (seed 002 § 3.1): unseen results on the home page, « Marquer comme vu »,
the exams history by visit, and DICOM downloads kept for holders of the habilitation."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta
from urllib.parse import quote

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import select, update

from core import accounts
from core.audit import AuditEntry
from core.context import DB
from core.db import utcnow
from dossier.models import Document
from tests.support.dicom_series import Study, series_slice
from tests.support.documents import make_dossier

UNSEEN = "/api/v1/me/unseen-results"


async def _upload(client, dossier_id, name, data):
    r = await client.post(
        f"/api/v1/dossiers/{dossier_id}/documents?filename={quote(name)}", data=data
    )
    assert r.status == 201, await r.text()
    return await r.json()


@pytest.fixture
async def results(app, client, users):
    """The expert adds a two-slice CT study and generates the signed report."""
    dossier_id = await make_dossier(app[DB], users, signed_parts=True)
    await client.sign_in_as(users["expert"].id)
    study, series = Study(), generate_uid()
    slices = [
        await _upload(
            client,
            dossier_id,
            f"coupe-{n}.dcm",
            series_slice(study, series, instance=n, level_hu=40.0, z=10.0 * n),
        )
        for n in (1, 2)
    ]
    r = await client.post(f"/api/v1/dossiers/{dossier_id}/report")
    assert r.status == 201, await r.text()
    report = await r.json()
    return {
        "dossier": str(dossier_id),
        "slices": slices,
        "report": report,
        "study": study,
        "series": series,
    }


async def _unseen(client):
    r = await client.get(UNSEEN)
    assert r.status == 200, await r.text()
    return await r.json()


async def _stranger(app):
    async with app[DB].write() as uow:
        return await accounts.create_user(
            uow.session,
            email="autre@exemple.fr",
            password=None,
            role=accounts.Role.practitioner,
            first_name="Paul",
            last_name="Autre",
        )


async def test_results_of_my_dossiers_are_listed_until_opened_or_marked_seen(
    app, client, users, results
):
    # The expert added them: they are not news to him.
    assert (await _unseen(client))["items"] == []
    await client.sign_in_as(users["requester"].id)
    page = await _unseen(client)
    assert page["total"] == 2
    kinds = {i["kind"]: i for i in page["items"]}
    exam, report = kinds["exam"], kinds["report"]
    assert exam["files"] == 2 and exam["modalities"] == ["CT"] and exam["title"]
    assert exam["study_uid"] == results["study"].study_uid
    assert report["first_document_id"] == results["report"]["id"]
    assert report["patient_name"].startswith("MARTIN") and report["dossier_number"]

    # Opening the report (its content) removes it: the read's audit row marks it seen.
    r = await client.get(
        f"/api/v1/dossiers/{results['dossier']}/documents/{results['report']['id']}/content?inline=1"
    )
    assert r.status == 200
    page = await _unseen(client)
    assert [i["kind"] for i in page["items"]] == ["exam"]

    # « Marquer comme vu » on one file of the study marks the whole exam.
    slice_id = results["slices"][1]["id"]
    r = await client.post(f"/api/v1/dossiers/{results['dossier']}/documents/{slice_id}/seen")
    assert r.status == 200
    assert len((await r.json())["document_ids"]) == 2
    assert (await _unseen(client))["items"] == []
    # Still reachable: the dossier lists them.
    r = await client.get(f"/api/v1/dossiers/{results['dossier']}/documents")
    assert (await r.json())["total"] == 3

    async with app[DB].read() as s:
        actions = set(
            (
                await s.execute(
                    select(AuditEntry.action).where(AuditEntry.actor_id == users["requester"].id)
                )
            ).scalars()
        )
    assert {"result.list", "document.read", "document.mark_seen"} <= actions


async def test_viewing_an_image_of_the_exam_marks_it_seen(app, client, users, results):
    await client.sign_in_as(users["requester"].id)
    d, first = results["dossier"], results["slices"][0]["id"]
    # A thumbnail is not an opening.
    assert (await client.get(f"/api/v1/dossiers/{d}/documents/{first}/preview")).status == 200
    assert {i["kind"] for i in (await _unseen(client))["items"]} == {"exam", "report"}
    r = await client.get(f"/api/v1/dossiers/{d}/documents/{first}/preview?frame=1")
    assert r.status == 200
    assert [i["kind"] for i in (await _unseen(client))["items"]] == ["report"]


async def test_results_older_than_30_days_are_not_listed(app, client, users, results):
    async with app[DB].write() as uow:
        await uow.session.execute(update(Document).values(created_at=utcnow() - timedelta(days=31)))
    await client.sign_in_as(users["requester"].id)
    assert (await _unseen(client))["total"] == 0


async def test_a_user_without_access_sees_no_result_and_cannot_mark_one(
    app, client, users, results
):
    other = await _stranger(app)
    await client.sign_in_as(other.id)
    page = await _unseen(client)
    assert page == {"items": [], "total": 0, "page": 1, "per_page": 20}
    r = await client.post(
        f"/api/v1/dossiers/{results['dossier']}/documents/{results['report']['id']}/seen"
    )
    assert r.status == 404 and r.content_type == "application/problem+json"
    # An administrator sees every dossier but takes part in none: nothing is news to them.
    await client.sign_in_as(users["admin"].id)
    assert (await _unseen(client))["total"] == 0
    # The requester still has both.
    await client.sign_in_as(users["requester"].id)
    assert (await _unseen(client))["total"] == 2


async def test_the_listing_is_paged_and_bounded(app, client, users, results):
    await client.sign_in_as(users["requester"].id)
    r = await client.get(UNSEEN, params={"per_page": 1, "page": 2})
    page = await r.json()
    assert page["total"] == 2 and len(page["items"]) == 1 and page["page"] == 2
    r = await client.get(UNSEEN, params={"per_page": 500})
    assert r.status == 422 and r.content_type == "application/problem+json"
    client.sign_out()
    assert (await client.get(UNSEEN)).status == 401


async def test_exams_history_groups_a_visit_with_its_report(app, client, users, results):
    await client.sign_in_as(users["requester"].id)
    r = await client.get(f"/api/v1/dossiers/{results['dossier']}/exam-history")
    assert r.status == 200, await r.text()
    [visit] = await r.json()
    assert visit["current"] and visit["title"] and len(visit["date"]) == 10
    [study] = visit["studies"]
    assert study["files"] == 2 and study["series"] == 1 and study["modalities"] == ["CT"]
    assert [x["document_id"] for x in visit["reports"]] == [results["report"]["id"]]
    assert visit["reports"][0]["seen"] is False
    other = await _stranger(app)
    await client.sign_in_as(other.id)
    r = await client.get(f"/api/v1/dossiers/{results['dossier']}/exam-history")
    assert r.status == 404


async def test_dicom_downloads_need_the_habilitation_frames_do_not(app, client, users, results):
    d, slice_id = results["dossier"], results["slices"][0]["id"]
    await client.sign_in_as(users["requester"].id)
    listing = await (await client.get(f"/api/v1/dossiers/{d}/documents")).json()
    assert listing["dicom_download"] is False
    r = await client.get(f"/api/v1/dossiers/{d}/documents/{slice_id}/content")
    assert r.status == 403 and r.content_type == "application/problem+json"
    problem = await r.json()
    assert problem["code"] == "dicom_download_forbidden" and "habilitation" in problem["detail"]
    series_url = f"/api/v1/dossiers/{d}/dicom-series/{results['series']}"
    r = await client.get(series_url)
    assert r.status == 403 and (await r.json())["code"] == "dicom_download_forbidden"
    # The viewer still shows the exam.
    assert (await client.get(f"/api/v1/dossiers/{d}/documents/{slice_id}/preview?frame=1")).ok
    # « Exporter tout » leaves the DICOM files out.
    r = await client.get(f"/api/v1/dossiers/{d}/export")
    zf = zipfile.ZipFile(io.BytesIO(await r.read()))
    assert not [n for n in zf.namelist() if n.endswith(".dcm")]

    # Only an administrator grants it.
    r = await client.put(f"/api/v1/users/{users['requester'].id}/habilitations/dicom_download")
    assert r.status == 403
    await client.sign_in_as(users["admin"].id)
    r = await client.put(f"/api/v1/users/{users['requester'].id}/habilitations/dicom_download")
    assert r.status == 200 and (await r.json())["habilitations"] == ["dicom_download"]
    r = await client.put(f"/api/v1/users/{users['requester'].id}/habilitations/nope")
    assert r.status == 404 and r.content_type == "application/problem+json"

    await client.sign_in_as(users["requester"].id)
    assert (await (await client.get("/api/v1/me/habilitations")).json())["habilitations"] == [
        "dicom_download"
    ]
    r = await client.get(f"/api/v1/dossiers/{d}/documents/{slice_id}/content")
    assert r.status == 200 and (await r.read())[128:132] == b"DICM"
    r = await client.get(series_url)
    assert r.status == 200 and r.content_type == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(await r.read())).namelist()
    assert sorted(n for n in names if n.endswith(".dcm")) == [
        "0001-coupe-1.dcm",
        "0002-coupe-2.dcm",
    ]
    r = await client.get(f"/api/v1/dossiers/{d}/dicom-series/{generate_uid()}")
    assert r.status == 404

    async with app[DB].read() as s:
        rows = (
            await s.execute(
                select(AuditEntry.outcome, AuditEntry.details).where(
                    AuditEntry.action == "document.download_dicom"
                )
            )
        ).all()
    outcomes = [o for o, _ in rows]
    assert outcomes.count("denied") == 2 and outcomes.count("success") == 1

    await client.sign_in_as(users["admin"].id)
    r = await client.delete(f"/api/v1/users/{users['requester'].id}/habilitations/dicom_download")
    assert r.status == 200 and (await r.json())["habilitations"] == []
