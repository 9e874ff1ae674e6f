from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile

from sqlalchemy import select

from core.audit import AuditEntry
from core.context import DB
from tests.support.documents import dicom_bytes, make_dossier, pdf_bytes, png_bytes


async def test_export_everything_gives_a_zip_of_report_and_documents_with_a_manifest(
    app, client, users
):
    dossier_id = await make_dossier(app[DB], users, state="expertised", signed_parts=True)
    # DICOM files are exported for holders of the habilitation (seed 002 § 3.1.3).
    await client.sign_in_as(users["admin"].id)
    r = await client.put(f"/api/v1/users/{users['requester'].id}/habilitations/dicom_download")
    assert r.status == 200
    await client.sign_in_as(users["requester"].id)
    files = {
        "ECG.pdf": pdf_bytes(2),
        "photo.png": png_bytes(),
        "scanner.dcm": dicom_bytes(),
    }
    for name, data in files.items():
        r = await client.post(f"/api/v1/dossiers/{dossier_id}/documents?filename={name}", data=data)
        assert r.status == 201, await r.text()
    # Same name twice: both kept, told apart in the archive.
    r = await client.post(
        f"/api/v1/dossiers/{dossier_id}/documents?filename=ECG.pdf", data=pdf_bytes(1)
    )
    r = await client.get(f"/api/v1/dossiers/{dossier_id}/export")
    assert r.status == 200, await r.text()
    assert r.content_type == "application/zip"
    assert "attachment" in r.headers["Content-Disposition"]
    assert re.search(r'filename="dossier-TE-\d{4}-\d{6}\.zip"', r.headers["Content-Disposition"])
    z = zipfile.ZipFile(io.BytesIO(await r.read()))
    assert z.testzip() is None
    manifest = json.loads(z.read("manifest.json"))
    paths = [f["path"] for f in manifest["files"]]
    assert "PDFs/ECG.pdf" in paths and "PDFs/ECG (2).pdf" in paths
    assert "Images/photo.png" in paths and "Imagerie DICOM/scanner.dcm" in paths
    [report] = [f for f in manifest["files"] if f["category"] == "report"]
    assert report["path"].startswith("Comptes-rendus/") and report["generated_for_export"]
    for f in manifest["files"]:
        assert hashlib.sha256(z.read(f["path"])).hexdigest() == f["sha256"]
    assert z.read("PDFs/ECG.pdf") == files["ECG.pdf"]
    async with app[DB].read() as s:
        [row] = (
            (await s.execute(select(AuditEntry).where(AuditEntry.action == "dossier.export")))
            .scalars()
            .all()
        )
    assert row.object_id == str(dossier_id) and row.details["files"] == 5
