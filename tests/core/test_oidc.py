"""The Pro Santé Connect seam: verified claims map to an account by RPPS and open the same
full session as the password + code flow."""

from __future__ import annotations

import pytest
from aiohttp import web

from core.accounts import rpps_with_key
from core.api import Api
from core.oidc import OidcProvider, complete_sign_in, rpps_from_claims

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

PSC = OidcProvider(name="psc", issuer="https://psc.invalid/realm", client_id="consilium")
REQUESTER_RPPS = rpps_with_key("1000000001")


def test_rpps_is_read_from_the_national_identifier():
    assert rpps_from_claims(PSC, {"SubjectNameID": "8" + REQUESTER_RPPS}) == REQUESTER_RPPS
    assert rpps_from_claims(PSC, {"preferred_username": REQUESTER_RPPS}) == REQUESTER_RPPS
    assert rpps_from_claims(PSC, {"SubjectNameID": "0012345678"}) is None


@pytest.fixture
def app(settings):
    from core.app import create_app

    app = create_app(settings)

    # What a provider's callback does once it holds verified claims (here from the body).
    async def callback(request: web.Request) -> web.StreamResponse:
        resp = web.json_response({"ok": True})
        await complete_sign_in(request, resp, PSC, await request.json())
        return resp

    app.router.add_post(PSC.callback_path, callback)
    assert Api.of(app)
    return app


@SQLITE
async def test_verified_claims_open_a_full_session(client, users):
    r = await client.client.post(PSC.callback_path, json={"SubjectNameID": "8" + REQUESTER_RPPS})
    assert r.status == 200
    r = await client.get("/api/v1/auth/session")
    assert r.status == 200
    assert (await r.json())["name"] == "Dr Claire Martin"


@SQLITE
async def test_unknown_rpps_is_refused(client, users):
    r = await client.client.post(PSC.callback_path, json={"SubjectNameID": "810000000000"})
    assert r.status == 403
    assert (await r.json())["code"] == "no_account"


@SQLITE
async def test_no_provider_is_offered_unless_configured(client):
    r = await client.get("/api/v1/auth/oidc/providers")
    assert r.status == 200 and await r.json() == {"providers": []}
    r = await client.get("/api/v1/auth/oidc/psc/start", allow_redirects=False)
    assert r.status == 404 and (await r.json())["code"] == "no_provider"


def test_psc_settings_go_together(tmp_path):
    from pydantic import ValidationError

    from tests.conftest import make_settings

    with pytest.raises(ValidationError, match="PSC_ISSUER and CONSILIUM_PSC_CLIENT_ID"):
        make_settings("sqlite+aiosqlite://", tmp_path, psc_issuer="https://psc.invalid/realm")
    with pytest.raises(ValidationError, match="https"):
        make_settings(
            "sqlite+aiosqlite://", tmp_path, psc_issuer="http://psc.invalid", psc_client_id="x"
        )
