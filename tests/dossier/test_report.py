from __future__ import annotations

import re
from urllib.parse import quote

import pymupdf
import pytest

from core.context import DB
from dossier.report.signing import verify_pdf
from tests.support.documents import make_dossier, pdf_bytes, png_bytes, signature_png

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


async def test_report_is_built_signed_and_verified_unaltered(app, client, users, settings):
    dossier_id = await make_dossier(app[DB], users, state="expertised", signed_parts=True)
    await client.sign_in_as(users["requester"].id)
    r = await client.post(
        f"/api/v1/dossiers/{dossier_id}/documents?filename=ECG.pdf", data=pdf_bytes(1)
    )
    assert r.status == 201
    await client.sign_in_as(users["expert"].id)
    r = await client.post(f"/api/v1/dossiers/{dossier_id}/report")
    assert r.status == 201, await r.text()
    report = await r.json()
    assert report["category"] == "report" and report["source"] == "report"
    assert report["filename"].startswith("dossier.crpt MARTIN Jean ")
    assert report["meta"]["signed"] is True

    r = await client.get(f"/api/v1/dossiers/{dossier_id}/documents/{report['id']}/content")
    pdf = await r.read()
    with pymupdf.open(stream=pdf, filetype="pdf") as doc:
        text = "\n".join(page.get_text() for page in doc)
        pages = doc.page_count
    for expected in (
        "Compte-rendu de téléexpertise",
        "MARTIN",
        "01/01/1980",
        "Urgent",
        "Recueilli",
        "ECG anormal ?",
        "L'examen paraît normal",
        "Signée par Dr Claire Martin",
        "(heure de Paris)",
        "ECG.pdf",
        f"Page 1 / {pages}",
    ):
        assert expected in text, expected
    # No used name in the identity: a dash, as on the dossier page, not the birth name again.
    assert re.search(r"Nom\s+utilisé\s*–", text), repr(text[:400])

    # « Signature » on the signed report: refused for what the document is, even to someone
    # without a signature picture, with a reason the page shows as it is.
    r = await client.post(
        f"/api/v1/dossiers/{dossier_id}/documents/{report['id']}/stamp",
        json={"pages": "all", "x": 0.5, "y": 0.5, "width": 0.2},
    )
    problem = await r.json()
    assert r.status == 422 and problem["code"] == "report_locked", problem
    assert "signé" in problem["detail"]

    r = await client.get(f"/api/v1/dossiers/{dossier_id}/documents/{report['id']}/verification")
    v = await r.json()
    assert v["ok"] and v["intact"] and v["trusted"] and v["covers_whole_file"]

    # One changed byte inside the signed range breaks it.
    tampered = bytearray(pdf)
    i = pdf.index(b"stream", 200) + 40
    tampered[i] ^= 0x01
    v2 = await verify_pdf(settings.data_dir, bytes(tampered))
    assert v2.signed and not v2.intact and not v2.ok

    # The installation's root is public, to verify reports elsewhere.
    r = await client.get("/api/v1/signing/root.pem")
    assert (await r.read()).startswith(b"-----BEGIN CERTIFICATE-----")


@sqlite_only
async def test_signature_picture_is_stamped_on_every_page_as_a_new_version(app, client, users):
    dossier_id = await make_dossier(app[DB], users)
    await client.sign_in_as(users["expert"].id)
    r = await client.post(
        f"/api/v1/dossiers/{dossier_id}/documents?filename={quote('ordonnance.pdf')}",
        data=pdf_bytes(3),
    )
    original = await r.json()
    stamp_url = f"/api/v1/dossiers/{dossier_id}/documents/{original['id']}/stamp"
    r = await client.post(stamp_url, json={"x": 0.6, "y": 0.8, "width": 0.3})
    assert r.status == 422 and (await r.json())["code"] == "no_signature"

    r = await client.put(
        "/api/v1/me/signature", data=b"not an image", headers={"Content-Type": "image/png"}
    )
    assert r.status == 422 and (await r.json())["code"] == "bad_signature_image"
    r = await client.put(
        "/api/v1/me/signature", data=signature_png(), headers={"Content-Type": "image/png"}
    )
    assert r.status == 200, await r.text()
    assert (await r.json())["width"] == 300

    r = await client.post(stamp_url, json={"x": 0.6, "y": 0.8, "width": 0.3})
    assert r.status == 201, await r.text()
    stamped = await r.json()
    assert stamped["version"] == 2 and stamped["previous_id"] == original["id"]
    assert stamped["source"] == "stamp" and stamped["sha256"] != original["sha256"]
    r = await client.get(f"/api/v1/dossiers/{dossier_id}/documents/{stamped['id']}/content")
    with pymupdf.open(stream=await r.read(), filetype="pdf") as doc:
        for page in doc:
            [img] = page.get_image_info()
            x0, y0, x1, _ = img["bbox"]
            w, h = page.rect.width, page.rect.height
            assert abs(x0 - 0.6 * w) < 1 and abs(y0 - 0.8 * h) < 1 and abs(x1 - 0.9 * w) < 1

    # Only the first page, on request; and a photo can be signed too.
    r = await client.post(stamp_url, json={"pages": [1], "x": 0.1, "y": 0.1, "width": 0.2})
    r = await client.get(
        f"/api/v1/dossiers/{dossier_id}/documents/{(await r.json())['id']}/content"
    )
    with pymupdf.open(stream=await r.read(), filetype="pdf") as doc:
        assert [len(p.get_image_info()) for p in doc] == [1, 0, 0]
    r = await client.post(
        f"/api/v1/dossiers/{dossier_id}/documents?filename=photo.png", data=png_bytes((200, 200))
    )
    photo = await r.json()
    r = await client.post(
        f"/api/v1/dossiers/{dossier_id}/documents/{photo['id']}/stamp",
        json={"x": 0.5, "y": 0.5, "width": 0.5},
    )
    assert r.status == 201, await r.text()
    r = await client.post(stamp_url, json={"x": 0.9, "y": 0.1, "width": 0.5})
    assert r.status == 422  # would leave the page
