"""Sending a dossier's PDF (issue 12, item 12): one vault send could name any number of
recipients (an e-mail and an SMS each) and a user could send without limit. A vault send has
5 recipients at most (422), and each user makes at most 20 sends (MSSanté or vault) per
10 minutes (429 problem+json with Retry-After)."""

from __future__ import annotations

import uuid

import pytest

from core.context import DB
from dossier.sending.routes import SEND_WINDOW, SENDS_PER_WINDOW
from tests.conftest import make_settings
from tests.dossier.test_sending import SmsGateway
from tests.support.documents import make_dossier, pdf_bytes

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


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


@sqlite_only
async def test_vault_recipients_are_bounded_and_sends_rate_limited(
    app, client, users, smtp, sms, make_client
):
    dossier_id = await make_dossier(app[DB], users)
    await client.sign_in_as(users["expert"].id)
    url = f"/api/v1/dossiers/{dossier_id}"
    r = await client.post(f"{url}/documents?filename=ordonnance.pdf", data=pdf_bytes(1))
    assert r.status == 201, await r.text()
    doc_id = (await r.json())["id"]

    six = [{"email": f"p{i}@example.org", "phone": f"+3361234567{i}"} for i in range(6)]
    r = await client.post(
        f"{url}/send", json={"document_id": doc_id, "channel": "vault", "vault_recipients": six}
    )
    assert r.status == 422, await r.text()
    assert any("vault_recipients" in e["loc"] for e in (await r.json())["errors"])
    assert sms.received == []

    r = await client.post(
        f"{url}/send",
        json={"document_id": doc_id, "channel": "vault", "vault_recipients": six[:5]},
    )
    assert r.status == 200, await r.text()
    assert len((await r.json())["sent_to"]) == 5

    # The other sends of the window (refused ones count too), then 429 on both channels.
    for _ in range(SENDS_PER_WINDOW - 1):
        r = await client.post(
            f"{url}/send",
            json={"document_id": str(uuid.uuid4()), "channel": "mss", "mss_recipients": ["a@b.fr"]},
        )
        assert r.status == 404, await r.text()
    for channel in ("mss", "vault"):
        r = await client.post(
            f"{url}/send",
            json={
                "document_id": doc_id,
                "channel": channel,
                "mss_recipients": ["claire.martin@demo.mssante.fr"],
                "vault_recipients": six[:1],
            },
        )
        assert r.status == 429, await r.text()
        assert r.content_type == "application/problem+json"
        assert (await r.json())["code"] == "send_rate_limited"
        assert int(r.headers["Retry-After"]) == SEND_WINDOW
    # The limit is per user: another participant still sends.
    other = await make_client()
    await other.sign_in_as(users["requester"].id)
    r = await other.post(
        f"{url}/send",
        json={"document_id": doc_id, "channel": "mss", "mss_recipients": ["a@demo.mssante.fr"]},
    )
    assert r.status != 429, await r.text()
