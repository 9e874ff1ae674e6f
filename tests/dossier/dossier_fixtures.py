"""Shared fixtures of the dossier tests (part A): demo directory, clients per role, and a
helper that drives the wizard through the API."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from core.accounts import User
from core.context import DB
from dossier.models import CareOffer
from dossier.seed import seed_demo


@pytest.fixture
async def demo(app, users) -> dict[str, Any]:
    """Demo directory and request types; every demo account plus the directory's experts."""
    await seed_demo(app[DB], users)
    async with app[DB].read() as s:
        everyone = {u.email: u for u in (await s.execute(select(User))).scalars()}
        offers = {o.name: o for o in (await s.execute(select(CareOffer))).scalars()}
    return {"users": dict(users), "everyone": everyone, "offers": offers}


ENDO = "Téléexpertise endocrinologie-diabétologie"
CARDIO_EMAIL = "thomas.roux@demo.consilium.fr"


@pytest.fixture
async def as_user(make_client):
    """``c = await as_user(user)``: a browser signed in as this account."""

    async def factory(user: User):
        c = await make_client()
        await c.sign_in_as(user.id)
        return c

    return factory


PATIENT = {
    "birth_name": "Dupont",
    "first_name": "Élise",
    "sex": "F",
    "birth_date": "1950-03-12",
    "birth_commune": "Grenoble",
    "birth_postcode": "38000",
}


async def new_patient(c, **over: Any) -> dict[str, Any]:
    r = await c.post("/api/v1/patients", json={**PATIENT, **over, "confirm": True})
    assert r.status == 201, await r.text()
    return await r.json()


async def draft_ready_to_sign(c, offer_id: str, *, code: str = "tx_simple", **patient: Any):
    """A draft with identity, consent, recipients and request type: the requester may sign."""
    p = await new_patient(c, **patient)
    r = await c.post("/api/v1/dossiers", json={"patient_id": p["id"]})
    assert r.status == 201, await r.text()
    d = await r.json()
    r = await c.put(
        f"/api/v1/dossiers/{d['id']}/consent",
        json={"consent": True, "comment": "Patient informé", "urgent": False},
    )
    assert r.status == 200, await r.text()
    r = await c.put(f"/api/v1/dossiers/{d['id']}/recipients", json={"care_offer_ids": [offer_id]})
    assert r.status == 200, await r.text()
    r = await c.put(f"/api/v1/dossiers/{d['id']}/request-type", json={"code": code})
    assert r.status == 200, await r.text()
    return await r.json()


TX_REQUESTER = {"motif": "Plaie du talon", "question": "Faut-il une antibiothérapie ?"}
TX_EXPERT = {"avis": "Pas d'antibiothérapie, soins locaux.", "suivi": "Revoir dans 1 mois"}
