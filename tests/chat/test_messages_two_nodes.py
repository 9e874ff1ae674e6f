"""Direct messages outside rooms across two real ``consilium serve`` processes sharing
PostgreSQL and Redis: the message, the unread badge, "Lu" and presence reach the colleague
and every tab of mine whichever node they are connected to."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import timedelta

import aiohttp
import pytest

from core.db import Database
from core.events import EventBus
from core.migrate import upgrade
from core.seed import seed_accounts
from core.sessions import RedisSessionStore, Sessions
from tests.conftest import PG_URL, REDIS_URL, SECRET, free_port, need
from tests.rooms.test_two_nodes import Browser, Node, pg_admin
from tests.support.live import Sock

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


async def test_direct_messages_badge_and_read_markers_cross_two_nodes(tmp_path):
    need("database", PG_URL)
    need("redis", REDIS_URL)
    import redis.asyncio as aioredis

    name = f"consilium_dm_{uuid.uuid4().hex[:10]}"
    db_url = f"{PG_URL.rpartition('/')[0]}/{name}"
    prefix = f"consilium-dm-{uuid.uuid4().hex[:8]}:"
    await pg_admin(f'CREATE DATABASE "{name}"')
    redis = aioredis.from_url(REDIS_URL)
    nodes: list[Node] = []
    socks: list[Sock] = []
    http = aiohttp.ClientSession()
    try:
        await asyncio.to_thread(upgrade, db_url)
        db = Database(db_url, EventBus())
        users = await seed_accounts(db)
        await db.close()
        sessions = Sessions(
            RedisSessionStore(redis, prefix + "session:"),
            idle=timedelta(minutes=30),
            absolute=timedelta(hours=1),
        )

        async def browser(who: str) -> Browser:
            token, s = await sessions.create(kind="user", subject_id=users[who].id, stage="full")
            return Browser(http, token, s.csrf_token)

        env = {
            **os.environ,
            "CONSILIUM_DEV": "1",
            "CONSILIUM_HOST": "127.0.0.1",
            "CONSILIUM_DATABASE_URL": db_url,
            "CONSILIUM_REDIS_URL": REDIS_URL,
            "CONSILIUM_REDIS_PREFIX": prefix,
            "CONSILIUM_SECRET_KEY": SECRET,
            "CONSILIUM_DATA_DIR": str(tmp_path / "data"),
            "CONSILIUM_LOG_LEVEL": "WARNING",
        }
        nodes = [Node(env, free_port(), tmp_path / f"node{i}.log") for i in (1, 2)]
        await asyncio.gather(*(n.start() for n in nodes))
        await asyncio.gather(*(n.wait_ready(http) for n in nodes))
        one, two = nodes[0].url, nodes[1].url
        claire, karim = users["requester"], users["expert"]

        a_api, b_api = await browser("requester"), await browser("expert")
        a1 = await Sock(one, a_api.cookie).connect()  # Claire's tab on node 1
        a2 = await Sock(two, a_api.cookie).connect()  # and another on node 2
        b = await Sock(two, b_api.cookie).connect()  # Karim on node 2
        socks += [a1, a2, b]

        sent = await b.ok(
            "chat:direct",
            {"id": str(uuid.uuid4()), "text": "Vu le scanner ?", "to_user": str(claire.id)},
        )
        mid = sent["message"]["id"]
        for tab in (a1, a2):
            got = await tab.wait_for("chat:message")
            assert got["id"] == mid
            await tab.wait_for("chat:unread", lambda d: d["total"] == 1)

        status, convs = await a_api.call("GET", one + "/api/v1/chat/conversations")
        assert status == 200
        assert [(c["peer"]["id"], c["unread"], c["peer"]["online"]) for c in convs] == [
            (str(karim.id), 1, True)  # Karim is connected to the other node
        ]

        # Claire reads on node 1: Karim on node 2 gets "Lu", her tab on node 2 its badge.
        n = len(a2.received)
        await a1.ok("chat:read", {"message_id": mid, "with_user": str(karim.id)})
        read = await b.wait_for("chat:read")
        assert read["message_id"] == mid and read["reader"]["id"] == str(claire.id)
        await a2.wait_for("chat:unread", lambda d: d["total"] == 0, since=n)
        status, unread = await a_api.call("GET", two + "/api/v1/chat/unread")
        assert (status, unread) == (200, {"total": 0, "conversations": 0})
        status, detail = await b_api.call("GET", one + f"/api/v1/chat/conversations/{claire.id}")
        assert status == 200 and detail["peer_read"]["message_id"] == mid
    finally:
        for s in socks:
            await s.close()
        for node in nodes:
            await node.stop()
        await http.close()
        keys = [k async for k in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
