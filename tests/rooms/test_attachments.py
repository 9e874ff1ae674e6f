"""Files sent during a call: from a host's disk to the invited patient, kept in the room's
table when the room has no dossier, addressed so that only the recipient may fetch them."""

from __future__ import annotations

import aiohttp
import pytest
from sqlalchemy import func, select

from core.audit import AuditEntry
from core.context import DB
from core.principal import Principal
from rooms import attachments
from rooms.models import RoomAttachment
from tests.conftest import make_settings
from tests.rooms.conftest import create_room
from tests.rooms.test_invitations import invite, token_from
from tests.support.documents import blob_files, pdf_bytes, png_bytes, staging_files

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def settings(database_url, tmp_path, smtp):
    return make_settings(database_url, tmp_path / "data", smtp_host=smtp.host, smtp_port=smtp.port)


async def send(api, room_id, filename, data, **fields):
    form = aiohttp.FormData()
    for k, v in fields.items():
        form.add_field(k, str(v))
    form.add_field("file", data, filename=filename, content_type="application/octet-stream")
    return await api.post(f"/api/v1/rooms/{room_id}/attachments", data=form)


async def admitted_guest(host, host_sock, make_client, sockets, room_id, name="Jeanne Petit"):
    """An invited patient, accepted, admitted from the lobby and inside the room."""
    inv = await invite(host, room_id, email=f"{name.split()[0].lower()}@example.org")
    guest = await make_client()
    r = await guest.post(
        f"/api/v1/invitations/{token_from(inv['link'])}/accept", json={"name": name}
    )
    assert r.status == 200, await r.text()
    accepted = await r.json()
    g = await sockets(guest)
    await g.ok("room:join", {"room_id": room_id})
    await host_sock.ok("room:admit", {"guest_id": accepted["guest_id"]})
    await g.wait_for("lobby:admitted")
    joined = await g.ok("room:join", {"room_id": room_id})
    return guest, g, accepted["guest_id"], joined["participant_id"]


async def count(app, model=RoomAttachment) -> int:
    async with app[DB].read() as s:
        return (await s.execute(select(func.count()).select_from(model))).scalar_one()


async def test_a_host_sends_a_file_to_the_patient_who_alone_gets_and_downloads_it(
    app, browsers, make_client, sockets
):
    host = await browsers("requester")
    room = await create_room(host)
    rid = room["id"]
    hs = await sockets(host)
    await hs.ok("room:join", {"room_id": rid})
    guest, gs, guest_id, guest_pid = await admitted_guest(host, hs, make_client, sockets, rid)
    other, os_, other_id, _ = await admitted_guest(
        host, hs, make_client, sockets, rid, name="Paul Martin"
    )

    pdf = pdf_bytes(1, "Ordonnance")
    r = await send(host, rid, "Ordonnance.pdf", pdf, to=guest_pid)
    assert r.status == 201, await r.text()
    a = await r.json()
    assert a["content_type"] == "application/pdf" and a["size"] == len(pdf)
    assert a["recipient"] == {"kind": "guest", "id": guest_id, "label": "Jeanne Petit"}
    assert a["source"] == "upload" and a["dossier_document_id"] is None

    # The patient gets it live, and as a chat item to download.
    added = await gs.wait_for("attachment:added")
    assert added["id"] == a["id"] and added["filename"] == "Ordonnance.pdf"
    msg = await gs.wait_for("chat:message", lambda m: m["attachment"] is not None)
    assert msg["attachment"]["id"] == a["id"] and msg["to"]["id"] == guest_id
    r = await guest.get(msg["attachment"]["url"])
    assert r.status == 200 and await r.read() == pdf
    assert "attachment;" in r.headers["Content-Disposition"]
    assert "Ordonnance.pdf" in r.headers["Content-Disposition"]
    r = await guest.get(f"/api/v1/rooms/{rid}/attachments")
    assert [x["id"] for x in await r.json()] == [a["id"]]

    # The other patient in the same room sees nothing of it.
    r = await other.get(f"/api/v1/rooms/{rid}/attachments/{a['id']}/content")
    assert r.status == 404 and (await r.json())["code"] == "attachment_not_found"
    assert await (await other.get(f"/api/v1/rooms/{rid}/attachments")).json() == []
    assert os_.events("attachment:added") == []
    assert all(m["attachment"] is None for m in os_.events("chat:message"))
    # Nor in the chat history.
    hist = await os_.ok("chat:history", {})
    assert all(m["attachment"] is None for m in hist["messages"])
    hist = await gs.ok("chat:history", {})
    assert [m["attachment"]["id"] for m in hist["messages"] if m["attachment"]] == [a["id"]]

    # A file for everyone reaches everyone.
    r = await send(host, rid, "consignes.txt", "À jeun avant la prise de sang.".encode())
    assert r.status == 201, await r.text()
    everyone = await r.json()
    assert everyone["recipient"] is None and everyone["content_type"] == "text/plain"
    await os_.wait_for("attachment:added", lambda d: d["id"] == everyone["id"])
    r = await other.get(f"/api/v1/rooms/{rid}/attachments/{everyone['id']}/content")
    assert r.status == 200
    # The host sees every file of the room.
    r = await host.get(f"/api/v1/rooms/{rid}/attachments")
    assert {x["id"] for x in await r.json()} == {a["id"], everyone["id"]}

    # A patient sends a photo of a prescription to the host, not to the other patient.
    r = await send(guest, rid, "ordonnance.png", png_bytes(), to=room["owner_id"])
    assert r.status == 201, await r.text()
    await hs.wait_for("attachment:added", lambda d: d["filename"] == "ordonnance.png")
    r = await send(guest, rid, "ordonnance.png", png_bytes(), to=other_id)
    assert r.status == 403 and (await r.json())["code"] == "guest_recipient"
    assert await count(app) == 3

    async with app[DB].read() as s:
        actions = set((await s.execute(select(AuditEntry.action))).scalars())
    assert {"room.attachment.add", "room.attachment.read"} <= actions


