"""Signing in through the pages, in Chromium: password, second factor, errors, session end."""

from __future__ import annotations

import re

import pytest

from core.seed import DEMO_PASSWORD
from tests.ui.conftest import call_api, shot, sign_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


async def test_login_with_code_from_smtp_lands_on_activity_view(pages, users, smtp):
    page = await pages.new()
    await page.goto("/")
    await page.get_by_role("heading", name="Connexion").wait_for()
    assert page.url.endswith("/app/login?next=%2Fapp%2F")
    await shot(page, "login")
    await page.get_by_label("Adresse e-mail").fill("requerant@demo.consilium.fr")
    await page.get_by_label("Mot de passe").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Continuer").click()
    await page.get_by_role("heading", name="Vérification en deux étapes").wait_for()
    await page.get_by_text("Code par SMS").wait_for()
    await shot(page, "login-second-factor")
    await page.get_by_text("Code par e-mail").click()
    await page.get_by_role("button", name="Recevoir mon code").click()
    [mail] = await smtp.wait_for("requerant@demo.consilium.fr")
    code = re.search(r"\b(\d{6})\b", smtp.text_of(mail)).group(1)
    await page.get_by_text("Un code a été envoyé à r***@demo.consilium.fr").wait_for()
    await page.get_by_label("Code à 6 chiffres").fill(code)
    await page.get_by_role("button", name="Valider").click()
    await page.get_by_role("heading", name="Vue activité").wait_for()
    await page.get_by_text("Dr Claire Martin").wait_for()
    for column in ("Patient", "Sexe", "Requérant", "Modifié le", "Statut", "Actions"):
        await page.get_by_role("columnheader", name=column).count()
    await page.get_by_role("heading", name="Mes dernières recherches").wait_for()
    await shot(page, "activity")
    assert not pages.errors


async def test_wrong_code_then_lockout_show_french_messages(pages, users, smtp, app):
    from core.context import SETTINGS

    page = await pages.new()
    await page.goto("/app/login")
    await page.get_by_label("Adresse e-mail").fill("expert@demo.consilium.fr")
    await page.get_by_label("Mot de passe").fill("pas-le-bon")
    await page.get_by_role("button", name="Continuer").click()
    await page.get_by_text("Adresse e-mail ou mot de passe incorrect.").wait_for()

    await page.get_by_label("Mot de passe").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Continuer").click()
    await page.get_by_text("Code par e-mail").click()
    await page.get_by_role("button", name="Recevoir mon code").click()
    await smtp.wait_for("expert@demo.consilium.fr")
    await page.get_by_label("Code à 6 chiffres").fill("000000")
    await page.get_by_role("button", name="Valider").click()
    alert = page.get_by_role("alert")
    await alert.get_by_text("Code incorrect ou expiré").wait_for()
    await shot(page, "login-wrong-code")

    # Keep failing until this browser is slowed down (the limit is a setting).
    limit = app[SETTINGS].login_max_failures
    for _ in range(limit):
        await page.get_by_label("Code à 6 chiffres").fill("000000")
        await page.get_by_role("button", name="Valider").click()
        await page.wait_for_timeout(150)
        if await page.get_by_text("Connexion ralentie").count():
            break
    await page.get_by_text("Connexion ralentie").wait_for()
    await page.get_by_text("Trop de tentatives infructueuses depuis ce poste").wait_for()
    await shot(page, "login-locked")


async def test_expired_session_sends_back_to_login_then_to_the_page(pages, users, smtp, app):
    from core.context import SESSIONS

    page = await pages.new()
    await sign_in(page, smtp, "requerant@demo.consilium.fr")
    # The server forgets the session (expiry, or signed out elsewhere).
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    s = await app[SESSIONS].load(cookies["consilium_session"])
    await app[SESSIONS].end(s.id)
    await page.goto("/app/settings")
    await page.get_by_role("heading", name="Connexion").wait_for()
    assert "next=%2Fapp%2Fsettings" in page.url


async def test_login_page_fits_a_phone(pages, users):
    page = await pages.new(viewport={"width": 390, "height": 844})
    await page.goto("/app/login")
    await page.get_by_role("heading", name="Connexion").wait_for()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    await shot(page, "login-phone")


async def test_english_catalogue_on_request(pages, users):
    page = await pages.new()
    await page.goto("/app/login")
    await page.get_by_role("button", name="English", exact=True).click()
    await page.get_by_role("heading", name="Sign in").wait_for()
    await page.get_by_label("E-mail address").wait_for()
    await page.reload()
    await page.get_by_role("heading", name="Sign in").wait_for()
    assert await page.evaluate("document.documentElement.lang") == "en"


