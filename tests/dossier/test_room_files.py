"""Files of a call on a dossier: a document of the dossier sent to the patient in the room,
a screenshot filed into the dossier with its author, time and source, and the limits
(a guest never files into a dossier; another dossier's document is not sent)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from core.context import DB
from core.principal import Principal
from dossier.models import Document
from rooms import attachments
from rooms.models import RoomAttachment
from tests.conftest import make_settings
from tests.rooms.conftest import *  # noqa: F403 (the browsers and sockets fixtures)
from tests.rooms.conftest import create_room
from tests.rooms.test_attachments import admitted_guest, send
from tests.support.documents import blob_files, make_dossier, pdf_bytes, png_bytes

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def settings(database_url, tmp_path, smtp):
    return make_settings(database_url, tmp_path / "data", smtp_host=smtp.host, smtp_port=smtp.port)


async def documents_of(app, dossier_id) -> list[Document]:
    async with app[DB].read() as s:
        rows = await s.execute(select(Document).where(Document.dossier_id == dossier_id))
        return list(rows.scalars())


async def upload_to_dossier(api, dossier_id, filename, data):
    r = await api.post(
        f"/api/v1/dossiers/{dossier_id}/documents?filename={filename}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status == 201, await r.text()
    return await r.json()


async def test_a_host_sends_a_dossier_document_to_the_patient_and_files_a_screenshot(
    app, users, browsers, make_client, sockets
):
    dossier_id = await make_dossier(app[DB], users)
    host = await browsers("requester")
    expert = await browsers("expert")
    room = await create_room(host, kind="expertise", dossier_id=str(dossier_id))
    rid = room["id"]
    hs = await sockets(host)
    await hs.ok("room:join", {"room_id": rid})
    guest, gs, guest_id, guest_pid = await admitted_guest(host, hs, make_client, sockets, rid)

    # "Envoyer un document au patient": from the dossier, to the patient only.
    report = pdf_bytes(1, "Compte-rendu")
    doc = await upload_to_dossier(host, dossier_id, "compte-rendu.pdf", report)
    r = await host.post(
        f"/api/v1/rooms/{rid}/attachments/from-document",
        json={"document_id": doc["id"], "to": guest_pid},
    )
    assert r.status == 201, await r.text()
    a = await r.json()
    assert a["source"] == "dossier_document" and a["dossier_document_id"] == doc["id"]
    assert a["recipient"]["id"] == guest_id and a["sha256"] == doc["sha256"]
    await gs.wait_for("attachment:added", lambda d: d["id"] == a["id"])
    msg = await gs.wait_for("chat:message", lambda m: m["attachment"] is not None)
    r = await guest.get(msg["attachment"]["url"])
    assert r.status == 200 and await r.read() == report
    # The patient still cannot read the dossier itself.
    r = await guest.get(f"/api/v1/dossiers/{dossier_id}/documents/{doc['id']}/content")
    assert r.status in (401, 403, 404)

    # "Capture d'écran": taken by the expert (a participant through the dossier), filed.
    es = await sockets(expert)
    await es.ok("room:join", {"room_id": rid})
    r = await send(
        expert, rid, "capture plaie.png", png_bytes(), source="screenshot", file_into_dossier="true"
    )
    assert r.status == 201, await r.text()
    shot = await r.json()
    assert shot["dossier_document_id"] is not None
    filed = [d for d in await documents_of(app, dossier_id) if d.source == "screenshot"]
    assert len(filed) == 1 and str(filed[0].id) == shot["dossier_document_id"]
    assert filed[0].author_id == users["expert"].id and filed[0].created_at is not None
    assert filed[0].filename == "capture plaie.png"
    r = await expert.get(f"/api/v1/dossiers/{dossier_id}/documents")
    listed = [d for c in (await r.json())["categories"] for d in c["documents"]]
    [seen] = [d for d in listed if d["id"] == shot["dossier_document_id"]]
    assert seen["source"] == "screenshot" and seen["author_label"]
    assert seen["source_label"] == "Capture d'écran pendant l'appel"
    r = await host.get(f"/api/v1/dossiers/{dossier_id}/history")
    added = [e for e in await r.json() if e["action"] == "document.add"]
    assert any(e["details"].get("source") == "screenshot" for e in added)
    # The patient was not sent the capture.
    r = await guest.get(f"/api/v1/rooms/{rid}/attachments/{shot['id']}/content")
    assert r.status == 404

    # The SFU's entry point files a snapshot the same way.
    p = Principal(
        kind="user",
        subject_id=users["expert"].id,
        label="Dr Expert",
        role="practitioner",
        session_id="s",
    )
    out = await attachments.file_capture(
        app, p, uuid.UUID(rid), filename="instantane.png", content=png_bytes(), source="snapshot"
    )
    assert out["dossier_document_id"] is not None
    async with app[DB].read() as s:
        d = await s.get(Document, uuid.UUID(out["dossier_document_id"]))
    assert d.source == "snapshot" and d.author_label == "Dr Expert"


@sqlite_only
async def test_a_guest_never_files_into_the_dossier_and_other_dossiers_stay_out(
    app, users, browsers, make_client, sockets, settings
):
    dossier_id = await make_dossier(app[DB], users)
    other_dossier = await make_dossier(app[DB], users)
    host = await browsers("requester")
    room = await create_room(host, kind="expertise", dossier_id=str(dossier_id))
    rid = room["id"]
    hs = await sockets(host)
    await hs.ok("room:join", {"room_id": rid})
    guest, _, _, _ = await admitted_guest(host, hs, make_client, sockets, rid)
    before = len(await documents_of(app, dossier_id))
    blobs = len(blob_files(settings.data_dir))

    r = await send(guest, rid, "photo.png", png_bytes(), file_into_dossier="true")
    assert r.status == 403 and (await r.json())["code"] == "guest_cannot_file"
    # A guest cannot send dossier documents either (it is for accounts).
    r = await guest.post(
        f"/api/v1/rooms/{rid}/attachments/from-document", json={"document_id": str(uuid.uuid4())}
    )
    assert r.status in (401, 403)

    # A document of another dossier is not sent through this room.
    foreign = await upload_to_dossier(host, other_dossier, "autre.pdf", pdf_bytes(1))
    r = await host.post(
        f"/api/v1/rooms/{rid}/attachments/from-document", json={"document_id": foreign["id"]}
    )
    assert r.status == 404 and (await r.json())["code"] == "document_not_found"

    # A forged file asked to be filed leaves nothing in the room nor in the dossier.
    r = await send(host, rid, "radio.pdf", png_bytes(), file_into_dossier="true")
    assert r.status == 422 and (await r.json())["code"] == "content_mismatch"

    assert len(await documents_of(app, dossier_id)) == before
    async with app[DB].read() as s:
        assert (await s.execute(select(func.count()).select_from(RoomAttachment))).scalar() == 0
    # Only the foreign document's file (and its preview) was added.
    assert len(blob_files(settings.data_dir)) == blobs + 2


@sqlite_only
async def test_filing_refused_by_the_dossier_keeps_nothing(app, users, browsers, settings):
    """A colleague added to the room who is not part of the dossier may send files in the
    room but not file them into the dossier: then the attachment is not kept either."""
    dossier_id = await make_dossier(app[DB], users)
    host = await browsers("requester")
    room = await create_room(host, kind="expertise", dossier_id=str(dossier_id))
    r = await host.post(
        f"/api/v1/rooms/{room['id']}/members",
        json={"user_id": str(users["admin"].id), "role": "participant"},
    )
    assert r.status in (200, 201), await r.text()
    colleague = await browsers("admin")
    blobs = len(blob_files(settings.data_dir))
    r = await send(colleague, room["id"], "capture.png", png_bytes(), file_into_dossier="1")
    assert r.status in (403, 404), await r.text()
    async with app[DB].read() as s:
        assert (await s.execute(select(func.count()).select_from(RoomAttachment))).scalar() == 0
    assert len(blob_files(settings.data_dir)) == blobs
    assert await documents_of(app, dossier_id) == []
    # Without filing, the same file is kept in the room.
    r = await send(colleague, room["id"], "capture.png", png_bytes())
    assert r.status == 201, await r.text()


@sqlite_only
async def test_the_orphan_sweep_spares_the_files_sent_in_rooms(app, browsers, settings):
    from core.storage import of as storage_of
    from dossier.retention import sweep_orphans

    host = await browsers("requester")
    room = await create_room(host)
    r = await send(host, room["id"], "consignes.txt", b"A jeun.")
    assert r.status == 201, await r.text()
    a = await r.json()
    assert await sweep_orphans(app[DB], storage_of(app), min_age_seconds=0) == 0
    r = await host.get(f"/api/v1/rooms/{room['id']}/attachments/{a['id']}/content")
    assert r.status == 200 and await r.read() == b"A jeun."


@sqlite_only
async def test_a_capture_by_someone_outside_the_dossier_stays_in_the_room(app, users, browsers):
    dossier_id = await make_dossier(app[DB], users)
    host = await browsers("requester")
    room = await create_room(host, kind="expertise", dossier_id=str(dossier_id))
    r = await host.post(
        f"/api/v1/rooms/{room['id']}/members",
        json={"user_id": str(users["admin"].id), "role": "participant"},
    )
    assert r.status in (200, 201), await r.text()
    p = Principal(
        kind="user", subject_id=users["admin"].id, label="Admin", role="admin", session_id="s"
    )
    out = await attachments.file_capture(
        app, p, uuid.UUID(room["id"]), filename="cap.png", content=png_bytes(), source="snapshot"
    )
    assert out["dossier_document_id"] is None and out["attachment_id"]
    assert await documents_of(app, dossier_id) == []


async def test_a_dicom_file_goes_into_a_room_only_from_a_holder_of_the_habilitation(
    app, users, browsers
):
    from tests.support.documents import dicom_bytes

    dossier_id = await make_dossier(app[DB], users)
    host = await browsers("requester")
    room = await create_room(host, kind="expertise", dossier_id=str(dossier_id))
    doc = await upload_to_dossier(host, dossier_id, "scanner.dcm", dicom_bytes())
    url = f"/api/v1/rooms/{room['id']}/attachments/from-document"
    r = await host.post(url, json={"document_id": doc["id"]})
    assert r.status == 403 and r.content_type == "application/problem+json"
    assert (await r.json())["code"] == "dicom_download_forbidden"
    admin = await browsers("admin")
    r = await admin.put(f"/api/v1/users/{users['requester'].id}/habilitations/dicom_download")
    assert r.status == 200
    r = await host.post(url, json={"document_id": doc["id"]})
    assert r.status == 201, await r.text()


async def test_the_files_of_a_call_are_grouped_under_its_date(app, users, browsers, sockets):
    """Issue 16 item 2: screenshots, snapshots and files sent in a call held in a room of the
    dossier land in the dossier as « Pendant la téléconsultation du … », not in « Images »."""
    from datetime import UTC, datetime

    dossier_id = await make_dossier(app[DB], users)
    host = await browsers("requester")
    at = datetime(2027, 3, 9, 13, 30, tzinfo=UTC)  # 14:30 in Paris
    room = await create_room(host, dossier_id=str(dossier_id), scheduled_at=at.isoformat())
    rid = room["id"]
    hs = await sockets(host)
    await hs.ok("room:join", {"room_id": rid})
    # Before the call: an image added to the dossier stays in « Images ».
    before = await upload_to_dossier(host, dossier_id, "photo-avant.png", png_bytes())
    for name, source in (("capture.png", "screenshot"), ("ordonnance.pdf", "upload")):
        data = png_bytes() if name.endswith(".png") else pdf_bytes(1, "Ordonnance")
        r = await send(host, rid, name, data, source=source, file_into_dossier="true")
        assert r.status == 201, await r.text()
    p = Principal(
        kind="user",
        subject_id=users["requester"].id,
        label="Dr Requérant",
        role="practitioner",
        session_id="s",
    )
    await attachments.file_capture(
        app, p, uuid.UUID(rid), filename="instantane.png", content=png_bytes(), source="snapshot"
    )
    r = await host.get(f"/api/v1/dossiers/{dossier_id}/documents")
    cats = {c["code"]: c for c in (await r.json())["categories"]}
    call = cats[f"call:{rid}"]
    assert call["label"] == "Pendant la téléconsultation du 09/03/2027"
    assert sorted(d["filename"] for d in call["documents"]) == [
        "capture.png",
        "instantane.png",
        "ordonnance.pdf",
    ]
    assert [d["id"] for d in cats["image"]["documents"]] == [before["id"]]
    assert next(iter(cats)) == f"call:{rid}"  # the calls' groups come first
