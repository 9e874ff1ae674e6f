from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from core.app import create_app
from rooms.live import Live
from tests.support.live import Sock, open_socket


@pytest.fixture
def app(settings: Any) -> web.Application:
    app = create_app(settings)
    Live.of(app).grace = 1.0  # short grace period: tests wait for expiry
    return app


@pytest.fixture
async def sockets() -> AsyncIterator[Any]:
    """``sock = await sockets(api_client)``: a Socket.IO connection with that browser's cookies."""
    opened: list[Sock] = []

    async def factory(api: Any) -> Sock:
        s = await open_socket(api)
        opened.append(s)
        return s

    yield factory
    for s in opened:
        await s.close()


@pytest.fixture
async def browsers(make_client: Any, users: Any) -> Any:
    """``await browsers("requester")``: a browser signed in as that demo account."""

    async def factory(who: str) -> Any:
        c = await make_client()
        await c.sign_in_as(users[who].id)
        return c

    return factory


async def create_room(api: Any, **kw: Any) -> dict[str, Any]:
    body = {"kind": "teleconsultation", "title": "Consultation de suivi", **kw}
    r = await api.post("/api/v1/rooms", json=body)
    assert r.status == 201, await r.text()
    return await r.json()  # type: ignore[no-any-return]
