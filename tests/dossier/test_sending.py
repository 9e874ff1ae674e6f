from __future__ import annotations

import re
from datetime import timedelta

import pytest
from aiohttp import web
from sqlalchemy import select, update

from core.audit import AuditEntry
from core.context import DB
from core.db import utcnow
from core.notify import Notification
from dossier.models import VaultDeposit
from tests.conftest import free_port, make_settings
from tests.support.documents import make_dossier

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


class SmsGateway:
    """A local HTTP SMS gateway that keeps what it is asked to send."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[dict] = []
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def send(request: web.Request) -> web.Response:
            self.received.append(await request.json())
            return web.json_response({"status": "queued"})

        app = web.Application()
        app.router.add_post("/sms", send)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.fixture
async def sms():
    gw = SmsGateway()
    await gw.start()
    yield gw
    await gw.stop()


@pytest.fixture
def settings(database_url, tmp_path, smtp, sms):
    return make_settings(
        database_url,
        tmp_path / "data",
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        sms_gateway_url=f"http://127.0.0.1:{sms.port}/sms",
    )


async def _report(app, client, users):
    dossier_id = await make_dossier(app[DB], users, state="expertised", signed_parts=True)
    await client.sign_in_as(users["expert"].id)
    r = await client.post(f"/api/v1/dossiers/{dossier_id}/report")
    assert r.status == 201, await r.text()
    return dossier_id, await r.json()


async def test_report_sent_by_mssante_arrives_with_the_pdf_and_is_in_the_history(
    app, client, users, smtp
):
    dossier_id, report = await _report(app, client, users)
    r = await client.post(
        f"/api/v1/dossiers/{dossier_id}/send",
        json={
            "document_id": report["id"],
            "channel": "mss",
            "mss_recipients": ["claire.martin@demo.mssante.fr"],
            "message": "Avis rendu.",
        },
    )
    assert r.status == 200, await r.text()
    assert (await r.json())["sent_to"] == ["claire.martin@demo.mssante.fr"]
    [msg] = await smtp.wait_for("claire.martin@demo.mssante.fr")
    att, _xdm = list(msg.iter_attachments())
    assert att.get_content_type() == "application/pdf"
    assert att.get_filename() == report["filename"]
    assert att.get_content().startswith(b"%PDF-")
    assert "Avis rendu." in smtp.text_of(msg)
    async with app[DB].read() as s:
        rows = (
            (
                await s.execute(
                    select(AuditEntry).where(
                        AuditEntry.object_type == "dossier",
                        AuditEntry.object_id == str(dossier_id),
                        AuditEntry.action == "dossier.send",
                    )
                )
            )
            .scalars()
            .all()
        )
    assert [(a.details["channel"], a.details["recipient"], a.outcome) for a in rows] == [
        ("mss", "claire.martin@demo.mssante.fr", "success")
    ]


async def test_vault_link_by_email_and_code_by_sms_deliver_the_document(
    app, client, users, smtp, sms, make_client
):
    dossier_id, report = await _report(app, client, users)
    r = await client.post(
        f"/api/v1/dossiers/{dossier_id}/send",
        json={
            "document_id": report["id"],
            "channel": "vault",
            "vault_recipients": [{"email": "patient@example.org", "phone": "+33612345678"}],
        },
    )
    assert r.status == 200, await r.text()
    [mail] = await smtp.wait_for("patient@example.org")
    link = re.search(r"https?://\S+/vault/(\S+)", smtp.text_of(mail))
    assert link
    token = link.group(1)
    [text] = [m["text"] for m in sms.received if m["to"] == "+33612345678"]
    code = re.search(r"\b(\d{6})\b", text).group(1)
    assert code not in smtp.text_of(mail)  # the two factors travel apart

    anon = await make_client()  # the recipient has no account
    r = await anon.get(f"/vault/{token}")
    assert r.status == 200 and "Code reçu par SMS" in await r.text()
    wrong = "000000" if code != "000000" else "111111"
    r = await anon.post(f"/api/v1/vault/{token}", json={"code": wrong})
    assert r.status == 403 and (await r.json())["attempts_left"] == 4
    r = await anon.post(f"/vault/{token}", data={"code": wrong})
    assert r.status == 403 and "Code incorrect" in await r.text()
    r = await anon.post(f"/api/v1/vault/{token}", json={"code": code})
    assert r.status == 200
    assert (await r.read()).startswith(b"%PDF-")
    assert report["filename"].split(" ")[0] in r.headers["Content-Disposition"]
    r = await anon.post(f"/vault/{token}", data={"code": code})  # the HTML form way
    assert r.status == 200 and r.content_type == "application/pdf"

    # Past its expiry the link answers a clear 410 page.
    async with app[DB].write() as uow:
        await uow.session.execute(
            update(VaultDeposit).values(expires_at=utcnow() - timedelta(minutes=1))
        )
    r = await anon.get(f"/vault/{token}")
    assert r.status == 410 and "expiré" in await r.text()
    r = await anon.post(f"/api/v1/vault/{token}", json={"code": code})
    assert r.status == 410 and (await r.json())["code"] == "vault_expired"
    r = await anon.get("/vault/not-a-token")
    assert r.status == 404


class TestWithoutGateway:
    @pytest.fixture
    def settings(self, database_url, tmp_path, smtp):
        return make_settings(
            database_url, tmp_path / "data", smtp_host=smtp.host, smtp_port=smtp.port
        )

    @sqlite_only
    async def test_vault_code_stays_in_the_outbox_and_attempts_are_limited(
        self, app, client, users, smtp, make_client
    ):
        dossier_id, report = await _report(app, client, users)
        r = await client.post(
            f"/api/v1/dossiers/{dossier_id}/send",
            json={
                "document_id": report["id"],
                "channel": "vault",
                "vault_recipients": [{"email": "confrere@gmail.com", "phone": "0600000001"}],
            },
        )
        assert r.status == 200, await r.text()
        [mail] = await smtp.wait_for("confrere@gmail.com")
        token = re.search(r"/vault/(\S+)", smtp.text_of(mail)).group(1)
        async with app[DB].read() as s:
            sms = (
                await s.execute(select(Notification).where(Notification.channel == "sms"))
            ).scalar_one()
        assert sms.status == "outbox" and sms.recipient == "0600000001"
        code = re.search(r"\b(\d{6})\b", sms.body).group(1)
        anon = await make_client()
        wrong = "123456" if code != "123456" else "654321"
        for left in (4, 3, 2, 1):
            r = await anon.post(f"/api/v1/vault/{token}", json={"code": wrong})
            assert (await r.json())["attempts_left"] == left
        r = await anon.post(f"/api/v1/vault/{token}", json={"code": wrong})
        assert r.status == 410 and (await r.json())["code"] == "vault_locked"
        r = await anon.post(f"/api/v1/vault/{token}", json={"code": code})
        assert r.status == 410  # even the right code: the link is burnt
        r = await anon.get(f"/vault/{token}")
        assert r.status == 410 and "bloqué" in await r.text()
