"""Fixtures for the SFU tests: an Sfu restricted to loopback, and aiortc clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from rtc.config import RtcConfig
from rtc.sfu import Sfu
from tests.rtc.clients import Harness

LOOPBACK = RtcConfig(allowed_addresses=("127.0.0.1",), stats_interval=1.0)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness(lambda on_event: Sfu(LOOPBACK, on_event))
    try:
        yield h
    finally:
        await h.close()


@pytest.fixture
def config() -> RtcConfig:
    return LOOPBACK


def events(items: list[tuple[str, dict[str, Any]]], name: str) -> list[dict[str, Any]]:
    return [payload for event, payload in items if event == name]
