"""Fault tests: each starts its own Redis and PostgreSQL servers (ports of its own) and its own
``consilium serve`` nodes, then kills, stops or restarts them. Never the shared services."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from tests.support.services import PostgresServer, RedisServer


@pytest.fixture
async def redis_server(tmp_path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def pg_server() -> AsyncIterator[PostgresServer]:
    server = PostgresServer()
    await server.init()
    try:
        yield server
    finally:
        await server.destroy()


def figures(scenario: str, **values: object) -> None:
    """One line per scenario, to copy into docs/reliability.md (``pytest -s`` shows it)."""
    shown = ", ".join(
        f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )
    print(f"\n[fault figures] {scenario}: {shown}", flush=True)


class Clock:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def since(self) -> float:
        return time.monotonic() - self.start
