"""Fixtures for the core tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

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
