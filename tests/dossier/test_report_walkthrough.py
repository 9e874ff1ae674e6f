"""Seed 000 after the expert's signature (sections 3.2 and 4.1), through the API: the report
is generated, verified as signed and unaltered, sent by MSSanté to a real SMTP server and by
vault with link + code, exported; the dossier's history tells it."""

from __future__ import annotations

import io
import re
import zipfile

import pymupdf
import pytest
from sqlalchemy import select

from tests.conftest import make_settings
from tests.dossier.dossier_fixtures import *  # noqa: F403
from tests.dossier.dossier_fixtures import ENDO, TX_EXPERT, TX_REQUESTER, draft_ready_to_sign
from tests.support.documents import pdf_bytes


@pytest.fixture
def settings(database_url, tmp_path, smtp):
    return make_settings(database_url, tmp_path / "data", smtp_host=smtp.host, smtp_port=smtp.port)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_seed_000_from_expert_signature_to_sent_and_exported_report(
    demo, as_user, smtp, make_client, app
):
    from core.context import DB
    from core.notify import Notification

    requester = demo["users"]["requester"]
    expert = demo["users"]["expert"]
    req, exp = await as_user(requester), await as_user(expert)
    d = await draft_ready_to_sign(
        req, str(demo["offers"][ENDO].id), birth_name="Test", first_name="Endoter"
    )
    url = f"/api/v1/dossiers/{d['id']}"
    r = await req.post(f"{url}/documents?filename=ECG.pdf", data=pdf_bytes(1))
    assert r.status == 201, await r.text()
    r = await req.post(f"{url}/forms/requester/sign", json={"values": TX_REQUESTER})
    assert r.status == 200, await r.text()
    r = await exp.post(f"{url}/forms/expert/sign", json={"values": TX_EXPERT})
    assert r.status == 200, await r.text()
    assert (await r.json())["state"] == "expertised"

    # 3.2 "Générer PDF": the report, named as in the seed, signed by the installation.
    r = await exp.post(f"{url}/report")
    assert r.status == 201, await r.text()
    report = await r.json()
    assert re.match(r"tx_simple\.crpt TEST Endoter \d\d-\d\d-\d{4}\.pdf", report["filename"])
    r = await req.get(f"{url}/documents/{report['id']}/verification")
    assert (await r.json())["ok"] is True
    r = await req.get(f"{url}/documents/{report['id']}/content")
    with pymupdf.open(stream=await r.read(), filetype="pdf") as pdf:
        text = "".join(p.get_text() for p in pdf)
    assert "Pas d'antibiothérapie, soins locaux." in text
    assert "Signée par Dr Karim Benali" in text and "Signée par Dr Claire Martin" in text

    # 4.1.2 Sending by MSSanté, then to a vault for an address without MSSanté.
    r = await exp.post(
        f"{url}/send",
        json={
            "document_id": report["id"],
            "channel": "mss",
            "mss_recipients": ["claire.martin@demo.mssante.fr"],
        },
    )
    assert r.status == 200, await r.text()
    [mss] = await smtp.wait_for("claire.martin@demo.mssante.fr")
    # The PDF for people, the IHE XDM archive for software (MSSanté client referential).
    assert [a.get_filename() for a in mss.iter_attachments()] == [
        report["filename"],
        "IHE_XDM.ZIP",
    ]
    assert mss["X-MSS-CODECDA"] == "11488-4"
    r = await exp.post(
        f"{url}/send",
        json={
            "document_id": report["id"],
            "channel": "vault",
            "vault_recipients": [{"email": "xxxxx@gmail.com", "phone": "0612345678"}],
        },
    )
    assert r.status == 200, await r.text()
    [mail] = await smtp.wait_for("xxxxx@gmail.com")
    token = re.search(r"/vault/(\S+)", smtp.text_of(mail)).group(1)
    async with app[DB].read() as s:  # no SMS gateway configured: the code is in the outbox
        body = (
            await s.execute(select(Notification.body).where(Notification.channel == "sms"))
        ).scalar_one()
    code = re.search(r"\b(\d{6})\b", body).group(1)
    anon = await make_client()
    r = await anon.post(f"/api/v1/vault/{token}", json={"code": code})
    assert r.status == 200 and (await r.read()).startswith(b"%PDF-")

    # Each participant files the act in their own record: "Exporter tout".
    r = await req.get(f"{url}/export")
    z = zipfile.ZipFile(io.BytesIO(await r.read()))
    assert f"Comptes-rendus/{report['filename']}" in z.namelist()
    assert "PDFs/ECG.pdf" in z.namelist()

    r = await req.get(f"{url}/history")
    entries = await r.json()
    sends = [e["details"]["channel"] for e in entries if e["action"] == "dossier.send"]
    assert sends == ["mss", "vault"]
    actions = [e["action"] for e in entries]
    for a in ("dossier.report", "dossier.vault_download", "dossier.export"):
        assert a in actions, a
