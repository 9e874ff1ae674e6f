"""The room page restarts ICE on the same connection when its network path breaks (issue 15,
item 4; docs/ui.md "Staying in the call", docs/rtc.md "ICE restart").

Two practitioners with video flowing; the host's ICE socket stops passing anything (every
datagram to or from its port dropped on `lo` by an nft table of the test's own, as when the
network it was on goes away). The page sees its ICE path `disconnected`, restarts ICE
(`restartIce()` and its own offer), the server answers on the same connection (same
`connection_id`, no new DTLS), and both sides decode new frames. Time printed, not asserted."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rtc import aiortc_internals
from rtc.signalling import SIGNALLING
from tests.ui.room_call import EXPERT, HOST, frames_grow, two_in_a_room, wait_server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


@contextlib.contextmanager
def dropped_udp_port(port: int) -> Iterator[None]:
    if os.geteuid() != 0 or shutil.which("nft") is None:
        pytest.skip("needs root and nft to cut a path")
    table = f"consilium_room_icerestart_{os.getpid()}"
    rules = (
        f"add table inet {table}\n"
        f"add chain inet {table} c {{ type filter hook input priority 0; }}\n"
        f"add rule inet {table} c iif lo udp dport {port} drop\n"
        f"add rule inet {table} c iif lo udp sport {port} drop\n"
    )
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
    try:
        yield
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table], check=False)


async def test_a_broken_ice_path_is_restarted_on_the_same_connection(
    pages: Any, app: Any, users: Any
) -> None:
    c = await two_in_a_room(pages, app, users)
    sfu = app[SIGNALLING].sfu
    peer = sfu.peer(c.host_pid)
    connection_id = peer.connection_id
    transport = aiortc_internals.ice_transport(peer.pc)
    assert transport is not None
    browser_port = aiortc_internals.selected_pair(transport._connection).remote_addr[1]

    with dropped_udp_port(browser_port):
        cut = time.monotonic()
        await wait_server(
            lambda: peer.ice_restart is not None and peer.ice_restart.count == 1,
            "the page's ICE restart to nominate a new pair",
            timeout=60,
        )
        restarted = time.monotonic() - cut
        seen_at = await frames_grow(c.expert, HOST, timeout=60)
        both_at = max(seen_at, await frames_grow(c.host, EXPERT, timeout=60))
    assert sfu.peer(c.host_pid) is peer and peer.connection_id == connection_id
    assert aiortc_internals.selected_pair(transport._connection).remote_addr[1] != browser_port
    print(
        f"\nroom page, ICE path cut: new pair nominated {restarted:.2f}s after the cut "
        f"(detection included), both videos growing again after {both_at - cut:.2f}s"
    )
    assert not pages.errors, pages.errors
