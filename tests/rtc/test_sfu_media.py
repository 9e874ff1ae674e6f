"""Real media through the SFU: aiortc peers on 127.0.0.1, decoded on the receiving side."""

from __future__ import annotations

import asyncio

import pytest

from tests.rtc.clients import Harness, wait_for

pytestmark = pytest.mark.media


def assert_in_order(counters: list[int], minimum: int) -> None:
    assert len(counters) >= minimum, f"only {len(counters)} frames decoded"
    assert all(b > a for a, b in zip(counters, counters[1:], strict=False)), counters


async def test_three_participants_see_each_others_counters_advance(harness: Harness) -> None:
    clients = [await harness.add(name) for name in ("alice", "bob", "carol")]
    for client in clients:
        await client.publish()
        await harness.settle()
    await asyncio.sleep(3)
    for client in clients:
        for other in clients:
            if other is client:
                continue
            received = client.received_from(other.id)
            assert_in_order(received.counters, 15)
            # the counters are the publisher's own: real forwarding, not frames made up by us
            assert received.counters[-1] <= other.tracks["camera"].counter  # type: ignore[attr-defined]