@sqlite_only
async def test_a_room_without_dossier_keeps_a_capture_as_its_own_file(
    app, browsers, sockets, users
):
    host = await browsers("requester")
    room = await create_room(host)
    hs = await sockets(host)
    await hs.ok("room:join", {"room_id": room["id"]})
    r = await send(host, room["id"], "capture.png", png_bytes(), source="screenshot")
    assert r.status == 201, await r.text()
    a = await r.json()
    assert a["source"] == "screenshot" and a["dossier_document_id"] is None
    # Asking to file it into a dossier the room does not have is refused, nothing kept.
    r = await send(host, room["id"], "capture.png", png_bytes(), file_into_dossier="true")
    assert r.status == 422 and (await r.json())["code"] == "no_dossier"
    assert await count(app) == 1

    # The SFU's entry point: a capture is kept for the one who took it.
    p = Principal(
        kind="user",
        subject_id=users["requester"].id,
        label="Dr Claire Martin",
        role="practitioner",
        session_id="s",
    )
    out = await attachments.file_capture(
        app,
        p,
        __import__("uuid").UUID(room["id"]),
        filename="instantane.png",
        content=png_bytes(),
        source="snapshot",
    )
    assert out["dossier_document_id"] is None
    async with app[DB].read() as s:
        row = await s.get(RoomAttachment, __import__("uuid").UUID(out["attachment_id"]))
    assert row.source == "snapshot" and row.recipient_id == users["requester"].id
    added = await hs.wait_for("attachment:added", lambda d: d["id"] == out["attachment_id"])
    assert added["recipient"]["id"] == str(users["requester"].id)
    # Captures are not posted in the chat.
    assert all(
        m["attachment"] is None or m["attachment"]["name"] != "instantane.png"
        for m in hs.events("chat:message")
    )


