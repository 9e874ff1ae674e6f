"""The "Messagerie" page in the browser: two practitioners in two browser contexts write to
each other outside any room; the badge, the conversation list, "Lu" and the reply all arrive
live; history survives a reload without duplicates; paging; a patient cannot open it; a
phone shows one column at a time."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from chat import actions
from chat.models import Message
from core.accounts import User
from core.context import DB, SETTINGS
from core.db import Database
from core.events import EventBus
from rooms.live import Live
from tests.ui.conftest import call_api, open_session, shot, wait_js
from tests.ui.test_accessibility import audit

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

PHONE = {"width": 390, "height": 844}
BADGE = "a.nav-messages .nav-badge"


async def texts(page):
    return await page.locator(".msg-item .msg-text").all_inner_texts()


async def status_of(page, url):
    return await page.evaluate("async (u) => (await fetch(u)).status", url)


async def test_two_practitioners_write_to_each_other_live(pages, app, users):
    claire, karim = users["requester"], users["expert"]
    a = await pages.new()
    b = await pages.new()
    await open_session(a, app, claire)
    await open_session(b, app, karim)

    # Karim works on the activity view; the navigation shows "Messages" without a badge.
    await b.goto("/app/")
    await b.get_by_role("heading", name="Vue activité").wait_for()
    nav_b = b.get_by_role("navigation", name="Navigation principale")
    await nav_b.get_by_role("link", name="Messages").wait_for()
    assert await b.locator(BADGE).count() == 0

    # Claire opens Messages from the navigation, finds Karim and writes to him.
    await a.goto("/app/")
    await (
        a.get_by_role("navigation", name="Navigation principale")
        .get_by_role("link", name="Messages")
        .click()
    )
    await a.get_by_role("heading", name="Messagerie", level=1).wait_for()
    await a.get_by_text("Aucune conversation pour l'instant").wait_for()
    await a.get_by_label("Rechercher un professionnel").fill("ben")
    hit = a.get_by_role("button", name="Dr Karim Benali")
    await hit.wait_for()
    assert "Endocrinologie-diabétologie" in await hit.inner_text()
    await shot(a, "messages-search")
    await hit.click()
    await a.wait_for_url(f"**/app/messages/{karim.id}")
    await a.get_by_role("heading", name="Dr Karim Benali").wait_for()
    first = "Bonjour Karim, pouvez-vous regarder le bilan de Mme Petit ?"
    box = a.get_by_label("Votre message")
    await box.fill(first)
    await box.press("Enter")
    await a.locator(".msg-item.mine .msg-state", has_text="Envoyé").wait_for()
    assert await box.input_value() == ""

    # Karim's badge appears live, on the activity view, with a toast.
    await b.locator(BADGE, has_text="1").wait_for()
    await nav_b.get_by_role("link", name="Messages 1 message non lu").wait_for()
    await b.get_by_text("Nouveau message de Dr Claire Martin").wait_for()
    await shot(b, "messages-badge")

    # He opens Messages: the conversation with its unread count, Claire shown online.
    await nav_b.get_by_role("link", name="Messages").click()
    conv = b.locator(".msg-conv", has_text="Dr Claire Martin")
    await conv.wait_for()
    assert first[:40] in await conv.inner_text()
    assert (await conv.locator(".msg-unread").inner_text()).startswith("1")
    await conv.locator(".presence.on").wait_for()
    await conv.click()
    await b.wait_for_url(f"**/app/messages/{claire.id}")
    await b.locator(".msg-item.theirs .msg-text", has_text=first).wait_for()
    # Reading it clears the badge and the list's count; Claire sees "Lu" live.
    await wait_js(b, "() => !document.querySelector('a.nav-messages .nav-badge')")
    await wait_js(b, "() => !document.querySelector('.msg-conv .msg-unread')")
    await a.locator(".msg-item.mine .msg-state.read", has_text="Lu").wait_for()
    assert (await call_api(b, "GET", "/api/v1/chat/unread"))["total"] == 0

    # Karim replies; Claire, whose conversation is open, sees it arrive.
    reply = "Oui, je le regarde cet après-midi.\nJe vous rappelle ensuite."
    box_b = b.get_by_label("Votre message")
    await box_b.fill(reply)
    await b.get_by_role("button", name="Envoyer").click()
    await a.locator(".msg-item.theirs .msg-text", has_text="je le regarde").wait_for()
    assert await texts(a) == [first, reply]
    # Her conversation list moved the reply to the top, without an unread count (she saw it).
    top = a.locator(".msg-conv").first
    await top.get_by_text("je le regarde").wait_for()
    await wait_js(a, "() => !document.querySelector('.msg-conv .msg-unread')")
    assert (await call_api(a, "GET", "/api/v1/chat/unread"))["total"] == 0
    await b.locator(".msg-item.mine .msg-state.read", has_text="Lu").wait_for()
    await shot(a, "messages-desktop")

    # After a reload the history is there, each message once; the database holds two.
    await a.reload()
    await a.locator(".msg-item .msg-text", has_text="je le regarde").wait_for()
    assert await texts(a) == [first, reply]
    ids = await a.locator(".msg-item").evaluate_all("els => els.map(e => e.dataset.id)")
    assert len(ids) == len(set(ids)) == 2
    async with app[DB].read() as session:
        n = await session.scalar(select(func.count()).select_from(Message))
    assert n == 2
    # "Lu" comes back from Karim's stored read marker.
    await a.locator(".msg-item.mine .msg-state.read", has_text="Lu").wait_for()

    # On a phone: the list first, then the conversation alone with a back button.
    phone = await pages.new(viewport=PHONE)
    await open_session(phone, app, karim)
    await phone.goto("/app/messages")
    await phone.locator(".msg-conv", has_text="Dr Claire Martin").wait_for()
    assert not await phone.locator(".msg-main").is_visible()
    await shot(phone, "messages-phone-list")
    await phone.locator(".msg-conv", has_text="Dr Claire Martin").click()
    await phone.locator(".msg-item .msg-text", has_text="je le regarde").wait_for()
    assert not await phone.locator(".msg-side").is_visible()
    width = await phone.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"]
    await shot(phone, "messages-phone", full_page=False)
    await phone.get_by_role("button", name="Conversations").click()
    await phone.wait_for_url("**/app/messages")
    await phone.locator(".msg-conv", has_text="Dr Claire Martin").wait_for()
    assert pages.errors == []


async def test_older_messages_page_in_on_demand(pages, app, users):
    claire, sophie = users["requester"], users["secretary"]
    for i in range(45):
        await actions.send_message(
            app[DB],
            actions.Sender(id=sophie.id, kind="user", name="Sophie Durand"),
            message_id=uuid.uuid4(),
            text=f"Rendez-vous n° {i:02d} confirmé",
            room_id=None,
            recipient=actions.Sender(id=claire.id, kind="user", name="Dr Claire Martin"),
        )
    page = await pages.new()
    await open_session(page, app, claire)
    await page.goto("/app/")
    await page.locator(BADGE, has_text="45").wait_for()
    await page.goto(f"/app/messages/{sophie.id}")
    await page.locator(".msg-item .msg-text", has_text="n° 44").wait_for()
    shown = await texts(page)
    assert len(shown) == 30 and shown[0].endswith("15 confirmé")
    await page.get_by_role("button", name="Messages précédents").click()
    await page.locator(".msg-item .msg-text", has_text="n° 00").wait_for()
    shown = await texts(page)
    assert shown == [f"Rendez-vous n° {i:02d} confirmé" for i in range(45)]
    assert await page.get_by_role("button", name="Messages précédents").count() == 0
    await wait_js(page, "() => !document.querySelector('a.nav-messages .nav-badge')")
    assert pages.errors == []


async def test_a_message_whose_push_was_lost_is_shown_once_after_live_resync(pages, app, users):
    """Redis lost and back: a direct message stored by another node while the fan-out was
    cut never reached this socket, which stayed up. When the fan-out is back the node says
    ``live:resync`` and the open conversation and the list catch up, each message once."""
    claire, karim = users["requester"], users["expert"]
    me, peer = (
        actions.Sender(id=claire.id, kind="user", name="Dr Claire Martin"),
        actions.Sender(id=karim.id, kind="user", name="Dr Karim Benali"),
    )
    first = "Le scanner de M. Roux est arrivé."
    await actions.send_message(
        app[DB], me, message_id=uuid.uuid4(), text=first, room_id=None, recipient=peer
    )
    page = await pages.new()
    await open_session(page, app, karim)
    await page.goto(f"/app/messages/{claire.id}")
    await page.locator(".msg-item .msg-text", has_text=first).wait_for()
    # Another node stores the next one; its push is lost with the fan-out (its own bus).
    other_node = Database(app[SETTINGS].database_url, EventBus())
    lost = "Pouvez-vous le relire avant la RCP de jeudi ?"
    try:
        await actions.send_message(
            other_node, me, message_id=uuid.uuid4(), text=lost, room_id=None, recipient=peer
        )
    finally:
        await other_node.close()
    assert await texts(page) == [first]
    await Live.of(app).watch.resubscribed()  # what the node does when the fan-out is back
    await page.locator(".msg-item .msg-text", has_text=lost).wait_for()
    assert await texts(page) == [first, lost]
    ids = await page.locator(".msg-item").evaluate_all("els => els.map(e => e.dataset.id)")
    assert len(ids) == len(set(ids)) == 2
    await page.locator(".msg-conv", has_text="avant la RCP").wait_for()
    assert pages.errors == []


async def test_a_refused_message_is_retried_with_its_id_and_stored_once(pages, app, users):
    """The send fails (the colleague's account was closed meanwhile): « Non envoyé » and
    « Réessayer »; once the account is back, the retry carries the same client id: one row,
    one bubble."""
    claire, karim = users["requester"], users["expert"]
    page = await pages.new()
    await open_session(page, app, claire)
    await page.goto(f"/app/messages/{karim.id}")
    box = page.get_by_label("Votre message")
    await page.get_by_role("heading", name="Dr Karim Benali").wait_for()
    await page.get_by_text("Démarrez la conversation avec Dr Karim Benali.").wait_for()

    async def set_active(value: bool) -> None:
        async with app[DB].write() as uow:
            user = await uow.session.get(User, karim.id)
            assert user is not None
            user.active = value

    await set_active(False)
    await box.fill("Le scanner de M. Leroy est dans le dossier.")
    await box.press("Enter")
    failed = page.locator(".msg-item.mine.failed")
    await failed.get_by_text("Non envoyé.").wait_for()
    await page.get_by_text("Ce compte n'existe pas ou n'est plus actif.").wait_for()
    client_id = await failed.get_attribute("data-id")
    async with app[DB].read() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 0

    await set_active(True)
    await failed.get_by_role("button", name="Réessayer").click()
    await page.locator(".msg-item.mine .msg-state", has_text="Envoyé").wait_for()
    assert await page.locator(".msg-item").count() == 1
    assert await page.locator(".msg-item").get_attribute("data-id") == client_id
    async with app[DB].read() as session:
        ids = (await session.execute(select(Message.id))).scalars().all()
    assert [str(i) for i in ids] == [client_id]
    assert pages.errors == []


async def test_a_patient_cannot_open_messages(pages, app, users):
    host = await pages.new()
    await open_session(host, app, users["requester"])
    await host.goto("/app/")
    room = await call_api(
        host, "POST", "/api/v1/rooms", {"kind": "teleconsultation", "title": "Consultation"}
    )
    inv = await call_api(
        host,
        "POST",
        f"/api/v1/rooms/{room['id']}/invitations",
        {"name": "Mme Jeanne Petit", "email": "jeanne.petit@example.org"},
    )
    token = inv["link"].rsplit("/join/", 1)[1]
    patient = await pages.new(viewport=PHONE)
    await patient.goto("/app/login")
    await call_api(patient, "POST", f"/api/v1/invitations/{token}/accept", {"name": "Jeanne Petit"})
    await patient.goto("/app/messages")
    await patient.get_by_text(
        "Cette page est réservée aux professionnels disposant d'un compte."
    ).wait_for()
    assert await patient.get_by_role("link", name="Messages").count() == 0
    assert await patient.locator(".messenger").count() == 0
    assert await status_of(patient, "/api/v1/chat/conversations") == 403
    assert await status_of(patient, "/api/v1/chat/colleagues?q=martin") == 403


async def test_messages_pass_axe_on_desktop_and_phone(pages, app, users):
    claire, karim = users["requester"], users["expert"]
    for i, text in enumerate(["Pouvez-vous revoir l'ECG de M. Leroy ?", "Bien sûr, envoyez-le."]):
        sender, to = (claire, karim) if i == 0 else (karim, claire)
        await actions.send_message(
            app[DB],
            actions.Sender(id=sender.id, kind="user", name=sender.display_name),
            message_id=uuid.uuid4(),
            text=text,
            room_id=None,
            recipient=actions.Sender(id=to.id, kind="user", name=to.display_name),
        )
    problems: list[str] = []
    for label, viewport in (("desktop", None), ("phone", PHONE)):
        page = await pages.new(viewport=viewport, bypass_csp=True)
        await open_session(page, app, claire)
        await page.goto("/app/messages")
        await page.locator(".msg-conv", has_text="Dr Karim Benali").wait_for()
        problems += await audit(page, f"messages-list-{label}")
        await page.get_by_label("Rechercher un professionnel").fill("dur")
        await page.get_by_role("button", name="Sophie Durand").wait_for()
        problems += await audit(page, f"messages-search-{label}")
        await page.goto(f"/app/messages/{karim.id}")
        await page.locator(".msg-item .msg-text", has_text="envoyez-le").wait_for()
        problems += await audit(page, f"messages-thread-{label}")
    assert not problems, "\n".join(problems)
