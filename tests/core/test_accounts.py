"""Accounts: RPPS validation, my profile and preferences, password change, the administrators'
user management, the colleague directory and ``consilium create-user``."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from core import accounts
from core.accounts import rpps_with_key, validate_rpps
from core.audit import AuditEntry
from core.context import DB, SESSIONS
from core.errors import ValidationFailed
from core.notify import notification_channel
from core.seed import DEMO_PASSWORD
from tests.core.conftest import reauthenticated

NEW_PRACTITIONER = {
    "email": "Jeanne.Leroy@chu-exemple.fr",
    "password": "un-mot-de-passe-solide",
    "role": "practitioner",
    "title": "Pr",
    "first_name": "Jeanne",
    "last_name": "Leroy",
    "rpps": rpps_with_key("1000000077"),
    "profession": "Médecin",
    "specialty": "Dermatologie",
    "establishment": "CHU Exemple",
    "mss_address": "jeanne.leroy@chu-exemple.mssante.fr",
    "mobile": "06 12 34 56 78",
}


@pytest.mark.parametrize(
    "rpps",
    ["10003456786", "10101010105"],  # 10 digits and their Luhn key
)
def test_rpps_with_a_valid_luhn_key_is_accepted(rpps):
    assert validate_rpps(rpps[:6] + " " + rpps[6:]) == rpps


@pytest.mark.parametrize("rpps", ["10003456787", "1000345678", "1000345678A", "100034567860"])
def test_rpps_with_wrong_length_or_key_is_refused(rpps):
    with pytest.raises(ValidationFailed) as e:
        validate_rpps(rpps)
    assert e.value.code == "invalid_rpps"


def test_rpps_key_completes_ten_digits():
    assert rpps_with_key("1000345678") == "10003456786"


def test_mobile_numbers_are_stored_in_e164():
    assert accounts.normalise_mobile("06 12 34 56 78") == "+33612345678"
    assert accounts.normalise_mobile("0033 6 12 34 56 78") == "+33612345678"
    with pytest.raises(ValidationFailed):
        accounts.normalise_mobile("12")


async def test_me_shows_my_profile(client, users):
    await client.sign_in_as(users["secretary"].id)
    r = await client.get("/api/v1/me")
    assert r.status == 200
    me = await r.json()
    assert me["email"] == "secretariat@demo.consilium.fr"
    assert me["role"] == "secretary"
    assert me["delegates_for"] == [str(users["requester"].id)]
    assert me["notifications"]["expertise_request"] == "email"
    assert "password_hash" not in me and "totp_secret" not in me


async def test_patch_me_changes_names_contacts_and_notification_preferences(client, users):
    await client.sign_in_as(users["expert"].id)
    await reauthenticated(client)  # the mobile and the code channel are second factors
    r = await client.patch(
        "/api/v1/me",
        json={
            "first_name": "Karima",
            "mobile": "07 00 00 00 09",
            "mss_address": "karima.benali@chu-lyon.mssante.fr",
            "otp_channel": "sms",
            "notifications": {"expertise_request": "sms", "chat_message": "none"},
        },
    )
    assert r.status == 200, await r.text()
    me = await r.json()
    assert me["first_name"] == "Karima" and me["display_name"] == "Dr Karima Benali"
    assert me["mobile"] == "+33700000009"
    assert me["otp_channel"] == "sms"
    assert me["notifications"]["expertise_request"] == "sms"
    assert me["notifications"]["chat_message"] == "none"
    assert me["notifications"]["room_invitation"] == "email"
    async with client.app[DB].read() as session:
        user = await session.get(accounts.User, users["expert"].id)
        assert notification_channel(user, "expertise_request") == "sms"
        assert user.search_name == "karima benali"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"mss_address": "karim@gmail.com"}, "invalid_mss_address"),
        ({"mobile": "123"}, "invalid_mobile"),
        ({"otp_channel": "totp"}, "totp_not_enrolled"),
        ({"notifications": {"nonsense": "email"}}, "validation_failed"),
        ({"email": "x@y.fr"}, "validation_failed"),
    ],
)
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_patch_me_refuses_invalid_values(client, users, change, code):
    await client.sign_in_as(users["expert"].id)
    await reauthenticated(client)
    r = await client.patch("/api/v1/me", json=change)
    assert r.status == 422
    assert (await r.json())["code"] == code


async def test_password_change_needs_the_current_one_and_ends_other_sessions(
    client, make_client, users
):
    other = await make_client()
    await other.sign_in_as(users["requester"].id)
    await client.sign_in_as(users["requester"].id)
    r = await client.post(
        "/api/v1/me/password",
        json={"current_password": "not-it-at-all", "new_password": "nouveau-mot-de-passe"},
    )
    assert r.status == 403
    assert (await r.json())["code"] == "wrong_password"
    r = await client.post(
        "/api/v1/me/password",
        json={"current_password": DEMO_PASSWORD, "new_password": "court"},
    )
    assert r.status == 422
    assert (await r.json())["code"] == "weak_password"
    r = await client.post(
        "/api/v1/me/password",
        json={"current_password": DEMO_PASSWORD, "new_password": "nouveau-mot-de-passe"},
    )
    assert r.status == 204, await r.text()
    # This browser carries on under a new token; the other one is signed out.
    assert (await client.get("/api/v1/me")).status == 200
    r = await other.get("/api/v1/me")
    assert r.status == 401
    r = await client.post(
        "/api/v1/auth/login",
        json={"email": "requerant@demo.consilium.fr", "password": "nouveau-mot-de-passe"},
    )
    assert r.status == 200
    async with client.app[DB].read() as session:
        actions = (await session.execute(select(AuditEntry.action))).scalars().all()
    assert "account.password_change" in actions


async def test_admin_creates_a_practitioner_and_a_secretary_with_delegation(client, users):
    await client.sign_in_as(users["admin"].id)
    r = await client.post("/api/v1/users", json=NEW_PRACTITIONER)
    assert r.status == 201, await r.text()
    created = await r.json()
    assert created["email"] == "jeanne.leroy@chu-exemple.fr"
    assert created["mobile"] == "+33612345678"
    assert created["display_name"] == "Pr Jeanne Leroy"
    r = await client.post(
        "/api/v1/users",
        json={
            "email": "secretariat.leroy@chu-exemple.fr",
            "password": "un-mot-de-passe-solide",
            "role": "secretary",
            "first_name": "Paul",
            "last_name": "Girard",
            "delegates_for": [created["id"], str(users["expert"].id)],
        },
    )
    assert r.status == 201, await r.text()
    assert set((await r.json())["delegates_for"]) == {created["id"], str(users["expert"].id)}
    r = await client.get("/api/v1/users", params={"role": "secretary"})
    assert {u["last_name"] for u in await r.json()} == {"Durand", "Girard"}
    r = await client.get(f"/api/v1/users/{created['id']}")
    assert (await r.json())["rpps"] == NEW_PRACTITIONER["rpps"]


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"rpps": "10003456787"}, 422, "invalid_rpps"),
        ({"email": "not-an-email"}, 422, "validation_failed"),
        ({"email": "expert@demo.consilium.fr"}, 409, "email_taken"),
        ({"rpps": rpps_with_key("1000000002")}, 409, "rpps_taken"),
        ({"password": "short"}, 422, "weak_password"),
        ({"delegates_for": ["00000000-0000-4000-8000-000000000000"]}, 422, "invalid_delegation"),
    ],
)
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_admin_user_creation_validates_input(client, users, change, status, code):
    await client.sign_in_as(users["admin"].id)
    r = await client.post("/api/v1/users", json={**NEW_PRACTITIONER, **change})
    assert r.status == status, await r.text()
    assert (await r.json())["code"] == code


async def test_only_admins_manage_users(client, users):
    await client.sign_in_as(users["requester"].id)
    assert (await client.get("/api/v1/users")).status == 403
    r = await client.post("/api/v1/users", json=NEW_PRACTITIONER)
    assert r.status == 403
    assert (await r.json())["code"] == "admin_required"


async def test_directory_finds_colleagues_by_name_ignoring_accents(client, users):
    await client.sign_in_as(users["admin"].id)
    await client.post(
        "/api/v1/users",
        json={**NEW_PRACTITIONER, "first_name": "Hélène", "last_name": "Dupré", "rpps": None},
    )
    await client.sign_in_as(users["requester"].id)
    r = await client.get("/api/v1/users/directory", params={"q": "helene"})
    assert r.status == 200
    [found] = await r.json()
    assert found["display_name"] == "Pr Hélène Dupré"
    assert "email" not in found
    r = await client.get("/api/v1/users/directory", params={"q": "BEN"})
    assert [c["last_name"] for c in await r.json()] == ["Benali"]
    r = await client.get("/api/v1/users/directory", params={"q": "karim benali"})
    assert len(await r.json()) == 1
    # Administrators are not colleagues; one letter is not a search.
    r = await client.get("/api/v1/users/directory", params={"q": "rousseau"})
    assert await r.json() == []
    r = await client.get("/api/v1/users/directory", params={"q": "b"})
    assert r.status == 422


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_create_user_command_creates_an_account_that_can_sign_in(client, settings, users):
    env = {
        **os.environ,
        "CONSILIUM_DEV": "1",
        "CONSILIUM_DATABASE_URL": settings.database_url,
        "CONSILIUM_DATA_DIR": str(settings.data_dir),
    }
    cmd = [
        sys.executable,
        "-m",
        "core.cli",
        "create-user",
        "--email",
        "marc.petit@exemple.fr",
        "--role",
        "practitioner",
        "--first-name",
        "Marc",
        "--last-name",
        "Petit",
        "--title",
        "Dr",
        "--rpps",
        rpps_with_key("1000000099"),
        "--password",
        "un-mot-de-passe-solide",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Created practitioner marc.petit@exemple.fr" in done.stdout
    r = await client.post(
        "/api/v1/auth/login",
        json={"email": "marc.petit@exemple.fr", "password": "un-mot-de-passe-solide"},
    )
    assert r.status == 200
    bad = cmd[:]
    bad[bad.index("--rpps") + 1] = "12345678901"
    bad[bad.index("--email") + 1] = "autre@exemple.fr"
    done = subprocess.run(bad, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "RPPS" in done.stderr
    assert SESSIONS  # the app under test was untouched by the command


async def test_admin_deactivation_ends_the_sessions_and_blocks_sign_in(client, make_client, users):
    victim = await make_client()
    await victim.sign_in_as(users["expert"].id)
    assert (await victim.get("/api/v1/me")).status == 200
    await client.sign_in_as(users["admin"].id)
    r = await client.patch(f"/api/v1/users/{users['expert'].id}", json={"active": False})
    assert r.status == 200, await r.text()
    assert (await r.json())["active"] is False
    assert (await victim.get("/api/v1/me")).status == 401
    r = await victim.post(
        "/api/v1/auth/login",
        json={"email": "expert@demo.consilium.fr", "password": DEMO_PASSWORD},
    )
    assert r.status == 401
    r = await client.patch(f"/api/v1/users/{users['admin'].id}", json={"active": False})
    assert r.status == 422
    assert (await r.json())["code"] == "self_deactivation"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_admin_changes_a_secretarys_delegations(client, users):
    await client.sign_in_as(users["admin"].id)
    secretary = users["secretary"].id
    r = await client.patch(
        f"/api/v1/users/{secretary}",
        json={"delegates_for": [str(users["expert"].id), str(users["requester"].id)]},
    )
    assert r.status == 200, await r.text()
    assert set((await r.json())["delegates_for"]) == {
        str(users["expert"].id),
        str(users["requester"].id),
    }
    r = await client.patch(f"/api/v1/users/{secretary}", json={"delegates_for": []})
    assert (await r.json())["delegates_for"] == []
    r = await client.patch(
        f"/api/v1/users/{users['expert'].id}", json={"delegates_for": [str(secretary)]}
    )
    assert r.status == 422
    r = await client.patch(
        f"/api/v1/users/{users['expert'].id}", json={"rpps": rpps_with_key("1000000001")}
    )
    assert r.status == 409
    r = await client.patch(
        "/api/v1/users/00000000-0000-4000-8000-000000000000", json={"active": True}
    )
    assert r.status == 404


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_directory_treats_wildcards_as_plain_text(client, users):
    await client.sign_in_as(users["requester"].id)
    r = await client.get("/api/v1/users/directory", params={"q": "%%"})
    assert r.status == 200
    assert await r.json() == []
    r = await client.get("/api/v1/users/directory", params={"q": "b_nali"})
    assert await r.json() == []


def _cli_env(settings) -> dict[str, str]:
    return {
        **os.environ,
        "CONSILIUM_DEV": "1",
        "CONSILIUM_DATABASE_URL": settings.database_url,
        "CONSILIUM_DATA_DIR": str(settings.data_dir),
    }


def _create_user_cmd(email: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "core.cli",
        "create-user",
        "--email",
        email,
        "--role",
        "practitioner",
        "--first-name",
        "Service",
        "--last-name",
        "Intégration",
        "--password",
        "un-mot-de-passe-solide",
        *extra,
    ]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_the_command_the_admin_api_and_sign_in_share_one_email_check(client, settings, users):
    from core.login import LoginIn
    from core.recovery import ForgotIn
    from core.users import UserCreate

    env = _cli_env(settings)
    # An address sign-in would refuse is refused by the command too (it used to be created).
    done = subprocess.run(
        _create_user_cmd("x@clinic.test"), env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stdout
    assert "e-mail" in done.stderr
    await client.sign_in_as(users["admin"].id)
    r = await client.post("/api/v1/users", json={**NEW_PRACTITIONER, "email": "x@clinic.test"})
    assert r.status == 422
    client.sign_out()
    r = await client.post(
        "/api/v1/auth/login", json={"email": "x@clinic.test", "password": "un-mot-de-passe-solide"}
    )
    assert r.status == 422
    # What the command accepts, sign-in accepts, whatever the case typed.
    done = subprocess.run(
        _create_user_cmd("Service.Integration@CHU-Exemple.fr"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    r = await client.post(
        "/api/v1/auth/login",
        json={"email": "service.integration@chu-exemple.FR", "password": "un-mot-de-passe-solide"},
    )
    assert r.status == 200, await r.text()
    # One type for every request field that names an account by its address.
    for model in (LoginIn, ForgotIn, UserCreate):
        assert accounts.AccountEmail.__metadata__[-1] in model.model_fields["email"].metadata


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_the_documented_service_account_script_signs_in_with_totp(client, settings, users):
    """docs/accounts.md: a service account created with --totp; the example script computes
    the codes and sends the CSRF token at the code step and after."""
    env = _cli_env(settings)
    done = subprocess.run(
        _create_user_cmd("integration@chu-exemple.fr", "--totp"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    secret = re.search(r"TOTP secret: ([A-Z2-7]+)", done.stdout).group(1)
    server = client.client.server
    script = Path(__file__).parents[2] / "docs" / "examples" / "service_signin.py"
    run = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        env={
            **env,
            "CONSILIUM_URL": f"http://{server.host}:{server.port}",
            "CONSILIUM_EMAIL": "integration@chu-exemple.fr",
            "CONSILIUM_PASSWORD": "un-mot-de-passe-solide",
            "CONSILIUM_TOTP_SECRET": secret,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(run.communicate(), timeout=120)
    assert run.returncode == 0, err.decode()
    assert "signed in as Service Intégration (practitioner)" in out.decode()
    assert "write accepted: 200" in out.decode()
