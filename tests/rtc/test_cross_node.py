"""Two nodes sharing PostgreSQL and Redis: the participants' media lives on node A (their
Socket.IO connections are there), the host acts from node B. A mute or a removal decided on
B must reach the media on A (rooms.live.NodeBus), not only the participants' screens."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from core.app import create_app
from rooms.live import Live
from rtc.signalling import SIGNALLING
from tests.conftest import REDIS_URL, ApiClient, make_settings, need
from tests.rooms.conftest import create_room
from tests.rtc.clients import wait_for
from tests.rtc.test_signalling import SockClient, settle
from tests.support.live import open_socket

pytestmark = [
    pytest.mark.media,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.parametrize("backend", ["postgresql"], indirect=True),
]


def node_settings(database_url: str, data_dir: Path, prefix: str, node: str) -> Any:
    return make_settings(
        database_url,
        data_dir,
        redis_url=REDIS_URL,
        redis_prefix=prefix,
        node_id=node,
        rtc_allowed_addresses=["127.0.0.1"],
    )


@pytest.fixture
def prefix() -> str:
    return f"consilium-test-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def settings(database_url: str, tmp_path: Path, prefix: str) -> Any:
    need("redis", REDIS_URL)
    return node_settings(database_url, tmp_path / "data", prefix, "node-a")


@pytest.fixture
def app(settings: Any) -> web.Application:
    app = create_app(settings)
    Live.of(app).grace = 1.0
    return app


@pytest.fixture
async def node_b(
    database_url: str, tmp_path: Path, prefix: str, app: web.Application
) -> AsyncIterator[TestServer]:
    other = create_app(node_settings(database_url, tmp_path / "data", prefix, "node-b"))
    server = TestServer(other, host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


async def test_mute_and_removal_from_another_node_reach_the_media(
    app: web.Application, make_client: Any, aiohttp_client: Any, node_b: TestServer, users: Any
) -> None:
    host_api = ApiClient(await aiohttp_client(node_b))
    await host_api.sign_in_as(users["requester"].id)
    room = await create_room(host_api, kind="estaff", title="RCP inter-nœuds")
    for who in ("expert", "secretary"):
        r = await host_api.post(
            f"/api/v1/rooms/{room['id']}/members",
            json={"user_id": str(users[who].id), "role": "participant"},
        )
        assert r.status in (200, 201), await r.text()
    host_sock = await open_socket(host_api)
    await host_sock.ok("room:join", {"room_id": room["id"]})

    clients: list[SockClient] = []
    try:
        for who in ("expert", "secretary"):
            api = await make_client()  # node A
            await api.sign_in_as(users[who].id)
            sock = await open_socket(api)
            joined = await sock.ok("room:join", {"room_id": room["id"]})
            clients.append(SockClient(sock, joined["participant_id"]))
        expert, secretary = clients
        for c in clients:
            await c.join()
        await expert.publish(camera=False)
        await settle(clients, app)
        await asyncio.sleep(1)
        mid = secretary.mids_for(expert.id, "audio")[-1]

        # The host, on node B, mutes the expert, whose media is on node A.
        await host_sock.ok("room:mute", {"participant_id": expert.id})
        await expert.sock.wait_for("room:muted")
        await asyncio.sleep(0.3)
        count = await secretary.packets_received(mid)
        assert count > 20, count
        await asyncio.sleep(1)
        assert await secretary.packets_received(mid) == count, "audio still forwarded on A"

        # The host removes the secretary from node B: node A closes its peer connection.
        server_pc = app[SIGNALLING].sfu.peer(secretary.id).pc
        await host_sock.ok("room:remove", {"participant_id": secretary.id})
        await wait_for(lambda: server_pc.connectionState == "closed", 5)
    finally:
        for c in clients:
            await c.close()
            await c.sock.close()
        await host_sock.close()
