"""Notifications: real e-mail to a local SMTP server, SMS to a local gateway, the outbox when
nothing is configured, failures recorded with their cause."""

from __future__ import annotations

import pytest

from core import accounts
from core.app import create_app
from core.context import DB, NOTIFIER
from core.notify import Attachment, DeliveryError, Email
from tests.conftest import ApiClient, free_port, make_settings

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def notifier_for(database_url, tmp_path, **settings):
    app = create_app(make_settings(database_url, tmp_path / "n", **settings))
    return app, app[NOTIFIER]


async def test_email_reaches_the_smtp_server_with_attachments(database_url, tmp_path, smtp):
    app, notifier = notifier_for(database_url, tmp_path, smtp_host=smtp.host, smtp_port=smtp.port)
    row = await notifier.send_email(
        Email(
            to="dr.x@exemple.fr",
            subject="Compte-rendu",
            text="Bonjour",
            attachments=[Attachment("cr.pdf", b"%PDF-1.7", "application/pdf")],
        )
    )
    assert row.status == "sent" and row.attachments == "cr.pdf"
    [mail] = await smtp.wait_for("dr.x@exemple.fr")
    assert mail["Subject"] == "Compte-rendu"
    assert smtp.text_of(mail).strip() == "Bonjour"
    [part] = list(mail.iter_attachments())
    assert part.get_filename() == "cr.pdf"
    await app[DB].close()


async def test_mssante_mail_goes_through_the_mss_relay(database_url, tmp_path, smtp):
    app, notifier = notifier_for(
        database_url,
        tmp_path,
        smtp_host="127.0.0.1",
        smtp_port=free_port(),  # the ordinary relay is down: MSS must not use it
        mss_smtp_host=smtp.host,
        mss_smtp_port=smtp.port,
        mss_from="consilium@etab.mssante.fr",
    )
    row = await notifier.send_email(
        Email(to="dr.y@chu.mssante.fr", subject="CR", text="."), mss=True
    )
    assert row.channel == "mss" and row.status == "sent"
    await smtp.wait_for("dr.y@chu.mssante.fr")
    assert smtp.envelopes[-1][0] == "consilium@etab.mssante.fr"
    await app[DB].close()


async def test_sms_reaches_the_gateway(database_url, tmp_path, sms_gateway):
    app, notifier = notifier_for(
        database_url, tmp_path, sms_gateway_url=sms_gateway.url, sms_sender="CHU"
    )
    row = await notifier.send_sms("+33611111111", "Votre salle est ouverte")
    assert row.status == "sent"
    msg = await sms_gateway.wait_for("+33611111111")
    assert msg == {"to": "+33611111111", "text": "Votre salle est ouverte", "sender": "CHU"}
    await app[DB].close()


async def test_without_transport_messages_stay_in_the_outbox(database_url, tmp_path):
    app, notifier = notifier_for(database_url, tmp_path)
    assert (await notifier.send_email(Email(to="a@b.fr", subject="S", text="T"))).status == (
        "outbox"
    )
    assert (await notifier.send_sms("+33622222222", "code 123456")).status == "outbox"
    rows = await notifier.outbox()
    assert {(r.channel, r.recipient, r.status) for r in rows} == {
        ("email", "a@b.fr", "outbox"),
        ("sms", "+33622222222", "outbox"),
    }
    await app[DB].close()


async def test_failures_are_recorded_with_their_cause(database_url, tmp_path, sms_gateway):
    sms_gateway.status = 503
    app, notifier = notifier_for(
        database_url,
        tmp_path,
        smtp_host="127.0.0.1",
        smtp_port=free_port(),  # nothing listens there
        sms_gateway_url=sms_gateway.url,
    )
    with pytest.raises(DeliveryError, match=r"a@b\.fr"):
        await notifier.send_email(Email(to="a@b.fr", subject="S", text="T"))
    with pytest.raises(DeliveryError, match="503"):
        await notifier.send_sms("+33633333333", "x")
    rows = {r.channel: r for r in await notifier.outbox()}
    assert rows["email"].status == "failed" and rows["email"].error
    assert rows["sms"].status == "failed"
    assert rows["sms"].error == "SMS gateway answered 503"
    await app[DB].close()


async def test_dev_outbox_page_only_in_development_mode(database_url, tmp_path, aiohttp_client):
    dev_app = create_app(make_settings(database_url, tmp_path / "a", dev=True))
    await dev_app[NOTIFIER].send_sms("+33644444444", "Votre code : 654321")
    client = ApiClient(await aiohttp_client(dev_app))
    r = await client.get("/dev/outbox")
    assert r.status == 200
    assert "654321" in await r.text()
    prod_app = create_app(make_settings(database_url, tmp_path / "b", dev=False))
    client = ApiClient(await aiohttp_client(prod_app))
    r = await client.get("/dev/outbox")
    assert r.status == 404
    assert r.content_type == "application/problem+json"


async def test_users_are_told_on_the_channel_they_chose(app, users, smtp, sms_gateway):
    notifier = app[NOTIFIER]
    notifier.settings = make_settings(
        app[DB].url,
        notifier.settings.data_dir,
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        sms_gateway_url=sms_gateway.url,
    )
    async with app[DB].write() as uow:
        expert = await uow.session.get(accounts.User, users["expert"].id)
        expert.preferences = {"notify": {"expertise_request": "sms", "chat_message": "none"}}
    sent = await notifier.notify_user(
        expert, "expertise_request", subject="Nouvelle demande d'avis", text="Dossier 42"
    )
    assert sent is not None and sent.channel == "sms"
    assert "Dossier 42" in (await sms_gateway.wait_for("+33600000002"))["text"]
    assert await notifier.notify_user(expert, "chat_message", subject="s", text="t") is None
    sent = await notifier.notify_user(expert, "room_invitation", subject="e-Staff", text="t")
    assert sent is not None and sent.channel == "email"
    await smtp.wait_for("expert@demo.consilium.fr")
