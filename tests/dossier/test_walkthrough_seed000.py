"""Seed 000, step by step through the API: identity search with match rate, duplicate warning
and confirmation, consent, care-offer search with a radius, request type, requester signs
(locked), expert notified by e-mail, expert opens (receipt visible to the requester), expert
signs (expertised), requester notified; the history tells it all."""

from __future__ import annotations

import pytest

from tests.conftest import make_settings
from tests.dossier.dossier_fixtures import *  # noqa: F403
from tests.dossier.dossier_fixtures import ENDO


@pytest.fixture
def settings(database_url, tmp_path, smtp):
    return make_settings(database_url, tmp_path / "data", smtp_host=smtp.host, smtp_port=smtp.port)


async def test_seed_000_walkthrough_up_to_expert_signature(demo, as_user, smtp):
    requester, expert = demo["users"]["requester"], demo["users"]["expert"]
    req = await as_user(requester)
    exp = await as_user(expert)

    # 2.2 Identity search: the demo patient, found despite case, accents and a typo.
    r = await req.get("/api/v1/patients", params={"q": "sevestre véronique"})
    assert r.status == 200, await r.text()
    [hit] = await r.json()
    assert hit["match_rate"] == 100.0 and hit["ins_status_label"] == "Identité qualifiée"
    r = await req.get("/api/v1/patients", params={"q": "SEVESTRE veroniqe"})
    [typo] = await r.json()
    assert typo["id"] == hit["id"] and 70 <= typo["match_rate"] < 100
    r = await req.get("/api/v1/patients", params={"q": "s"})
    assert r.status == 422  # 2 characters at least

    # Unknown identity: create it; a look-alike triggers the warning, then "Confirmer".
    lucie = {"birth_name": "Bernard", "first_name": "Lucie", "sex": "F", "birth_date": "1944-05-17"}
    r = await req.post("/api/v1/patients", json=lucie)
    assert r.status == 201, await r.text()
    r = await req.post(
        "/api/v1/patients", json={**lucie, "birth_name": "Bernart", "first_name": "Lucy"}
    )
    assert r.status == 409
    warning = await r.json()
    assert warning["code"] == "similar_identities"
    assert warning["candidates"][0]["birth_name"] == "BERNARD"
    assert warning["candidates"][0]["match_rate"] >= 85
    r = await req.post(
        "/api/v1/patients",
        json={**lucie, "birth_name": "Bernart", "first_name": "Lucy", "confirm": True},
    )
    assert r.status == 201
    patient = await r.json()

    # 2.2.4 The dossier exists from the first step, as "Demande d'avis initiale".
    r = await req.post("/api/v1/dossiers", json={"patient_id": patient["id"]})
    assert r.status == 201, await r.text()
    d = await r.json()
    assert d["state"] == "draft" and d["state_label"] == "Demande d'avis initiale"
    url = f"/api/v1/dossiers/{d['id']}"

    # 2.2.1 Consent.
    r = await req.put(
        f"{url}/consent",
        json={"consent": True, "comment": "Informée, d'accord.", "urgent": True},
    )
    assert r.status == 200 and (await r.json())["urgent"] is True

    # 2.2.2 Care offer: keyword + address + radius.
    r = await req.get(
        "/api/v1/care-offers", params={"q": "diab", "near": "69003 Lyon", "radius_km": "20"}
    )
    assert r.status == 200, await r.text()
    found = await r.json()
    names = [o["name"] for o in found["items"]]
    assert ENDO in names
    assert "Avis diabétologie — pied diabétique" not in names  # Grenoble, ~95 km
    assert all(o["distance_km"] <= 20 for o in found["items"])
    r = await req.get(
        "/api/v1/care-offers", params={"q": "diab", "near": "Lyon", "radius_km": "150"}
    )
    assert "Avis diabétologie — pied diabétique" in [o["name"] for o in (await r.json())["items"]]
    endo = next(o for o in found["items"] if o["name"] == ENDO)
    assert [m["name"] for m in endo["members"]] == ["Dr Karim Benali"]
    r = await req.put(f"{url}/recipients", json={"care_offer_ids": [endo["id"]]})
    assert r.status == 200

    # 2.2.3 Request type.
    r = await req.put(f"{url}/request-type", json={"code": "tlx_diabeto-endocrino"})
    assert r.status == 200
    d = await r.json()
    assert [f["side"] for f in d["forms"]] == ["requester", "expert"]

    # 2.2.5 The requester fills (draft), then signs: the part is locked.
    values = {
        "motif": "Déséquilibre glycémique",
        "type_diabete": "Type 2",
        "hba1c": 9.1,
        "date_hba1c": "2026-10-02",
        "traitement": "Metformine",
    }
    r = await req.put(f"{url}/forms/requester", json={"values": values})
    assert r.status == 200
    mails_before = len(smtp.to(expert.email))
    r = await req.post(
        f"{url}/forms/requester/sign", json={"values": {"question": "Insuline basale ?"}}
    )
    assert r.status == 200, await r.text()
    d = await r.json()
    assert d["state"] == "awaiting_expertise"
    assert d["state_label"] == "Avis en attente d'expertise"
    assert d["forms"][0]["status"] == "signed"
    assert d["forms"][0]["signed_by"]["name"] == "Dr Claire Martin"
    r = await req.put(f"{url}/forms/requester", json={"values": {"hba1c": 7.0}})
    assert r.status == 409 and (await r.json())["code"] == "part_signed"

    # The expert is told by e-mail (no patient data in it).
    mails = await smtp.wait_for(expert.email, count=mails_before + 1)
    text = smtp.text_of(mails[-1])
    assert "URGENT" in str(mails[-1]["Subject"]) and d["id"] in text
    assert "BERNART" not in text and "Bernart" not in text

    # 3.1 The expert finds it in the activity view and opens it: a read receipt.
    r = await exp.get("/api/v1/dossiers", params={"state": "awaiting_expertise"})
    rows = (await r.json())["items"]
    assert rows[0]["id"] == d["id"] and rows[0]["urgent"] is True  # urgent first
    assert "sign_expertise" in rows[0]["actions"]
    r = await req.get(url)
    assert (await r.json())["receipts"] == []
    r = await exp.get(url)
    assert r.status == 200 and (await r.json())["my_side"] == "expert"
    await exp.get(url)  # only the first opening counts
    r = await req.get(url)
    [receipt] = (await r.json())["receipts"]
    assert receipt["label"].startswith("Dossier lu par Dr Karim Benali le ")
    assert receipt["first_read_at"].endswith("Z") or "+00:00" in receipt["first_read_at"]

    # 3.2 The expert writes the opinion, saves, signs: expertised, and locked.
    r = await exp.put(f"{url}/forms/expert", json={"values": {"avis": "Débuter une basale."}})
    assert r.status == 200
    r = await exp.post(f"{url}/forms/expert/sign", json={"values": {"reevaluation": "3 mois"}})
    assert r.status == 200, await r.text()
    d = await r.json()
    assert d["state"] == "expertised" and d["state_label"] == "Dossier expertisé"
    assert d["expert"]["name"] == "Dr Karim Benali"
    r = await exp.put(f"{url}/forms/expert", json={"values": {"avis": "Autre avis"}})
    assert r.status == 409 and (await r.json())["code"] == "part_signed"

    # The requester is told the opinion is signed.
    [done] = await smtp.wait_for(requester.email)
    assert "avis" in str(done["Subject"]).lower()

    # The dossier's own history, from the audit log.
    r = await req.get(f"{url}/history")
    actions = [e["action"] for e in await r.json()]
    for a in (
        "dossier.create",
        "dossier.consent",
        "dossier.recipients",
        "dossier.request_type",
        "dossier.form.requester.save",
        "dossier.submitted",
        "dossier.read",
        "dossier.receipt",
        "dossier.expertised",
    ):
        assert a in actions, a
    assert actions.index("dossier.submitted") < actions.index("dossier.receipt")
