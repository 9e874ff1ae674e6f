"""Small uploads that inflate to hundreds of MiB (issue 12, item 1): a zip whose `mimetype`
member inflates to 300 MiB, a 10000 × 10000 PNG of a few hundred KiB. Sent through the real
routes to a real server process, whose peak memory (VmHWM) must not jump."""

from __future__ import annotations

import functools
import io
import struct
import zipfile
import zlib
from pathlib import Path

import aiohttp
import pytest

from tests.security.server import Client, MiB, Server, serve
from tests.support.live import Sock

pytestmark = pytest.mark.slow

# Peak memory a rejected bomb may add to the server: far below what decoding would take.
ALLOWED_GROWTH_KIB = 64 * 1024


@functools.cache
def odt_bomb(inflated: int = 300 * MiB) -> bytes:
    """An .odt whose `mimetype` member is the right type followed by 300 MiB of spaces."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("mimetype")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as member:
            member.write(b"application/vnd.oasis.opendocument.text")
            block = b" " * MiB
            for _ in range(inflated // MiB):
                member.write(block)
        zf.writestr("content.xml", "<office:document-content/>")
    return buf.getvalue()


@functools.cache
def png_of(width: int, height: int, channels: int = 1) -> bytes:
    """A valid, uniform PNG of any size, built row by row (never held decoded)."""
    color_type = {1: 0, 3: 2}[channels]

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    z = zlib.compressobj(6)
    rows = (b"\x00" + b"\x80" * (width * channels)) * 50
    idat = b"".join(z.compress(rows) for _ in range(height // 50))
    idat += z.compress((b"\x00" + b"\x80" * (width * channels)) * (height % 50)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def form(filename: str, data: bytes) -> aiohttp.FormData:
    f = aiohttp.FormData()
    f.add_field("file", data, filename=filename, content_type="application/octet-stream")
    return f


def peak_growth(server: Server, before: dict[str, int]) -> int:
    return server.memory()["VmHWM"] - before["VmHWM"]


async def warm_up(server: Server, c: Client, path: str, ok_file: tuple[str, bytes]) -> None:
    """One ordinary upload first, so lazily imported libraries are not counted as the bomb."""
    status, _, body = await c.call("POST", path, data=form(*ok_file))
    assert status == 201, body


async def admitted_guest(server: Server, host: Client, room_id: str) -> tuple[Client, list[Sock]]:
    status, _, inv = await host.call(
        "POST",
        f"/api/v1/rooms/{room_id}/invitations",
        json={"name": "Mme Jeanne Petit", "email": "jeanne.petit@example.org"},
    )
    assert status == 201, inv
    token = inv["link"].rsplit("/join/", 1)[1]
    guest = Client(server.url)
    status, _, accepted = await guest.call(
        "POST", f"/api/v1/invitations/{token}/accept", json={"name": "Jeanne Petit"}
    )
    assert status == 200, accepted
    hs = await Sock(server.url, host.cookie_header()).connect()
    gs = await Sock(server.url, guest.cookie_header()).connect()
    await hs.ok("room:join", {"room_id": room_id})
    await gs.ok("room:join", {"room_id": room_id})
    await hs.ok("room:admit", {"guest_id": accepted["guest_id"]})
    await gs.wait_for("lobby:admitted", timeout=30)
    await gs.ok("room:join", {"room_id": room_id})
    return guest, [hs, gs]


def assert_problem(status: int, ctype: str, body: object, code: str) -> None:
    assert status == 422, body
    assert ctype == "application/problem+json"
    assert isinstance(body, dict) and body["code"] == code, body
    assert "«" in body["detail"]  # the French sentence names the file


async def test_a_guest_cannot_exhaust_memory_with_a_zip_or_png_bomb_in_a_room(
    tmp_path: Path,
) -> None:
    zip_bomb, png_bomb = odt_bomb(), png_of(10_000, 10_000)
    assert len(zip_bomb) < 400 * 1024 and len(png_bomb) < 400 * 1024
    async with serve(tmp_path) as server:
        host = await server.signed_in("requester")
        socks: list[Sock] = []
        guest: Client | None = None
        try:
            status, _, room = await host.call(
                "POST", "/api/v1/rooms", json={"kind": "teleconsultation", "title": "Suivi"}
            )
            assert status == 201, room
            guest, socks = await admitted_guest(server, host, room["id"])
            path = f"/api/v1/rooms/{room['id']}/attachments"
            await warm_up(server, guest, path, ("photo.png", png_of(800, 600, 3)))

            before = server.memory()
            status, ctype, body = await guest.call("POST", path, data=form("lettre.odt", zip_bomb))
            assert_problem(status, ctype, body, "suspicious_archive")
            status, ctype, body = await guest.call("POST", path, data=form("scan.png", png_bomb))
            assert_problem(status, ctype, body, "image_too_large")
            growth = peak_growth(server, before)
            assert growth < ALLOWED_GROWTH_KIB, f"server peak memory grew by {growth} KiB"
        finally:
            for s in socks:
                await s.close()
            await host.close()
            if guest is not None:
                await guest.close()


async def test_dossier_uploads_refuse_bombs_and_preview_large_images_off_the_server(
    tmp_path: Path,
) -> None:
    async with serve(tmp_path) as server:
        doctor = await server.signed_in("requester")
        try:
            status, _, patient = await doctor.call(
                "POST",
                "/api/v1/patients",
                json={
                    "birth_name": "Dupont",
                    "first_name": "Élise",
                    "sex": "F",
                    "birth_date": "1950-03-12",
                    "birth_commune": "Grenoble",
                    "birth_postcode": "38000",
                    "confirm": True,
                },
            )
            assert status == 201, patient
            status, _, dossier = await doctor.call(
                "POST", "/api/v1/dossiers", json={"patient_id": patient["id"]}
            )
            assert status == 201, dossier
            path = f"/api/v1/dossiers/{dossier['id']}/documents"
            await warm_up(server, doctor, path, ("photo.png", png_of(800, 600, 3)))

            before = server.memory()
            status, ctype, body = await doctor.call("POST", path, data=form("cr.odt", odt_bomb()))
            assert_problem(status, ctype, body, "suspicious_archive")
            status, ctype, body = await doctor.call(
                "POST", path, data=form("scan.png", png_of(10_000, 10_000))
            )
            assert_problem(status, ctype, body, "image_too_large")
            # Under the limit but ~110 MB decoded: accepted, its preview made in a worker.
            status, _, doc = await doctor.call(
                "POST", path, data=form("grand.png", png_of(6_000, 6_000, 3))
            )
            assert status == 201, doc
            assert doc["has_preview"], doc
            growth = peak_growth(server, before)
            assert growth < ALLOWED_GROWTH_KIB, f"server peak memory grew by {growth} KiB"
        finally:
            await doctor.close()


async def test_a_preview_beyond_the_workers_memory_fails_alone(tmp_path: Path) -> None:
    """With little memory per worker, the same image is kept without preview; the server
    and its next previews carry on."""
    async with serve(tmp_path, CONSILIUM_HEAVY_MEMORY_MB="400") as server:
        doctor = await server.signed_in("requester")
        try:
            status, _, patient = await doctor.call(
                "POST",
                "/api/v1/patients",
                json={
                    "birth_name": "Martin",
                    "first_name": "Paul",
                    "sex": "M",
                    "birth_date": "1960-01-02",
                    "birth_commune": "Lyon",
                    "birth_postcode": "69001",
                    "confirm": True,
                },
            )
            assert status == 201, patient
            status, _, dossier = await doctor.call(
                "POST", "/api/v1/dossiers", json={"patient_id": patient["id"]}
            )
            assert status == 201, dossier
            path = f"/api/v1/dossiers/{dossier['id']}/documents"
            status, _, doc = await doctor.call(
                "POST", path, data=form("grand.png", png_of(7_000, 7_000, 3))
            )
            assert status == 201, doc
            assert not doc["has_preview"], doc
            status, _, doc = await doctor.call(
                "POST", path, data=form("petit.png", png_of(800, 600, 3))
            )
            assert status == 201 and doc["has_preview"], doc
        finally:
            await doctor.close()
