"""Fixtures for the core tests."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.sms import SmsGateway


@pytest.fixture
async def sms_gateway() -> AsyncIterator[SmsGateway]:
    """A real HTTP server on 127.0.0.1 standing in for the SMS provider."""
    gw = SmsGateway()
    await gw.start()
    try:
        yield gw
    finally:
        await gw.close()


async def reauthenticated(client: Any, *, ago: float = 0.0) -> None:
    """Mark the client's session as re-authenticated ``ago`` seconds back (the re-auth flow
    has its own tests in test_reauth.py)."""
    from core.context import SESSIONS
    from core.sessions import COOKIE, _hash

    token = next(c.value for c in client.client.session.cookie_jar if c.key == COOKIE)
    store = client.app[SESSIONS].store
    s = await store.get(_hash(token))
    s.data["reauth_at"] = time.time() - ago
    await store.put(s)
