"""The dossier's life: allowed and illegal transitions, locks after signature, closure by
either side, and failing steps that leave the dossier as it was."""

from __future__ import annotations

import uuid

import pytest

from core.context import DB
from dossier.models import Dossier, DossierState
from dossier.workflow.states import TRANSITIONS, can_transition
from tests.dossier.dossier_fixtures import *  # noqa: F403
from tests.dossier.dossier_fixtures import (
    ENDO,
    TX_EXPERT,
    TX_REQUESTER,
    draft_ready_to_sign,
    new_patient,
)

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
S = DossierState


def test_transition_table_follows_the_seed():
    assert can_transition(S.draft, S.awaiting_expertise)
    assert can_transition(S.awaiting_expertise, S.expertised)
    assert can_transition(S.expertised, S.closed)
    assert not can_transition(S.draft, S.expertised)
    assert not can_transition(S.awaiting_expertise, S.closed)
    assert TRANSITIONS[S.closed] == frozenset()
    assert all(
        can_transition(s, S.closure_requested)
        for s in (S.draft, S.awaiting_expertise, S.expertised)
    )


async def submitted(demo, as_user):
    req = await as_user(demo["users"]["requester"])
    exp = await as_user(demo["users"]["expert"])
    d = await draft_ready_to_sign(req, str(demo["offers"][ENDO].id))
    url = f"/api/v1/dossiers/{d['id']}"
    r = await req.post(f"{url}/forms/requester/sign", json={"values": TX_REQUESTER})
    assert r.status == 200, await r.text()
    return req, exp, url


async def test_illegal_transitions_are_refused_with_a_clear_error(demo, as_user):
    req, exp, url = await submitted(demo, as_user)
    # Signing the requester part again: the part is locked.
    r = await req.post(f"{url}/forms/requester/sign", json={})
    assert r.status == 409 and (await r.json())["code"] == "part_signed"
    # Closing a dossier awaiting expertise directly is not a step of the seed.
    r = await req.post(f"{url}/close")
    body = await r.json()
    assert r.status == 409 and body["code"] == "illegal_transition"
    assert body["state"] == "awaiting_expertise" and "closure_requested" in body["allowed"]
    # The request can no longer change once sent.
    r = await req.put(f"{url}/consent", json={"consent": False, "comment": "x"})
    assert r.status == 409 and (await r.json())["code"] == "illegal_state"
    # Withdrawing a closure nobody asked for.
    r = await req.delete(f"{url}/closure-request")
    assert r.status == 409 and (await r.json())["code"] == "illegal_transition"
    # Expert signs, then nothing of the form moves again.
    r = await exp.post(f"{url}/forms/expert/sign", json={"values": TX_EXPERT})
    assert r.status == 200
    r = await exp.post(f"{url}/forms/expert/sign", json={"values": TX_EXPERT})
    assert r.status == 409 and (await r.json())["code"] == "part_signed"
    r = await exp.post(f"{url}/close")
    assert r.status == 200 and (await r.json())["state_label"] == "Dossier clôturé"
    for method, path, body in (
        ("post", "/closure-request", {}),
        ("post", "/close", None),
        ("put", "/forms/expert", {"values": {"avis": "x"}}),
    ):
        r = await getattr(req if "expert" not in path else exp, method)(
            url + path, **({"json": body} if body is not None else {})
        )
        assert r.status == 409, path


async def test_closure_requested_by_one_side_is_accepted_by_the_other(demo, as_user):
    req, exp, url = await submitted(demo, as_user)
    r = await req.post(f"{url}/closure-request", json={"reason": "Patient hospitalisé"})
    d = await r.json()
    assert d["state"] == "closure_requested" and d["state_label"] == "Demande clôture"
    assert "close" not in d["actions"] and "withdraw_closure" in d["actions"]
    assert "close" in (await (await exp.get(url)).json())["actions"]
    r = await req.post(f"{url}/close")
    assert r.status == 409 and (await r.json())["code"] == "closure_needs_other_side"
    # Withdrawn: back where it was; asked again; the expert accepts.
    r = await req.delete(f"{url}/closure-request")
    assert (await r.json())["state"] == "awaiting_expertise"
    await req.post(f"{url}/closure-request", json={})
    r = await exp.post(f"{url}/close")
    d = await r.json()
    assert r.status == 200 and d["state"] == "closed" and d["closed_at"]


