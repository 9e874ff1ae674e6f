"""Room lifecycle under concurrency: joins, removals and offers of many real aiortc peers at once.

Six participants leaving within a second once raised KeyError in `Sfu.remove` (two removals
both found the room empty after their awaits and both deleted it). These tests run the
lifecycle operations concurrently and require no exception, no error logged, and no room or
participant left behind.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from rtc.errors import RtcError
from tests.rtc.clients import Client, Harness

pytestmark = pytest.mark.media


def _not_unknown(results: list[Any]) -> list[BaseException]:
    """Exceptions other than "already removed" (a removal racing another one)."""
    return [
        r
        for r in results
        if isinstance(r, BaseException)
        and not (isinstance(r, RtcError) and r.code == "unknown_participant")
    ]


async def _connected(harness: Harness, clients: list[Client]) -> None:
    await asyncio.gather(*(c.publish(camera=False, audio=True) for c in clients))
    await harness.settle(timeout=60)


async def test_participants_removed_at_once_leave_no_room_and_no_error(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    clients = [await harness.add(f"p{i}", room_id="room-a") for i in range(6)]
    await _connected(harness, clients)
    assert harness.sfu.room_ids() == ["room-a"]

    results = await asyncio.gather(
        *(harness.sfu.remove(c.id) for c in clients), return_exceptions=True
    )

    assert _not_unknown(results) == []
    assert harness.sfu.room_ids() == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_joins_removals_and_offers_racing_leave_a_consistent_sfu(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    sfu = harness.sfu
    first = [await harness.add(f"a{i}", room_id="room-a") for i in range(4)]
    first += [await harness.add(f"b{i}", room_id="room-b") for i in range(2)]
    await _connected(harness, first)

    # everyone in room-a and room-b leaves (some twice, as a leave and a removal racing),
    # while newcomers join room-a and a leaver's offer is still being applied
    newcomers = [Client(sfu, "room-a", f"n{i}") for i in range(3)]
    for client in newcomers:
        harness.clients[client.id] = client
    results = await asyncio.gather(
        *(sfu.remove(c.id) for c in first),
        *(sfu.remove(c.id) for c in first[:3]),
        *(c.join() for c in newcomers),
        first[4].negotiate(),
        return_exceptions=True,
    )
    problems = [
        r
        for r in _not_unknown(results)
        if not (isinstance(r, RtcError) and r.code == "closed")  # the late offer
    ]
    assert problems == []
    assert sfu.room_ids() == ["room-a"]  # the newcomers' room, a fresh one
    assert sorted(sfu.stats("room-a")["participants"]) == ["n0", "n1", "n2"]

    # the newcomers' room works: they connect and hear each other
    await _connected(harness, newcomers)
    assert len(sfu.tracks("room-a")) == 3

    results = await asyncio.gather(
        *(sfu.remove(c.id) for c in newcomers),
        # two of the first ones come back meanwhile (membership only: their old client PCs
        # could not negotiate with the new server ones, a real client makes a new one)
        *(c.join(pull=False) for c in first[:2]),
        return_exceptions=True,
    )
    assert _not_unknown(results) == []
    assert sorted(sfu.stats("room-a")["participants"]) == ["a0", "a1"]
    await asyncio.gather(*(sfu.remove(c.id) for c in first[:2]))
    assert sfu.room_ids() == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
