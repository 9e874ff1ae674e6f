"""One real ``consilium serve`` process on SQLite, for attacks measured from outside:
its memory (``/proc/PID/status``), its answers, its log."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from core.db import Database
from core.events import EventBus
from core.migrate import upgrade
from core.seed import seed_accounts
from core.sessions import COOKIE, CSRF_HEADER, DbSessionStore, Sessions
from tests.conftest import SECRET, free_port

MiB = 1024 * 1024


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak resident) of a process, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


class Client:
    """REST calls with a cookie jar and the CSRF header read from the CSRF cookie."""

    def __init__(self, url: str, cookie: str = "", csrf: str = "") -> None:
        self.url = url
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.cookie, self.csrf = cookie, csrf

    def _headers(self) -> dict[str, str]:
        h = {}
        if self.cookie:
            h["Cookie"] = self.cookie
        csrf = self.csrf
        for c in self.http.cookie_jar:
            if c.key == "consilium_csrf":
                csrf = c.value
        if csrf:
            h[CSRF_HEADER] = csrf
        return h

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, str, Any]:
        async with self.http.request(method, self.url + path, headers=self._headers(), **kw) as r:
            body = await r.read()
            ctype = r.content_type
            data = await r.json(content_type=None) if "json" in ctype and body else body
            return r.status, ctype, data

    def cookie_header(self) -> str:
        parts = [f"{c.key}={c.value}" for c in self.http.cookie_jar]
        if self.cookie:
            parts.append(self.cookie)
        return "; ".join(parts)

    async def close(self) -> None:
        await self.http.close()


@dataclass
class Server:
    url: str
    proc: asyncio.subprocess.Process
    log: Path
    db_url: str
    users: dict[str, Any]
    sessions: Sessions

    @property
    def pid(self) -> int:
        return self.proc.pid

    def memory(self) -> dict[str, int]:
        return memory_kib(self.pid)

    async def signed_in(self, who: str) -> Client:
        token, s = await self.sessions.create(
            kind="user", subject_id=self.users[who].id, stage="full"
        )
        return Client(self.url, f"{COOKIE}={token}", s.csrf_token)


@asynccontextmanager
async def serve(tmp_path: Path, **env_extra: str) -> AsyncIterator[Server]:
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite+aiosqlite:///{data / 'consilium.db'}"
    await asyncio.to_thread(upgrade, db_url)
    db = Database(db_url, EventBus())
    users = await seed_accounts(db)
    sessions = Sessions(DbSessionStore(db), idle=timedelta(minutes=30), absolute=timedelta(hours=1))
    port = free_port()
    env = {
        **os.environ,
        "CONSILIUM_DEV": "1",
        "CONSILIUM_HOST": "127.0.0.1",
        "CONSILIUM_PORT": str(port),
        "CONSILIUM_DATABASE_URL": db_url,
        "CONSILIUM_SECRET_KEY": SECRET,
        "CONSILIUM_DATA_DIR": str(data),
        "CONSILIUM_LOG_LEVEL": "INFO",
        "CONSILIUM_RTC_ALLOWED_ADDRESSES": '["127.0.0.1"]',
        **env_extra,
    }
    env.pop("CONSILIUM_REDIS_URL", None)
    log = tmp_path / "server.log"
    exe = Path(sys.executable).parent / "consilium"
    proc = await asyncio.create_subprocess_exec(
        str(exe), "serve", env=env, stdout=log.open("wb"), stderr=asyncio.subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                try:
                    async with http.get(url + "/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert proc.returncode is None, log.read_text()
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"{url} did not start: {log.read_text()[-2000:]}")
        yield Server(url, proc, log, db_url, users, sessions)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await db.close()
