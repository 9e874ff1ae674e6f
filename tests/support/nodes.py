"""Real ``consilium serve`` processes sharing a fresh PostgreSQL database and a Redis prefix,
for the tests that prove something crosses nodes (rooms, chat, messages) and for the fault
tests (which bring their own Redis and PostgreSQL servers: ``tests/support/services.py``)."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from core.db import Database
from core.events import EventBus
from core.migrate import upgrade
from core.seed import seed_accounts
from core.sessions import COOKIE, CSRF_HEADER, Sessions, make_store
from tests.conftest import PG_URL, REDIS_URL, SECRET, free_port, need
from tests.support.live import Sock
from tests.support.pg import pg_admin, scratch_name, url_of


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
        # Generous: on a loaded machine importing the server alone takes seconds.
        deadline = asyncio.get_running_loop().time() + 120
        while asyncio.get_running_loop().time() < deadline:
            try:
                async with http.get(self.url + "/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            assert self.proc is not None and self.proc.returncode is None, self.log.read_text()
            await asyncio.sleep(0.1)
        raise AssertionError(f"{self.url} did not start: {self.log.read_text()[-2000:]}")

    async def kill(self) -> None:
        """``kill -9``: the node says goodbye to nobody."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

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


@dataclass
class Cluster:
    nodes: list[Node]
    users: dict[str, Any]
    http: aiohttp.ClientSession
    sessions: Sessions
    socks: list[Sock] = field(default_factory=list)  # closed at the end

    async def browser(self, who: str) -> Browser:
        """A signed-in browser of that demo account, valid on every node."""
        token, s = await self.sessions.create(
            kind="user", subject_id=self.users[who].id, stage="full"
        )
        return Browser(self.http, token, s.csrf_token)


@asynccontextmanager
async def two_nodes(tmp_path: Path, label: str, **env_extra: str) -> AsyncIterator[Cluster]:
    need("database", PG_URL)
    need("redis", REDIS_URL)
    async with cluster(tmp_path, label, **env_extra) as c:
        yield c


@asynccontextmanager
async def cluster(
    tmp_path: Path,
    label: str,
    *,
    count: int = 2,
    redis_url: str | None = None,
    db_url: str | None = None,
    **env_extra: str,
) -> AsyncIterator[Cluster]:
    """``count`` nodes on Redis ``redis_url`` (default: the shared test Redis; ``""``: none)
    and database ``db_url`` (default: a scratch database of the shared PostgreSQL)."""
    import redis.asyncio as aioredis

    redis_url = REDIS_URL if redis_url is None else redis_url
    scratch = db_url is None
    name = scratch_name(label)
    if scratch:
        need("database", PG_URL)
        db_url = url_of(name)
        await pg_admin(f'CREATE DATABASE "{name}"')
    assert db_url is not None
    prefix = f"consilium-{label}-{uuid.uuid4().hex[:8]}:"
    redis = aioredis.from_url(redis_url) if redis_url else None
    http = aiohttp.ClientSession()
    c: Cluster | None = None
    db: Database | None = None
    try:
        await asyncio.to_thread(upgrade, db_url)
        db = Database(db_url, EventBus())
        users = await seed_accounts(db)
        sessions = Sessions(
            make_store(db, redis, prefix), idle=timedelta(minutes=30), absolute=timedelta(hours=1)
        )
        env = {
            **os.environ,
            "CONSILIUM_DEV": "1",
            "CONSILIUM_HOST": "127.0.0.1",
            "CONSILIUM_DATABASE_URL": db_url,
            "CONSILIUM_REDIS_URL": redis_url,
            "CONSILIUM_REDIS_PREFIX": prefix,
            "CONSILIUM_SECRET_KEY": SECRET,
            "CONSILIUM_DATA_DIR": str(tmp_path / "data"),
            "CONSILIUM_LOG_LEVEL": "WARNING",
            **env_extra,
        }
        nodes = [Node(env, free_port(), tmp_path / f"node{i}.log") for i in range(1, count + 1)]
        c = Cluster(nodes, users, http, sessions)
        await asyncio.gather(*(n.start() for n in nodes))
        await asyncio.gather(*(n.wait_ready(http) for n in nodes))
        yield c
    finally:
        if c is not None:
            for s in c.socks:
                await s.close()
            for n in c.nodes:
                await n.stop()
        await http.close()
        if db is not None:
            await db.close()
        if redis is not None:
            try:
                keys = [k async for k in redis.scan_iter(match=prefix + "*")]
                if keys:
                    await redis.delete(*keys)
            except Exception:  # a fault test's own Redis may be gone
                pass
            await redis.aclose()
        if scratch:
            await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
