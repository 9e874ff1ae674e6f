from __future__ import annotations

import pytest

from core.context import DB
from rooms.seed import seed_demo


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_demo_rooms_are_seeded_once_and_listed(app, users, browsers):
    await seed_demo(app[DB], users)
    await seed_demo(app[DB], users)
    requester = await browsers("requester")
    kinds = sorted(r["kind"] for r in await (await requester.get("/api/v1/rooms")).json())
    assert kinds == ["estaff", "teleconsultation"]
    expert = await browsers("expert")
    [estaff] = await (await expert.get("/api/v1/rooms")).json()
    assert estaff["my_role"] == "host"
