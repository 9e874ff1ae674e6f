"""Live updates: each change of a dossier is published after commit as ``dossier.updated``
to the users who may see it; a refused change publishes nothing. SMS per preference."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.context import BUS, DB
from core.notify import Notification
from tests.dossier.dossier_fixtures import *  # noqa: F403
from tests.dossier.dossier_fixtures import ENDO, TX_REQUESTER, draft_ready_to_sign

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


async def test_changes_are_published_to_everyone_who_may_see_the_dossier(app, demo, as_user):
    events = []

    async def keep(ev):
        events.append(ev)

    app[BUS].subscribe("dossier.", keep)
    u = demo["users"]
    req, exp = await as_user(u["requester"]), await as_user(u["expert"])
    d = await draft_ready_to_sign(req, str(demo["offers"][ENDO].id))
    url = f"/api/v1/dossiers/{d['id']}"
    draft_events = [e for e in events if e.payload["dossier_id"] == d["id"]]
    assert [e.payload["change"] for e in draft_events] == [
        "create",
        "consent",
        "recipients",
        "request_type",
    ]
    # While a draft, the experts are not told.
    assert str(u["expert"].id) not in draft_events[-1].routing["user_ids"]
    assert str(u["secretary"].id) in draft_events[-1].routing["user_ids"]
    events.clear()
    r = await req.post(f"{url}/forms/requester/sign", json={"values": {"motif": "m"}})
    assert r.status == 422
    assert events == []  # refused: nothing published
    await req.post(f"{url}/forms/requester/sign", json={"values": TX_REQUESTER})
    [ev] = events
    assert ev.name == "dossier.updated" and ev.payload["change"] == "submitted"
    assert ev.payload["state_label"] == "Avis en attente d'expertise"
    assert str(u["expert"].id) in ev.routing["user_ids"]
    events.clear()
    await exp.get(url)
    [ev] = events
    assert ev.payload["change"] == "read" and str(u["requester"].id) in ev.routing["user_ids"]


async def test_expert_preferring_sms_is_told_by_sms(app, demo, as_user):
    u = demo["users"]
    async with app[DB].write() as uow:
        expert = await uow.session.get(type(u["expert"]), u["expert"].id)
        expert.preferences = {"notify": "sms"}
    req = await as_user(u["requester"])
    d = await draft_ready_to_sign(req, str(demo["offers"][ENDO].id))
    await req.post(
        f"/api/v1/dossiers/{d['id']}/forms/requester/sign", json={"values": TX_REQUESTER}
    )
    async with app[DB].read() as s:
        rows = (await s.execute(select(Notification))).scalars().all()
    mine = [n for n in rows if n.body and d["id"] in n.body]
    assert [n.channel for n in mine] == ["sms"]
    assert mine[0].recipient == u["expert"].mobile