async def test_forgotten_password_link_from_smtp_then_sign_in(pages, users, smtp):
    email = "requerant@demo.consilium.fr"
    page = await pages.new()
    await page.goto("/app/login")
    await page.get_by_label("Adresse e-mail").fill(email)
    await page.get_by_role("button", name="Mot de passe oublié ?").click()
    await page.get_by_role("heading", name="Mot de passe oublié").wait_for()
    assert await page.get_by_label("Adresse e-mail").input_value() == email
    await page.get_by_role("button", name="Recevoir un lien").click()
    await page.get_by_text(f"Si un compte correspond à {email}").wait_for()
    [mail] = await smtp.wait_for(email)
    link = re.search(r"https?://\S+/app/reset-password#token=\S+", smtp.text_of(mail))
    assert link is not None
    path = "/app/reset-password#" + link.group(0).split("#", 1)[1]
    await page.goto(path)
    await page.get_by_role("heading", name="Nouveau mot de passe").wait_for()
    # the token leaves the address bar at once
    assert "token" not in page.url
    await page.get_by_label("Nouveau mot de passe", exact=True).fill("Une phrase de passe 2026")
    await page.get_by_label("Confirmez le nouveau mot de passe").fill("Une phrase de passe 2027")
    await page.get_by_text("Les deux saisies ne sont pas identiques.").wait_for()
    await page.get_by_label("Confirmez le nouveau mot de passe").fill("Une phrase de passe 2026")
    await shot(page, "reset-password")
    await page.get_by_role("button", name="Enregistrer le mot de passe").click()
    await page.get_by_text("Votre mot de passe a été modifié.").wait_for()

    # the same link again: refused, with a way to ask for a new one
    await page.goto("/app/login")
    await page.goto(path)
    await page.get_by_label("Nouveau mot de passe", exact=True).fill("Encore une autre phrase")
    await page.get_by_label("Confirmez le nouveau mot de passe").fill("Encore une autre phrase")
    await page.get_by_role("button", name="Enregistrer le mot de passe").click()
    await page.get_by_text("Ce lien n'est plus valable").wait_for()
    await page.get_by_role("link", name="Demander un nouveau lien").wait_for()

    # sign in with the new password and a code read from the SMTP server
    await page.goto("/app/login")
    await page.get_by_label("Adresse e-mail").fill(email)
    await page.get_by_label("Mot de passe").fill("Une phrase de passe 2026")
    await page.get_by_role("button", name="Continuer").click()
    await page.get_by_text("Code par e-mail").click()
    await page.get_by_role("button", name="Recevoir mon code").click()
    mails = await smtp.wait_for(email, count=3)
    code = re.search(r"\b(\d{6})\b", smtp.text_of(mails[-1]))
    assert code is not None
    await page.get_by_label("Code à 6 chiffres").fill(code.group(1))
    await page.get_by_role("button", name="Valider").click()
    await page.get_by_role("heading", name="Vue activité").wait_for()

    # and change it again from the settings
    await page.goto("/app/settings")
    await page.get_by_label("Mot de passe actuel").fill("Une phrase de passe 2026")
    await page.get_by_label("Nouveau mot de passe", exact=True).fill("Troisième phrase de passe")
    await page.get_by_label("Confirmez le nouveau mot de passe").fill("Troisième phrase de passe")
    await page.get_by_role("button", name="Enregistrer le mot de passe").click()
    await page.get_by_text("Mot de passe modifié. Vos autres sessions ont été fermées.").wait_for()
    out = await call_api(
        page,
        "POST",
        "/api/v1/auth/login",
        {"email": email, "password": "Troisième phrase de passe"},
    )
    assert out["status"] == "mfa_required"


async def test_slowed_down_page_offers_password_and_app_code_and_signs_in(pages, users, app):
    """Someone failed here until the address was slowed down: the page then asks for the
    authenticator code with the password, and the owner is signed in without waiting."""
    import pyotp

    from core.accounts import User
    from core.context import DB, SETTINGS

    async with app[DB].write() as uow:
        user = await uow.session.get(User, users["requester"].id)
        user.totp_secret, user.totp_enabled = pyotp.random_base32(), True
        totp = pyotp.TOTP(user.totp_secret)
    page = await pages.new()
    await page.goto("/app/login")
    # Another browser at the same address (127.0.0.1) fails until it is slowed down.
    attacker = await pages.new()
    await attacker.goto("/app/login")
    statuses = []
    for _ in range(app[SETTINGS].login_max_failures + 1):
        statuses.append(
            await attacker.evaluate(
                """async () => (await fetch("/api/v1/auth/login", {method: "POST",
                    headers: {"Content-Type": "application/json"},
                    body: JSON.stringify({email: "requerant@demo.consilium.fr",
                                          password: "pas-le-bon"})})).status"""
            )
        )
    assert statuses[-1] == 429
    await page.get_by_label("Adresse e-mail").fill("requerant@demo.consilium.fr")
    await page.get_by_label("Mot de passe").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Continuer").click()
    await page.get_by_text("Trop de tentatives infructueuses depuis ce poste").wait_for()
    await page.get_by_label("Application d'authentification", exact=True).check()
    await page.get_by_label("Code de l'application d'authentification").fill(totp.now())
    await shot(page, "login-throttled-app-code")
    await page.get_by_role("button", name="Continuer").click()
    await page.get_by_role("heading", name="Vue activité").wait_for()


async def test_slowed_down_page_signs_in_with_the_code_received_by_email(pages, users, app, smtp):
    """No authenticator app, a new browser behind the slowed-down address: the page says a
    code was sent if the password is right, and the code received by e-mail signs in."""
    from core.context import SETTINGS

    attacker = await pages.new()
    await attacker.goto("/app/login")
    for _ in range(app[SETTINGS].login_max_failures + 1):
        await attacker.evaluate(
            """async () => (await fetch("/api/v1/auth/login", {method: "POST",
                headers: {"Content-Type": "application/json"},
                body: JSON.stringify({email: "requerant@demo.consilium.fr",
                                      password: "pas-le-bon"})})).status"""
        )
    page = await pages.new()
    await page.goto("/app/login")
    await page.get_by_label("Adresse e-mail").fill("requerant@demo.consilium.fr")
    await page.get_by_label("Mot de passe").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Continuer").click()
    await page.get_by_text("Si le mot de passe est correct, un code de connexion").wait_for()
    [mail] = await smtp.wait_for("requerant@demo.consilium.fr")
    code = re.search(r"\b(\d{6})\b", smtp.text_of(mail)).group(1)
    await page.get_by_label("Code reçu", exact=True).fill(code)
    await shot(page, "login-throttled-received-code")
    await page.get_by_role("button", name="Continuer").click()
    await page.get_by_role("heading", name="Vue activité").wait_for()
    assert not pages.errors
