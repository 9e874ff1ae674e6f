"""Shared fixtures: real databases (SQLite always, PostgreSQL when configured), a real SMTP
server, the app and an API client that signs in like a browser.

- ``backend`` is parametrised over ``sqlite`` and ``postgresql``: every test that uses
  ``settings``/``app``/``client`` runs on both. PostgreSQL needs
  ``CONSILIUM_TEST_DATABASE_URL`` (``.ci/run`` exports it); without it the PostgreSQL runs
  are skipped locally and FAIL under ``CI=true``. Restrict a test to one backend with
  ``@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)``.
- ``redis_url`` likewise needs ``CONSILIUM_TEST_REDIS_URL``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from core.app import create_app
from core.config import Settings
from core.context import DB, SESSIONS
from core.sessions import COOKIE, CSRF_HEADER
from tests.support.sms import SmsGateway
from tests.support.smtp import SmtpSink

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_URL = os.environ.get("CONSILIUM_TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("CONSILIUM_TEST_REDIS_URL", "")
SECRET = "test-secret-key-0123456789-abcdefghijklmnop"


def need(service: str, url: str) -> None:
    """Skip locally, fail in CI, when a real service a test needs is not configured."""
    if url:
        return
    msg = f"{service} is not configured for tests (CONSILIUM_TEST_{service.upper()}_URL)"
    if IN_CI:
        pytest.fail(msg + " — CI must run this test", pytrace=False)
    pytest.skip(msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- databases --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated once; each test gets a copy."""
    from core.migrate import upgrade

    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


class PgDatabase:
    """A private PostgreSQL database for this test run, migrated once, emptied per test."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"consilium_t_{uuid.uuid4().hex[:10]}"
        base, _, _ = admin_url.rpartition("/")
        self.url = f"{base}/{self.name}"
        self.tables: list[str] = []

    def _dsn(self, url: str) -> str:
        return url.replace("postgresql+asyncpg://", "postgresql://")

    async def _admin(self, sql: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self._dsn(self.admin_url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def create(self) -> None:
        from core.migrate import metadata, upgrade

        asyncio.run(self._admin(f'CREATE DATABASE "{self.name}"'))
        upgrade(self.url)
        self.tables = [t.name for t in metadata().sorted_tables]

    async def truncate(self) -> None:
        import asyncpg

        if not self.tables:
            return
        conn = await asyncpg.connect(self._dsn(self.url))
        try:
            names = ", ".join(f'"{t}"' for t in self.tables)
            await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        finally:
            await conn.close()

    def drop(self) -> None:
        asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pg_database() -> Iterator[PgDatabase | None]:
    if not PG_URL:
        yield None
        return
    db = PgDatabase(PG_URL)
    db.create()
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database_url(
    backend: str,
    tmp_path: Path,
    sqlite_template: Path,
    pg_database: PgDatabase | None,
) -> AsyncIterator[str]:
    if backend == "sqlite":
        path = tmp_path / "consilium.db"
        shutil.copyfile(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    need("database", PG_URL)
    assert pg_database is not None
    await pg_database.truncate()
    yield pg_database.url


@pytest.fixture
def redis_url() -> str:
    need("redis", REDIS_URL)
    return REDIS_URL


# -- services ---------------------------------------------------------------------------


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpSink]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives."""
    sink = SmtpSink(port=free_port())
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
async def sms_gateway() -> AsyncIterator[SmsGateway]:
    """A real HTTP server on 127.0.0.1 standing in for the SMS provider."""
    gw = SmsGateway()
    await gw.start()
    try:
        yield gw
    finally:
        await gw.close()


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "dev": True,
        "database_url": database_url,
        "data_dir": data_dir,
        "secret_key": SECRET,
        "rtc_allowed_addresses": ["127.0.0.1"],
        "redis_prefix": f"consilium-test-{uuid.uuid4().hex[:8]}:",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "data")


@pytest.fixture
def app(settings: Settings) -> web.Application:
    return create_app(settings)


# -- clients ----------------------------------------------------------------------------


class ApiClient:
    """A test client that behaves like the browser client: cookies plus the CSRF header."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client
        self.csrf = ""

    @property
    def app(self) -> web.Application:
        return self.client.app  # type: ignore[no-any-return]

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}) or {})
        for cookie in self.client.session.cookie_jar:
            if cookie.key == "consilium_csrf":  # what the page's script does
                self.csrf = cookie.value
        if self.csrf and method.upper() not in ("GET", "HEAD", "OPTIONS"):
            headers.setdefault(CSRF_HEADER, self.csrf)
        return await self.client.request(method, path, headers=headers, **kw)

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Any:
        return await self.request("POST", path, **kw)

    async def put(self, path: str, **kw: Any) -> Any:
        return await self.request("PUT", path, **kw)

    async def patch(self, path: str, **kw: Any) -> Any:
        return await self.request("PATCH", path, **kw)

    async def delete(self, path: str, **kw: Any) -> Any:
        return await self.request("DELETE", path, **kw)

    async def sign_in_as(self, user_id: uuid.UUID) -> None:
        """Open a full session directly (the login flow has its own tests)."""
        token, s = await self.app[SESSIONS].create(kind="user", subject_id=user_id, stage="full")
        self.client.session.cookie_jar.update_cookies({COOKIE: token})
        self.csrf = s.csrf_token

    def sign_out(self) -> None:
        self.client.session.cookie_jar.clear()
        self.csrf = ""


@pytest.fixture
async def client(app: web.Application, aiohttp_client: Any) -> ApiClient:
    return ApiClient(await aiohttp_client(app))


@pytest.fixture
async def make_client(app: web.Application, aiohttp_client: Any) -> Any:
    """More browsers on the same server: ``other = await make_client()``."""
    from aiohttp.test_utils import TestServer

    server: TestServer | None = None

    async def factory() -> ApiClient:
        nonlocal server
        if server is None:
            server = TestServer(app)
            await server.start_server()
        return ApiClient(await aiohttp_client(server))

    return factory


@pytest.fixture
async def users(app: web.Application) -> dict[str, Any]:
    """The demo accounts: requester, expert, secretary, admin (password DEMO_PASSWORD)."""
    from core.seed import seed_accounts

    return await seed_accounts(app[DB])
