"""Who may do what on a dossier, as a matrix: each role against each action.

Roles: the requester, their secretary (delegation), the expert (member of the recipient
care offer), an outsider practitioner, an admin, and someone not signed in. A dossier one
may not see answers 404 (its existence is not revealed); a forbidden action on a visible
dossier answers 403.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.audit import AuditEntry
from core.context import DB
from core.principal import Principal
from dossier.permissions import can_see
from tests.dossier.dossier_fixtures import *  # noqa: F403
from tests.dossier.dossier_fixtures import (
    CARDIO_EMAIL,
    ENDO,
    TX_EXPERT,
    TX_REQUESTER,
    draft_ready_to_sign,
)

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

ROLES = ("requester", "secretary", "expert", "outsider", "admin", "anonymous")

# (dossier state, action) -> expected status per role, in ROLES order.
MATRIX = {
    ("draft", "read"): (200, 200, 404, 404, 200, 401),
    ("draft", "history"): (200, 200, 404, 404, 200, 401),
    ("draft", "consent"): (200, 200, 404, 404, 403, 401),
    ("draft", "save_requester"): (200, 200, 404, 404, 403, 401),
    ("draft", "sign_requester"): (200, 403, 404, 404, 403, 401),
    ("submitted", "read"): (200, 200, 200, 404, 200, 401),
    ("submitted", "history"): (200, 200, 200, 404, 200, 401),
    ("submitted", "save_expert"): (403, 403, 200, 404, 403, 401),
    ("submitted", "sign_expert"): (403, 403, 200, 404, 403, 401),
    ("submitted", "request_closure"): (200, 200, 200, 404, 403, 401),
}


async def _do(c, action: str, url: str):
    if action == "read":
        return await c.get(url)
    if action == "history":
        return await c.get(f"{url}/history")
    if action == "consent":
        return await c.put(f"{url}/consent", json={"consent": True, "comment": "ok"})
    if action == "save_requester":
        return await c.put(f"{url}/forms/requester", json={"values": {"motif": "m"}})
    if action == "sign_requester":
        return await c.post(f"{url}/forms/requester/sign", json={"values": TX_REQUESTER})
    if action == "save_expert":
        return await c.put(f"{url}/forms/expert", json={"values": {"avis": "a"}})
    if action == "sign_expert":
        return await c.post(f"{url}/forms/expert/sign", json={"values": TX_EXPERT})
    if action == "request_closure":
        return await c.post(f"{url}/closure-request", json={})
    raise AssertionError(action)


# One test per (state, action); each role gets a fresh dossier, since some actions change it.
@pytest.mark.parametrize(("state", "action"), list(MATRIX), ids=[f"{s}-{a}" for s, a in MATRIX])
async def test_permission_matrix(app, demo, as_user, make_client, state, action):
    req = await as_user(demo["users"]["requester"])
    who = {"outsider": demo["everyone"][CARDIO_EMAIL], **demo["users"]}
    clients = {
        role: (await make_client() if role == "anonymous" else await as_user(who[role]))
        for role in ROLES
    }
    got: dict[str, int] = {}
    for role in ROLES:
        d = await draft_ready_to_sign(req, str(demo["offers"][ENDO].id))
        url = f"/api/v1/dossiers/{d['id']}"
        if state == "submitted":
            r = await req.post(f"{url}/forms/requester/sign", json={"values": TX_REQUESTER})
            assert r.status == 200
        r = await _do(clients[role], action, url)
        got[role] = r.status
        if r.status >= 400:
            assert r.content_type == "application/problem+json"
        if r.status in (403, 404) and role != "anonymous":
            async with app[DB].read() as s:
                rows = await s.execute(
                    select(AuditEntry).where(
                        AuditEntry.object_id == d["id"], AuditEntry.outcome == "denied"
                    )
                )
                denied = rows.scalars().all()
            assert [e.actor_id for e in denied] == [who[role].id], role
    assert got == dict(zip(ROLES, MATRIX[(state, action)], strict=True))


async def test_can_see_for_rooms(app, demo, as_user):
    req = await as_user(demo["users"]["requester"])
    d = await draft_ready_to_sign(req, str(demo["offers"][ENDO].id))
    import uuid

    def p(u, delegates=()):
        return Principal(
            kind="user",
            subject_id=u.id,
            label="",
            role=u.role.value,
            session_id="",
            delegates_for=delegates,
        )

    u = demo["users"]
    async with app[DB].read() as s:
        assert await can_see(s, p(u["requester"]), uuid.UUID(d["id"]))
        assert await can_see(s, p(u["secretary"], (u["requester"].id,)), uuid.UUID(d["id"]))
        assert not await can_see(s, p(u["expert"]), uuid.UUID(d["id"]))  # still a draft
        assert not await can_see(s, p(demo["everyone"][CARDIO_EMAIL]), uuid.UUID(d["id"]))
        assert await can_see(s, p(u["admin"]), uuid.UUID(d["id"]))
        assert not await can_see(s, p(u["admin"]), uuid.uuid4())
