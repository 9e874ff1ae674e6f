"""The pull order (docs/rtc.md, "Negotiation: who offers") under concurrent changes, in
process: clients that follow it never get an error acknowledgement, whatever the timing."""

from __future__ import annotations

import asyncio

import pytest

from tests.rtc.clients import Client, Harness, wait_decoded, wait_for

pytestmark = pytest.mark.media


async def test_rounds_of_concurrent_joins_publishes_and_shares_never_collide(
    harness: Harness,
) -> None:
    first = await harness.add("p0")
    await first.publish(audio=False)
    clients = [first]
    for round_ in range(3):
        # someone joins and publishes at once while everyone toggles a screen share
        newcomer = await harness.add(f"p{round_ + 1}")

        async def toggle(client: Client) -> None:
            if "screen" in client.published:
                await client.stop_publishing("screen")
            else:
                await client.publish(camera=False, audio=False, screen=True)

        await asyncio.gather(newcomer.publish(audio=False), *(toggle(c) for c in clients))
        clients.append(newcomer)
    await harness.settle(timeout=60)
    pairs = [(x, y.id) for x in clients for y in clients if x is not y]
    await wait_decoded(pairs, 5, timeout=60)
    for x, y in pairs:
        assert x.decoded(y) >= 5, (x.id, y)
    sharing = [c for c in clients if "screen" in c.published]
    await wait_for(
        lambda: all(x.decoded(y.id, "screen") >= 1 for x in clients for y in sharing if x is not y),
        60,
    )
    assert {c.id: c.errors for c in clients} == {c.id: [] for c in clients}
    assert all(harness.sfu.peer(c.id).pc.signalingState == "stable" for c in clients)
