"""Access to a dossier by its number and the patient's birth date (seed 002 § 2.2), on both
backends: "permet d'afficher le dossier correspondant, mais ne permet pas d'accéder à
l'ensemble des dossiers du patient".

A practitioner on neither side of the dossier (Dr Thomas Roux, cardiology) types the number
and the birth date: he then reads that dossier and its documents, and nothing else of the
patient; he writes nothing. A mismatch never says whether the number exists. Denied
attempts are audited and limited per user.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from sqlalchemy import select

from core.audit import AuditEntry
from core.context import DB, SESSIONS
from core.db import utcnow
from core.principal import Principal
from dossier.identity import lookup
from dossier.models import DossierGrant
from dossier.permissions import can_see
from tests.dossier.dossier_fixtures import *  # noqa: F403
from tests.dossier.dossier_fixtures import (
    CARDIO_EMAIL,
    ENDO,
    PATIENT,
    TX_EXPERT,
    TX_REQUESTER,
    draft_ready_to_sign,
)
from tests.support.documents import pdf_bytes

BIRTH = PATIENT["birth_date"]  # 1950-03-12
LOOKUP = "/api/v1/dossiers/lookup"


async def _submitted(req, demo, **patient) -> dict:
    d = await draft_ready_to_sign(req, str(demo["offers"][ENDO].id), **patient)
    r = await req.post(
        f"/api/v1/dossiers/{d['id']}/forms/requester/sign", json={"values": TX_REQUESTER}
    )
    assert r.status == 200, await r.text()
    return await r.json()


async def _audit(app, actor_id: uuid.UUID) -> list[AuditEntry]:
    async with app[DB].read() as s:
        rows = await s.execute(
            select(AuditEntry)
            .where(AuditEntry.actor_id == actor_id, AuditEntry.action == lookup.ACTION)
            .order_by(AuditEntry.at)
        )
        return list(rows.scalars())


async def test_number_and_birth_date_open_that_dossier_only_for_reading(app, demo, as_user):
    u = demo["users"]
    req = await as_user(u["requester"])
    outsider_user = demo["everyone"][CARDIO_EMAIL]
    out = await as_user(outsider_user)
    d = await _submitted(req, demo)
    url = f"/api/v1/dossiers/{d['id']}"
    ecg = pdf_bytes(1, "ECG de Mme Dupont")
    r = await req.post(f"{url}/documents?filename=ECG.pdf", data=ecg)
    assert r.status == 201, await r.text()
    doc = await r.json()
    # A second dossier of the same patient, and the requester's own third one.
    r = await req.post("/api/v1/dossiers", json={"patient_id": d["patient"]["id"]})
    other = await r.json()

    # Before: Dr Roux does not see it.
    assert (await out.get(url)).status == 404

    # A wrong birth date and an unknown number get the very same answer.
    r1 = await out.post(LOOKUP, json={"number": d["number"], "birth_date": "1950-12-03"})
    r2 = await out.post(LOOKUP, json={"number": "TE-1999-000042", "birth_date": BIRTH})
    assert r1.status == r2.status == 404
    assert r1.content_type == r2.content_type == "application/problem+json"
    b1, b2 = await r1.json(), await r2.json()
    b1.pop("request_id"), b2.pop("request_id")
    assert b1 == b2  # not a word more in one than in the other
    assert b1["code"] == "dossier_not_found"
    assert (await out.get(url)).status == 404  # still nothing

    # Number (typed the way it is said on the phone) and birth date: that dossier opens.
    spoken = d["number"].lower().replace("-", " ")
    r = await out.post(LOOKUP, json={"number": spoken, "birth_date": BIRTH})
    assert r.status == 200, await r.text()
    assert await r.json() == {"dossier_id": d["id"]}
    r = await out.get(url)
    assert r.status == 200
    seen = await r.json()
    assert seen["number"] == d["number"] and seen["my_side"] == "reader"
    assert seen["actions"] == ["open"]
    assert seen["receipts"] == []  # a reader by number is not the expert: no "lu par"

    # Its documents: listed and downloaded, the same bytes.
    r = await out.get(f"{url}/documents")
    assert r.status == 200
    listed_docs = [x["id"] for c in (await r.json())["categories"] for x in c["documents"]]
    assert listed_docs == [doc["id"]]
    r = await out.get(f"{url}/documents/{doc['id']}/content")
    assert r.status == 200 and await r.read() == ecg
    r = await out.get(f"{url}/history")
    assert r.status == 200
    actions = [(h["action"], h["outcome"]) for h in await r.json()]
    assert ("dossier.access_by_number", "denied") in actions  # the wrong birth date
    assert ("dossier.access_by_number", "success") in actions

    # Not the patient's other dossiers, nor the patient's identity.
    assert (await out.get(f"/api/v1/dossiers/{other['id']}")).status == 404
    r = await out.get("/api/v1/dossiers")
    listed = (await r.json())["items"]
    assert [(x["id"], x["by_number"], x["actions"]) for x in listed] == [(d["id"], True, ["open"])]
    r = await out.get("/api/v1/patients", params={"q": "Dupont"})
    assert r.status == 200 and await r.json() == []
    assert (await out.get(f"/api/v1/patients/{d['patient']['id']}")).status == 404
    r = await out.post("/api/v1/dossiers", json={"patient_id": d["patient"]["id"]})
    assert r.status == 404  # cannot open a new dossier on that patient either

    # Writes nothing.
    refused = [
        await out.put(f"{url}/forms/expert", json={"values": {"avis": "x"}}),
        await out.post(f"{url}/forms/expert/sign", json={"values": TX_EXPERT}),
        await out.post(f"{url}/closure-request", json={"reason": "x"}),
        await out.post(f"{url}/close"),
        await out.post(f"{url}/documents?filename=x.pdf", data=pdf_bytes(1)),
        await out.post(f"{url}/report"),
        await out.post(
            f"{url}/send",
            json={
                "document_id": doc["id"],
                "channel": "mss",
                "mss_recipients": ["dr.x@demo.mssante.fr"],
            },
        ),
    ]
    assert [r.status for r in refused] == [403] * 7
    for r in refused:
        assert r.content_type == "application/problem+json"

    # Rooms are for the participants: the reader does not open or enter them.
    p = Principal(
        kind="user", subject_id=outsider_user.id, label="", role="practitioner", session_id=""
    )
    async with app[DB].read() as s:
        assert not await can_see(s, p, uuid.UUID(d["id"]))
        grants = (await s.execute(select(DossierGrant))).scalars().all()
    assert [(g.dossier_id, g.user_id, g.kind.value) for g in grants] == [
        (uuid.UUID(d["id"]), outsider_user.id, "by_number")
    ]

    # The audit trail: two refusals (with their reason, never the birth date), one grant.
    rows = await _audit(app, outsider_user.id)
    assert [(e.outcome, e.details.get("reason"), e.details.get("access")) for e in rows] == [
        ("denied", "wrong_birth_date", None),
        ("denied", "unknown_number", None),
        ("success", None, "granted"),
    ]
    assert rows[0].object_id == rows[2].object_id == d["id"] and rows[1].object_id == ""
    assert all(BIRTH not in str(e.details) and "1950" not in str(e.details) for e in rows)

    # A second lookup changes nothing (one grant row).
    r = await out.post(LOOKUP, json={"number": d["number"], "birth_date": BIRTH})
    assert r.status == 200
    async with app[DB].read() as s:
        assert len((await s.execute(select(DossierGrant))).scalars().all()) == 1


async def test_participants_keep_what_they_could_do_and_drafts_do_not_open(app, demo, as_user):
    u = demo["users"]
    req, exp = await as_user(u["requester"]), await as_user(u["expert"])
    out = await as_user(demo["everyone"][CARDIO_EMAIL])
    d = await _submitted(req, demo)
    # The expert already sees it: the lookup answers, no grant, and he still signs.
    r = await exp.post(LOOKUP, json={"number": d["number"], "birth_date": BIRTH})
    assert r.status == 200
    r = await exp.post(f"/api/v1/dossiers/{d['id']}/forms/expert/sign", json={"values": TX_EXPERT})
    assert r.status == 200 and (await r.json())["my_side"] == "expert"
    async with app[DB].read() as s:
        assert (await s.execute(select(DossierGrant))).scalars().all() == []
    [row] = await _audit(app, u["expert"].id)
    assert row.outcome == "success" and row.details["access"] == "already"

    # A draft is not sent yet (the patient's consent may not be recorded): same 404.
    draft = await draft_ready_to_sign(req, str(demo["offers"][ENDO].id), birth_name="Nouveau")
    r = await out.post(LOOKUP, json={"number": draft["number"], "birth_date": BIRTH})
    assert r.status == 404 and (await r.json())["code"] == "dossier_not_found"
    assert (await out.get(f"/api/v1/dossiers/{draft['id']}")).status == 404
    [row] = await _audit(app, demo["everyone"][CARDIO_EMAIL].id)
    assert row.details["reason"] == "draft"


async def test_only_practitioners_look_dossiers_up(app, demo, as_user, make_client):
    u = demo["users"]
    req = await as_user(u["requester"])
    d = await _submitted(req, demo)
    body = {"number": d["number"], "birth_date": BIRTH}
    # A secretary: 403, audited.
    sec = await as_user(u["secretary"])
    r = await sec.post(LOOKUP, json=body)
    assert r.status == 403 and (await r.json())["code"] == "lookup_practitioners_only"
    assert [e.outcome for e in await _audit(app, u["secretary"].id)] == ["denied"]
    # A guest (a patient invited to a room): 403.
    guest = await make_client()
    token, s = await app[SESSIONS].create(
        kind="guest", subject_id=uuid.uuid4(), stage="full", data={"label": "Mme Dupont"}
    )
    guest.client.session.cookie_jar.update_cookies({"consilium_session": token})
    guest.csrf = s.csrf_token
    r = await guest.post(LOOKUP, json=body)
    assert r.status == 403 and (await r.json())["code"] == "account_required"
    # Not signed in: 401.
    anon = await make_client()
    assert (await anon.post(LOOKUP, json=body)).status == 401
    # A number that cannot be one: 422, said plainly (the format is no secret).
    out = await as_user(demo["everyone"][CARDIO_EMAIL])
    r = await out.post(LOOKUP, json={"number": "Dupont", "birth_date": BIRTH})
    assert r.status == 422 and (await r.json())["code"] == "invalid_dossier_number"
    r = await out.post(LOOKUP, json={"number": d["number"], "birth_date": "12/03/1950"})
    assert r.status == 422


async def test_ten_failures_in_fifteen_minutes_then_429_with_retry_after(
    app, demo, as_user, monkeypatch
):
    u = demo["users"]
    req = await as_user(u["requester"])
    roux = demo["everyone"][CARDIO_EMAIL]
    out = await as_user(roux)
    d = await _submitted(req, demo)
    for i in range(lookup.MAX_FAILURES):
        r = await out.post(LOOKUP, json={"number": f"TE-2020-{i + 1}", "birth_date": BIRTH})
        assert r.status == 404
    # The eleventh, even right, waits.
    r = await out.post(LOOKUP, json={"number": d["number"], "birth_date": BIRTH})
    assert r.status == 429
    body = await r.json()
    assert body["code"] == "lookup_rate_limited"
    wait = int(r.headers["Retry-After"])
    assert 0 < wait <= 15 * 60 and body["retry_after"] == wait
    assert (await out.get(f"/api/v1/dossiers/{d['id']}")).status == 404
    # Another practitioner is not held back by Dr Roux's attempts.
    exp = await as_user(u["expert"])
    r = await exp.post(LOOKUP, json={"number": d["number"], "birth_date": BIRTH})
    assert r.status == 200
    # Refusals for the limit are audited but do not lengthen the wait.
    r = await out.post(LOOKUP, json={"number": d["number"], "birth_date": BIRTH})
    assert r.status == 429
    rows = await _audit(app, roux.id)
    reasons = [e.details["reason"] for e in rows]
    assert reasons == ["unknown_number"] * 10 + ["rate_limited"] * 2
    # Fifteen minutes later (the audit log is append-only: the lookup's clock moves on).
    later = utcnow() + timedelta(minutes=15, seconds=1)
    monkeypatch.setattr(lookup, "utcnow", lambda: later)
    r = await out.post(LOOKUP, json={"number": d["number"], "birth_date": BIRTH})
    assert r.status == 200, await r.text()


async def test_parallel_attempts_cannot_slip_past_the_limit(app, demo, as_user):
    """Twenty-five wrong attempts sent at once: the user's row is locked while counting, so
    exactly ten are answered (404) and the rest wait (429)."""
    roux = demo["everyone"][CARDIO_EMAIL]
    out = await as_user(roux)
    rs = await asyncio.gather(
        *(
            out.post(LOOKUP, json={"number": f"TE-2020-{i + 1}", "birth_date": BIRTH})
            for i in range(25)
        )
    )
    statuses = sorted(r.status for r in rs)
    assert statuses == [404] * 10 + [429] * 15
    rows = await _audit(app, roux.id)
    assert sum(e.details["reason"] == "unknown_number" for e in rows) == 10
