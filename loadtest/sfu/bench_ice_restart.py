"""Time to media back: ICE restart on the same connection vs a full media restart.

    python -m loadtest.sfu.bench_ice_restart --rounds 10

Two aiortc participants on 127.0.0.1 publish the counter video of tests/rtc/clients.py to
each other through an in-process Sfu. Each round, bob's network "goes away" (his ICE socket
closes) and he recovers in one of two ways:

* `ice-restart`: new ICE credentials and sockets in one offer on the same peer connection
  (what the browser's `pc.restartIce()` does); the server restarts ICE under the same DTLS
  and SRTP session.
* `full-restart`: what the browser did before: the peer connection closed, `rtc:join`
  again (the server drops the old one), publish again, pull the server's offer.

From the moment recovery starts (detection time not included), the figures are the time
until alice decodes a frame bob sent after that moment (`up`), and until bob decodes a frame
alice sent after it (`down`). Medians and extremes in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable

from rtc.config import RtcConfig
from rtc.sfu import Sfu
from tests.rtc.clients import Client, Harness, wait_for

LOOPBACK = RtcConfig(allowed_addresses=("127.0.0.1",), stats_interval=0)


def _after(counters: list[int], first: int) -> bool:
    return any(c >= first for c in counters)


async def _wait_since(
    started: float, predicate: Callable[[], bool], timeout: float = 60.0
) -> float:
    await wait_for(predicate, timeout, interval=0.005)
    return (time.monotonic() - started) * 1000


async def _call(harness: Harness) -> tuple[Client, Client]:
    alice = await harness.add("alice")
    bob = await harness.add("bob")
    await alice.publish(audio=True)
    await bob.publish(audio=True)
    await harness.settle(15)
    await wait_for(lambda: bob.decoded("alice") >= 10 and alice.decoded("bob") >= 10, 60)
    return alice, bob


async def ice_restart_round() -> tuple[float, float, float]:
    harness = Harness(lambda on_event: Sfu(LOOPBACK, on_event))
    try:
        alice, bob = await _call(harness)
        bob_next = bob.tracks["camera"].counter  # type: ignore[attr-defined]
        alice_next = alice.tracks["camera"].counter  # type: ignore[attr-defined]
        started = time.monotonic()
        task = await bob.restart_ice(lose_old_path=True)
        assert await task, "ICE restart failed"
        nominated = (time.monotonic() - started) * 1000
        up = await _wait_since(started, lambda: _after(alice.decoded_counters("bob"), bob_next))
        down = await _wait_since(started, lambda: _after(bob.decoded_counters("alice"), alice_next))
        return nominated, up, down
    finally:
        await harness.close()


async def full_restart_round() -> tuple[float, float, float]:
    harness = Harness(lambda on_event: Sfu(LOOPBACK, on_event))
    try:
        alice, bob = await _call(harness)
        alice_next = alice.tracks["camera"].counter  # type: ignore[attr-defined]
        bob_last = bob.tracks["camera"].counter  # type: ignore[attr-defined]
        seen = {mid: len(received.counters) for mid, received in alice.video.items()}
        started = time.monotonic()
        # the old connection is given up: closed here, dropped by the server at rtc:join
        await bob.close()
        await harness.sfu.remove("bob")
        new_bob = Client(harness.sfu, "room-1", "bob")
        harness.clients["bob"] = new_bob
        await new_bob.join()
        await new_bob.publish(audio=True)
        connected = (time.monotonic() - started) * 1000
        up = await _wait_since(started, lambda: _new_bob(alice, seen, bob_last))
        down = await _wait_since(
            started, lambda: _after(new_bob.decoded_counters("alice"), alice_next)
        )
        return connected, up, down
    finally:
        await harness.close()


def _new_bob(alice: Client, seen: dict[str, int], bob_last: int) -> bool:
    # bob's new camera counts from 0 again (its m-line may be the old one, reused)
    return any(
        c < bob_last
        for mid, received in alice.video.items()
        for c in received.counters[seen.get(mid, 0) :]
    )


def _row(name: str, values: list[tuple[float, float, float]]) -> str:
    cols = []
    for i in range(3):
        xs = [v[i] for v in values]
        cols.append(f"{statistics.median(xs):8.0f} ({min(xs):.0f}-{max(xs):.0f})")
    return f"{name:>13}  " + "  ".join(f"{c:>20}" for c in cols)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ice: list[tuple[float, float, float]] = []
    full: list[tuple[float, float, float]] = []
    for _ in range(args.rounds):
        ice.append(await ice_restart_round())
        full.append(await full_restart_round())
    print(
        f"rounds {args.rounds}, loadavg {os.getloadavg()[0]:.1f}; ms from the start of "
        "recovery, median (min-max)"
    )
    print(f"{'mode':>13}  {'ICE/offer done':>20}  {'up: bob→alice':>20}  {'down: alice→bob':>20}")
    print(_row("ice-restart", ice))
    print(_row("full-restart", full))


if __name__ == "__main__":
    asyncio.run(main())