@SQLITE
async def test_a_failing_step_leaves_the_dossier_unchanged(app, demo, as_user):
    req = await as_user(demo["users"]["requester"])
    offer = str(demo["offers"][ENDO].id)
    d = await draft_ready_to_sign(req, offer)
    url = f"/api/v1/dossiers/{d['id']}"
    before = await (await req.get(url)).json()
    # One unknown care offer among good ones: nothing replaced.
    r = await req.put(
        f"{url}/recipients",
        json={"care_offer_ids": [offer, "00000000-0000-4000-8000-000000000000"]},
    )
    assert r.status == 422 and (await r.json())["code"] == "unknown_care_offer"
    # Signing with a required field missing: not signed, still a draft, values not saved.
    r = await req.post(f"{url}/forms/requester/sign", json={"values": {"motif": "m"}})
    problem = await r.json()
    assert r.status == 422 and problem["code"] == "form_incomplete"
    assert [f["field"] for f in problem["fields"]] == ["question"]
    r = await req.put(f"{url}/forms/requester", json={"values": {"motif": 3}})
    assert r.status == 422
    r = await req.put(f"{url}/consent", json={"consent": True, "comment": "   "})
    assert r.status == 422
    r = await req.put(f"{url}/request-type", json={"code": "nope"})
    assert r.status == 422
    r = await req.put(
        f"{url}/recipients", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status == 400 and r.content_type == "application/problem+json"
    after = await (await req.get(url)).json()
    for key in ("state", "recipients", "forms", "consent", "consent_comment", "modified_at"):
        assert after[key] == before[key], key
    async with app[DB].read() as s:
        assert (await s.get(Dossier, uuid.UUID(d["id"]))).state is S.draft


@SQLITE
async def test_consent_and_recipients_are_needed_before_sending(demo, as_user):
    req = await as_user(demo["users"]["requester"])
    p = await new_patient(req)
    d = await (await req.post("/api/v1/dossiers", json={"patient_id": p["id"]})).json()
    url = f"/api/v1/dossiers/{d['id']}"
    r = await req.post(f"{url}/forms/requester/sign", json={})
    assert r.status == 409 and (await r.json())["code"] == "request_type_missing"
    await req.put(f"{url}/request-type", json={"code": "tx_simple"})
    r = await req.post(f"{url}/forms/requester/sign", json={"values": TX_REQUESTER})
    assert r.status == 409 and (await r.json())["code"] == "consent_missing"
    await req.put(f"{url}/consent", json={"consent": False, "comment": "Refus du patient"})
    r = await req.post(f"{url}/forms/requester/sign", json={"values": TX_REQUESTER})
    assert r.status == 409 and (await r.json())["code"] == "consent_missing"
    await req.put(f"{url}/consent", json={"consent": True, "comment": "Accord"})
    r = await req.post(f"{url}/forms/requester/sign", json={"values": TX_REQUESTER})
    assert r.status == 409 and (await r.json())["code"] == "recipients_missing"
    # The requester may abandon their own draft.
    r = await req.post(f"{url}/close")
    assert r.status == 200 and (await r.json())["state"] == "closed"


async def test_activity_view_filters_sorts_and_pages(demo, as_user):
    req = await as_user(demo["users"]["requester"])
    offer = str(demo["offers"][ENDO].id)
    await draft_ready_to_sign(req, offer, birth_name="Zola", first_name="Emile")
    await draft_ready_to_sign(req, offer, birth_name="Abel", first_name="Anne")
    r = await req.get("/api/v1/dossiers", params={"sort": "patient"})
    page = await r.json()
    assert page["total"] == 4  # two from the demo, two here
    rows = page["items"]
    assert rows[0]["urgent"] is True  # urgent first, whatever the sort
    rest = [x["patient_name"] for x in rows[1:]]
    assert rest == sorted(rest)
    r = await req.get("/api/v1/dossiers", params={"q": "zola"})
    [row] = (await r.json())["items"]
    assert row["patient_name"] == "ZOLA Emile" and row["state_label"] == "Demande d'avis initiale"
    assert "sign_request" in row["actions"]
    r = await req.get("/api/v1/dossiers", params={"state": "draft", "per_page": "1", "page": "2"})
    page = await r.json()
    assert page["total"] == 3 and len(page["items"]) == 1
    r = await req.get("/api/v1/dossiers", params={"urgent": "true"})
    assert [x["urgent"] for x in (await r.json())["items"]] == [True]
    r = await req.get("/api/v1/dossiers", params={"state": "nope"})
    assert r.status == 422
