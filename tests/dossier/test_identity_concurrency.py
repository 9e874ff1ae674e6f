"""Two requests at once never make two identities with one INS, nor two read receipts.

The tests run on SQLite and on PostgreSQL (the ``backend`` parametrisation of
tests/conftest.py): on SQLite writes are serialised by the database, on PostgreSQL the two
transactions truly overlap and only the unique index and the conflict handling keep one.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from core.context import DB
from dossier.identity.patients import ins_with_key
from dossier.models import Patient
from tests.dossier.dossier_fixtures import *  # noqa: F403
from tests.dossier.dossier_fixtures import ENDO, PATIENT, TX_REQUESTER, draft_ready_to_sign


async def test_same_ins_at_once_gives_one_identity_and_one_conflict(app, backend, demo, as_user):
    a = await as_user(demo["users"]["requester"])
    b = await as_user(demo["users"]["secretary"])
    ins = ins_with_key("2500338185001")
    body = {**PATIENT, "ins": ins, "confirm": True}
    ra, rb = await asyncio.gather(
        a.post("/api/v1/patients", json=body), b.post("/api/v1/patients", json=body)
    )
    assert sorted([ra.status, rb.status]) == [201, 409]
    loser = ra if ra.status == 409 else rb
    assert (await loser.json())["code"] == "ins_exists"
    async with app[DB].read() as s:
        count = await s.scalar(select(func.count()).select_from(Patient).where(Patient.ins == ins))
    assert count == 1, backend


async def test_first_openings_at_once_leave_one_receipt(demo, as_user):
    req = await as_user(demo["users"]["requester"])
    d = await draft_ready_to_sign(req, str(demo["offers"][ENDO].id))
    url = f"/api/v1/dossiers/{d['id']}"
    await req.post(f"{url}/forms/requester/sign", json={"values": TX_REQUESTER})
    exp1 = await as_user(demo["users"]["expert"])
    exp2 = await as_user(demo["users"]["expert"])
    r1, r2 = await asyncio.gather(exp1.get(url), exp2.get(url))
    assert r1.status == r2.status == 200
    receipts = (await (await req.get(url)).json())["receipts"]
    assert len(receipts) == 1
