"""Two real ``consilium serve`` processes sharing PostgreSQL and Redis: chat, presence,
moderation and occupancy cross nodes."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core.db import Database
from core.events import EventBus
from core.migrate import upgrade
from core.seed import seed_accounts
from core.sessions import COOKIE, CSRF_HEADER, RedisSessionStore, Sessions
from tests.conftest import PG_URL, REDIS_URL, SECRET, free_port, need
from tests.support.live import Sock

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


class Node:
    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env = {**env, "CONSILIUM_PORT": str(port)}
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        exe = Path(sys.executable).parent / "consilium"
        self.proc = await asyncio.create_subprocess_exec(
            str(exe),
            "serve",
            env=self.env,
            stdout=self.log.open("wb"),
            stderr=asyncio.subprocess.STDOUT,
        )

    async def wait_ready(self, http: aiohttp.ClientSession) -> None:
        for _ in range(200):
            try:
                async with http.get(self.url + "/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            assert self.proc is not None and self.proc.returncode is None, self.log.read_text()
            await asyncio.sleep(0.1)
        raise AssertionError(f"{self.url} did not start: {self.log.read_text()[-2000:]}")

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


class Browser:
    """REST calls with a session cookie and its CSRF token, to any node."""

    def __init__(self, http: aiohttp.ClientSession, token: str, csrf: str) -> None:
        self.http, self.cookie, self.csrf = http, f"{COOKIE}={token}", csrf

    async def call(self, method: str, url: str, **kw: Any) -> tuple[int, Any]:
        headers = {"Cookie": self.cookie, CSRF_HEADER: self.csrf}
        async with self.http.request(method, url, headers=headers, **kw) as r:
            return r.status, await r.json(content_type=None)


async def pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def test_chat_presence_moderation_and_occupancy_cross_two_nodes(tmp_path):
    need("database", PG_URL)
    need("redis", REDIS_URL)
    import redis.asyncio as aioredis

    name = f"consilium_2n_{uuid.uuid4().hex[:10]}"
    db_url = f"{PG_URL.rpartition('/')[0]}/{name}"
    prefix = f"consilium-2n-{uuid.uuid4().hex[:8]}:"
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
            "CONSILIUM_ROOM_GRACE_SECONDS": "2",
            "CONSILIUM_LOG_LEVEL": "WARNING",
        }
        nodes = [Node(env, free_port(), tmp_path / f"node{i}.log") for i in (1, 2)]
        await asyncio.gather(*(n.start() for n in nodes))
        await asyncio.gather(*(n.wait_ready(http) for n in nodes))
        a_url, b_url = nodes[0].url, nodes[1].url

        host, expert = await browser("requester"), await browser("expert")
        status, room = await host.call(
            "POST", a_url + "/api/v1/rooms", json={"kind": "estaff", "title": "RCP inter-sites"}
        )
        assert status == 201, room
        rid = room["id"]
        status, _ = await host.call(
            "POST",
            b_url + f"/api/v1/rooms/{rid}/members",
            json={"user_id": str(users["expert"].id), "role": "participant"},
        )
        assert status == 201

        # Presence across nodes: host on node 1, expert on node 2.
        h = await Sock(a_url, host.cookie).connect()
        e = await Sock(b_url, expert.cookie).connect()
        socks += [h, e]
        await h.ok("room:join", {"room_id": rid})
        joined = await e.ok("room:join", {"room_id": rid})
        assert sorted(p["name"] for p in joined["participants"]) == [
            "Dr Claire Martin",
            "Dr Karim Benali",
        ]
        seen = await h.wait_for("participant:joined")
        assert seen["participant"]["name"] == "Dr Karim Benali"

        # Occupancy read from either node agrees.
        occ = []
        for url in (a_url, b_url):
            status, body = await host.call("GET", url + f"/api/v1/rooms/{rid}")
            occ.append(body["occupancy"])
        assert occ[0] == occ[1] and occ[0]["count"] == 2

        # Chat across nodes, stored once.
        mid = str(uuid.uuid4())
        await e.ok("chat:send", {"id": mid, "text": "Bonjour depuis le nœud 2"})
        got = await h.wait_for("chat:message")
        assert got["id"] == mid
        await e.ok("chat:send", {"id": mid, "text": "Bonjour depuis le nœud 2"})
        hist = await h.ok("chat:history", {})
        assert [m["id"] for m in hist["messages"]] == [mid]

        # Moderation across nodes: mute, then remove (the connection on node 2 is closed).
        await h.ok("room:mute", {"participant_id": joined["participant_id"]})
        await e.wait_for("room:muted")
        await h.ok("room:remove", {"participant_id": joined["participant_id"]})
        await e.wait_for("room:removed")
        await asyncio.wait_for(e.disconnected.wait(), 5)
        left = await h.wait_for("participant:left")
        assert left["reason"] == "removed"
        e2 = await Sock(b_url, expert.cookie).connect()
        socks.append(e2)
        assert (await e2.call("room:join", {"room_id": rid}))["error"]["code"] == "removed"
        for url in (a_url, b_url):
            status, body = await host.call("GET", url + f"/api/v1/rooms/{rid}")
            assert body["occupancy"]["count"] == 1
    finally:
        for s in socks:
            await s.close()
        for n in nodes:
            await n.stop()
        await http.close()
        keys = [k async for k in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
