"""Settings in the browser: authenticator enrolment from its QR code, notification choices."""

from __future__ import annotations

import time

import pyotp
import pytest

from tests.ui.conftest import shot, sign_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


async def test_enrol_authenticator_then_sign_in_with_it(pages, users, smtp):
    page = await pages.new()
    await sign_in(page, smtp, "expert@demo.consilium.fr")
    await page.get_by_role("link", name="Paramètres").click()
    await page.get_by_role("heading", name="Application d'authentification").wait_for()
    await page.get_by_role("button", name="Configurer l'application").click()
    qr = page.get_by_alt_text("QR code à scanner avec votre application d'authentification")
    await qr.wait_for()
    assert await qr.evaluate("img => img.complete && img.naturalWidth > 0")
    secret = (await page.get_by_test_id("totp-secret").inner_text()).strip()
    await shot(page, "settings-totp-qr")
    await page.get_by_label("Code à 6 chiffres").fill(pyotp.TOTP(secret).now())
    await page.get_by_role("button", name="Activer").click()
    await page.get_by_text("Application d'authentification activée.").wait_for()
    codes = await page.get_by_label("Codes de secours").locator("span").all_inner_texts()
    assert len(codes) == 10
    await shot(page, "settings-recovery-codes")

    # Next sign-in offers the app; a code from it opens the session.
    await page.get_by_role("button", name="Se déconnecter").click()
    await page.get_by_label("Adresse e-mail").fill("expert@demo.consilium.fr")
    from core.seed import DEMO_PASSWORD

    await page.get_by_label("Mot de passe").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Continuer").click()
    await page.get_by_text("Application d'authentification", exact=True).click()
    # The enrolment code's time step is spent; the next step's code is within the window.
    await page.get_by_label("Code à 6 chiffres").fill(pyotp.TOTP(secret).at(time.time() + 30))
    await page.get_by_role("button", name="Valider").click()
    await page.get_by_role("heading", name="Vue activité").wait_for()


async def test_notification_choice_is_saved(pages, users, smtp):
    page = await pages.new()
    await sign_in(page, smtp, "requerant@demo.consilium.fr")
    await page.goto("/app/settings")
    select = page.get_by_label("Un dossier attend mon expertise")
    await select.select_option("sms")
    await page.get_by_text("Enregistré.").first.wait_for()
    await shot(page, "settings")
    await page.reload()
    await page.get_by_label("Un dossier attend mon expertise").wait_for()
    assert await page.get_by_label("Un dossier attend mon expertise").input_value() == "sms"


async def test_changing_the_code_channel_asks_for_password_and_code_again(pages, users, smtp, app):
    import re

    from core.accounts import User
    from core.context import DB, SESSIONS
    from core.seed import DEMO_PASSWORD

    email = "requerant@demo.consilium.fr"
    page = await pages.new()
    await sign_in(page, smtp, email)
    # Some minutes later: the sign-in no longer counts as a recent re-authentication.
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    s = await app[SESSIONS].load(cookies["consilium_session"])
    s.data["reauth_at"] = time.time() - 600
    await app[SESSIONS].update(s)
    await page.goto("/app/settings")
    await page.get_by_label("Mode de vérification proposé en premier").select_option("sms")
    dialog = page.get_by_role("dialog", name="Confirmez votre identité")
    await dialog.wait_for()
    await dialog.get_by_label("Votre mot de passe").fill(DEMO_PASSWORD)
    before = len(smtp.to(email))
    await dialog.get_by_role("button", name="Recevoir un code par e-mail").click()
    mails = await smtp.wait_for(email, count=before + 1)
    code = re.search(r"\b(\d{6})\b", smtp.text_of(mails[-1])).group(1)
    await dialog.get_by_label("Code de confirmation").fill(code)
    await shot(page, "settings-reauth")
    await dialog.get_by_role("button", name="Confirmer", exact=True).click()
    await page.get_by_text("Enregistré.").wait_for()
    async with app[DB].read() as session:
        user = await session.get(User, users["requester"].id)
        assert user.otp_channel == "sms"
    # The old channel (e-mail) is told.
    mails = await smtp.wait_for(email, count=before + 2)
    assert "arrivent désormais par : sms" in smtp.text_of(mails[-1])
