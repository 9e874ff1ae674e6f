"""A secretary prepares a dossier "en délégation de" the practitioner; the practitioner signs."""

from __future__ import annotations

from tests.dossier.dossier_fixtures import *  # noqa: F403
from tests.dossier.dossier_fixtures import CARDIO_EMAIL, ENDO, TX_REQUESTER, new_patient


async def test_secretary_prepares_and_the_practitioner_signs(demo, as_user):
    sec = await as_user(demo["users"]["secretary"])
    req = await as_user(demo["users"]["requester"])
    r = await sec.get("/api/v1/dossiers/requesters")
    assert [u["name"] for u in await r.json()] == ["Dr Claire Martin"]
    p = await new_patient(sec, birth_name="Petit", first_name="Isabelle")
    r = await sec.post("/api/v1/dossiers", json={"patient_id": p["id"]})
    assert r.status == 201, await r.text()
    d = await r.json()
    assert d["requester"]["name"] == "Dr Claire Martin"
    assert d["on_behalf_label"] == "Sophie Durand, en délégation de Dr Claire Martin"
    url = f"/api/v1/dossiers/{d['id']}"
    await sec.put(f"{url}/consent", json={"consent": True, "comment": "Accord"})
    await sec.put(f"{url}/recipients", json={"care_offer_ids": [str(demo["offers"][ENDO].id)]})
    await sec.put(f"{url}/request-type", json={"code": "tx_simple"})
    r = await sec.put(f"{url}/forms/requester", json={"values": TX_REQUESTER})
    assert r.status == 200
    r = await sec.post(f"{url}/forms/requester/sign", json={})
    assert r.status == 403 and (await r.json())["code"] == "secretary_cannot_sign"
    # The practitioner sees it in the activity view, labelled, and signs.
    r = await req.get("/api/v1/dossiers", params={"q": "petit"})
    [row] = (await r.json())["items"]
    assert row["created_by_label"].endswith("en délégation de Dr Claire Martin")
    assert "sign_request" in row["actions"]
    r = await req.post(f"{url}/forms/requester/sign", json={})
    assert r.status == 200 and (await r.json())["state"] == "awaiting_expertise"
    assert (await r.json())["forms"][0]["signed_by"]["name"] == "Dr Claire Martin"


async def test_secretary_acts_only_for_the_practitioners_who_delegate(demo, as_user):
    sec = await as_user(demo["users"]["secretary"])
    outsider = demo["everyone"][CARDIO_EMAIL]
    p = await new_patient(sec)
    r = await sec.post(
        "/api/v1/dossiers", json={"patient_id": p["id"], "requester_id": str(outsider.id)}
    )
    assert r.status == 403 and (await r.json())["code"] == "not_delegated"
    adm = await as_user(demo["users"]["admin"])
    r = await adm.post("/api/v1/dossiers", json={"patient_id": p["id"]})
    assert r.status in (403, 404)
    # A practitioner cannot open a dossier on a patient they may not see.
    other = await as_user(outsider)
    r = await other.post("/api/v1/dossiers", json={"patient_id": p["id"]})
    assert r.status == 404 and (await r.json())["code"] == "patient_not_found"