@sqlite_only
async def test_forged_types_path_tricks_and_strangers_are_refused_leaving_nothing(
    app, browsers, settings
):
    host = await browsers("requester")
    stranger = await browsers("expert")
    room = await create_room(host)
    rid = room["id"]
    cases = [
        ("radio.pdf", png_bytes(), 422, "content_mismatch"),
        ("scan.png", png_bytes((400, 400))[:300], 422, "corrupt_file"),
        ("programme.exe", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff", 415, None),
        ("../../etc/passwd.txt", b"root", 422, "bad_filename"),
        ("..\\boot.ini", b"x", 422, "bad_filename"),
        (".htaccess", b"x", 422, "bad_filename"),
        ("vide.txt", b"", 422, "empty_file"),
    ]
    for filename, data, status, code in cases:
        r = await send(host, rid, filename, data)
        assert r.status == status, (filename, await r.text())
        if code:
            assert (await r.json())["code"] == code, filename
    r = await send(host, rid, "a.txt", b"x", source="forged")
    assert r.status == 422 and (await r.json())["code"] == "bad_source"
    r = await send(host, rid, "a.txt", b"x", to="nobody")
    assert r.status == 404 and (await r.json())["code"] == "recipient_not_found"
    r = await send(host, rid, "a.txt", b"x", to=str(__import__("uuid").uuid4()))
    assert r.status == 404
    # Someone outside the room learns nothing about it.
    r = await send(stranger, rid, "a.txt", b"x")
    assert r.status == 404 and (await r.json())["code"] == "room_not_found"
    r = await stranger.get(f"/api/v1/rooms/{rid}/attachments")
    assert r.status == 404
    r = await host.post(
        f"/api/v1/rooms/{rid}/attachments", data=b"x", headers={"Content-Type": "text/plain"}
    )
    assert r.status == 415
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("to", "x")
    r = await host.post(f"/api/v1/rooms/{rid}/attachments", data=form)
    assert r.status == 400
    assert await count(app) == 0
    assert blob_files(settings.data_dir) == [] and staging_files(settings.data_dir) == []


class TestSizeLimit:
    @pytest.fixture
    def settings(self, database_url, tmp_path):
        return make_settings(database_url, tmp_path / "data", max_upload_bytes=4096)

    @sqlite_only
    async def test_a_file_over_the_limit_is_refused_while_streaming(self, app, browsers, settings):
        host = await browsers("requester")
        room = await create_room(host)
        r = await send(host, room["id"], "long.txt", b"x" * 10_000)
        assert r.status == 413, await r.text()
        assert await count(app) == 0
        assert blob_files(settings.data_dir) == [] and staging_files(settings.data_dir) == []


@sqlite_only
async def test_a_closed_room_takes_no_more_files_but_keeps_them_downloadable(app, browsers):
    host = await browsers("requester")
    room = await create_room(host)
    rid = room["id"]
    r = await send(host, rid, "consignes.txt", b"A jeun.")
    assert r.status == 201, await r.text()
    a = await r.json()
    r = await host.post(f"/api/v1/rooms/{rid}/close")
    assert r.status == 200, await r.text()
    r = await send(host, rid, "encore.txt", b"Trop tard.")
    assert r.status == 409 and (await r.json())["code"] == "room_closed"
    r = await host.get(f"/api/v1/rooms/{rid}/attachments/{a['id']}/content")
    assert r.status == 200 and await r.read() == b"A jeun."
    assert await count(app) == 1


@sqlite_only
async def test_a_download_answers_a_content_type_the_document_lists(browsers):
    """The stateful schemathesis run found it: a text file came back as ``text/plain`` where
    the OpenAPI document promised only ``application/octet-stream``."""
    host = await browsers("requester")
    room = await create_room(host)
    r = await send(host, room["id"], "notes.txt", b"Tension 12/8, pouls 70.\n")
    assert r.status == 201, await r.text()
    sent = await r.json()
    r = await host.get(f"/api/v1/rooms/{room['id']}/attachments/{sent['id']}/content")
    assert r.status == 200
    doc = await (await host.get("/api/v1/openapi.json")).json()
    for path in (
        "/api/v1/rooms/{room_id}/attachments/{attachment_id}/content",
        "/api/v1/dossiers/{dossier_id}/documents/{document_id}/content",
    ):
        listed = doc["paths"][path]["get"]["responses"]["200"]["content"]
        assert r.content_type in listed, (path, r.content_type, sorted(listed))
