"""deploy/coturn/turnserver.conf relays over UDP and TCP with the credentials Consilium
issues (rtc.ice.turn_credentials), and refuses them once expired. coturn's own test client
(``turnutils_uclient``, in Debian's coturn package) allocates a relay on the test's coturn
and sends datagrams through it to ``turnutils_peer`` on 127.0.0.1, which echoes them back.

TLS is covered by test_turn_tls.py with Chromium: coturn 4.6.1's ``turnutils_uclient -S``
hangs in its own second TLS handshake most of the time on this machine (coturn serves
the browser's TLS allocations fine)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import AsyncIterator

import pytest

from rtc.ice import turn_credentials
from tests.conftest import free_port
from tests.deploy.conftest import Coturn, need_program, stop_process

pytestmark = [pytest.mark.slow]


@pytest.fixture
async def peer() -> AsyncIterator[int]:
    """An echo peer on 127.0.0.1 (turnutils_peer), the relay's destination."""
    exe = need_program("turnutils_peer")
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        exe, "-L", "127.0.0.1", "-p", str(port),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield port
    finally:
        await stop_process(proc)


async def relay_through(coturn: Coturn, peer: int, flags: list[str], now: float) -> str:
    exe = need_program("turnutils_uclient")
    username, credential = turn_credentials(coturn.secret, "participant-1", 600, now=now)
    port = coturn.port
    proc = await asyncio.create_subprocess_exec(
        exe, *flags, "-p", str(port), "-u", username, "-w", credential,
        "-e", "127.0.0.1", "-r", str(peer), "-n", "20", "-m", "1", "127.0.0.1",
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return out.decode(errors="replace")


@pytest.mark.parametrize(("transport", "flags"), [("udp", []), ("tcp", ["-t"])])
async def test_relay_with_consilium_credentials(
    coturn: Coturn, peer: int, transport: str, flags: list[str]
) -> None:
    out = await relay_through(coturn, peer, flags, time.time())
    totals = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)", out)
    assert totals, out[-2000:]
    sent, received = map(int, totals[-1])
    assert sent == received >= 20, out[-2000:]  # nothing lost through the relay


async def test_expired_credentials_are_refused(coturn: Coturn, peer: int) -> None:
    out = await relay_through(coturn, peer, [], time.time() - 3600)  # expired 10 min ago
    assert "Received relay addr" not in out, out[-2000:]
    assert not re.search(r"tot_recv_msgs=[1-9]", out), out[-2000:]
