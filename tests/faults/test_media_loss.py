"""Video under 5 % packet loss made by the kernel, through a real Consilium node and in a
direct aiortc call, measured in the same run.

Two network namespaces the test creates, joined by a veth pair on a private /30
(``tests/support/netns.py``); in each, an nftables rule on the input hook drops a random
5 % of the UDP datagrams arriving on the veth end (STUN, DTLS, RTP and RTCP alike): loss in
both directions of every hop. Namespace ``a`` runs a ``consilium serve`` node (SQLite, no
Redis, ``CONSILIUM_RTC_ALLOWED_ADDRESSES`` = the /30 only) and the receiving end of the
direct call; namespace ``b`` runs Alice (publishes her camera through the node), Bob (gets
it from the SFU) and the sending end of the direct call (``tests/faults/loss_peers.py``).
Freeze = the longest time between two decoded frames (window edges included).

Nothing of it can reach eth0: the processes live in namespaces whose only link is the veth
pair (checked with ``ss -u -a`` in each).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core.db import Database
from core.events import EventBus
from core.migrate import upgrade
from core.seed import seed_accounts
from core.sessions import COOKIE, Sessions, make_store
from tests.conftest import SECRET
from tests.faults.conftest import figures
from tests.support.netns import Link, Side, veth_link

pytestmark = [pytest.mark.slow, pytest.mark.media]

LOSS_PERCENT = 5
WINDOW_FRAMES = 300  # 20 s of video at 15 fps
SERVER_PORT = 8080  # in a namespace of our own: nothing else listens there
SIGNAL_PORT = 9100
ROOT = Path(__file__).resolve().parents[2]


def freeze_and_fps(times: list[float], start: float, end: float) -> tuple[float, float]:
    inside = [t for t in times if start <= t <= end]
    edges = [start, *inside, end]
    freeze = max(b - a for a, b in itertools.pairwise(edges))
    return freeze, len(inside) / (end - start)


async def spawn(
    link: Link, side: Side, args: list[str], log: Path, env: dict[str, str], **kw: Any
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *side.exec_prefix(link.ip),
        *args,
        env=env,
        cwd=ROOT,
        stderr=log.open("wb"),
        stdout=kw.pop("stdout", log.open("ab")),
        **kw,
    )


async def next_json(proc: asyncio.subprocess.Process, key: str, timeout: float) -> Any:
    """The next JSON line of ``proc`` carrying ``key`` (other output is skipped)."""
    assert proc.stdout is not None

    async def read() -> Any:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            if line.startswith(b"{"):
                data = json.loads(line)
                if key in data:
                    return data
        raise AssertionError(f"the peers ended (code {await proc.wait()}) before {key!r}")

    return await asyncio.wait_for(read(), timeout)


def udp_sockets(link: Link, side: Side) -> list[str]:
    out = link.run_in(side, "ss", "-u", "-a", "-n", "-H")
    return [line.split()[3] for line in out.splitlines() if line.strip()]


async def test_video_through_the_sfu_recovers_from_kernel_made_loss_like_a_direct_call(
    tmp_path: Path,
) -> None:
    with veth_link() as link:
        near, far = link.a, link.b  # the node's side, the participants' side
        subnet = ipaddress.ip_network(link.subnet)
        db_url = f"sqlite+aiosqlite:///{tmp_path / 'consilium.db'}"
        await asyncio.to_thread(upgrade, db_url)
        db = Database(db_url, EventBus())
        try:
            users = await seed_accounts(db)
            sessions = Sessions(
                make_store(db, None, "loss:"),
                idle=timedelta(minutes=30),
                absolute=timedelta(hours=1),
            )
            alice_token, alice = await sessions.create(
                kind="user", subject_id=users["requester"].id, stage="full"
            )
            bob_token, _ = await sessions.create(
                kind="user", subject_id=users["expert"].id, stage="full"
            )
        finally:
            await db.close()

        env = {
            **os.environ,
            "CONSILIUM_DEV": "1",
            "CONSILIUM_HOST": near.address,
            "CONSILIUM_PORT": str(SERVER_PORT),
            "CONSILIUM_DATABASE_URL": db_url,
            "CONSILIUM_REDIS_URL": "",
            "CONSILIUM_SECRET_KEY": SECRET,
            "CONSILIUM_DATA_DIR": str(tmp_path / "data"),
            "CONSILIUM_LOG_LEVEL": "WARNING",
            "CONSILIUM_RTC_ALLOWED_ADDRESSES": json.dumps([link.subnet]),
        }
        python = [sys.executable, "-m", "tests.faults.loss_peers"]
        procs: list[asyncio.subprocess.Process] = []
        try:
            exe = str(Path(sys.executable).parent / "consilium")
            procs.append(await spawn(link, near, [exe, "serve"], tmp_path / "node.log", env))
            procs.append(
                await spawn(
                    link,
                    near,
                    [
                        *python,
                        "receiver",
                        "--subnet",
                        link.subnet,
                        "--listen",
                        f"{near.address}:{SIGNAL_PORT}",
                    ],
                    tmp_path / "receiver.log",
                    env,
                )
            )
            peers = await spawn(
                link,
                far,
                [
                    *python,
                    "peers",
                    "--subnet",
                    link.subnet,
                    "--server",
                    f"http://{near.address}:{SERVER_PORT}",
                    "--direct",
                    f"{near.address}:{SIGNAL_PORT}",
                    "--alice-cookie",
                    f"{COOKIE}={alice_token}",
                    "--alice-csrf",
                    alice.csrf_token,
                    "--bob-cookie",
                    f"{COOKIE}={bob_token}",
                    "--bob-user-id",
                    str(users["expert"].id),
                    "--window",
                    str(WINDOW_FRAMES),
                ],
                tmp_path / "peers.log",
                env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            procs.append(peers)
            try:
                await next_json(peers, "ready", timeout=400)
            except (AssertionError, TimeoutError):
                logs = {p: (tmp_path / p).read_text()[-3000:] for p in ("node.log", "peers.log")}
                raise AssertionError(f"the calls did not start: {logs}") from None

            # Every UDP socket of the calls is on the veth link (never eth0's address).
            for side in (near, far):
                local = udp_sockets(link, side)
                hosts = [a.rsplit(":", 1)[0].strip("[]") for a in local]
                print(f"\n  UDP sockets in {side.ns}: {local}", flush=True)
                assert hosts and all(ipaddress.ip_address(h) in subnet for h in hosts), local
            # Loss on: each side drops 5 % of the UDP it receives, both directions of each hop.
            link.drop_udp(near, LOSS_PERCENT)
            link.drop_udp(far, LOSS_PERCENT)
            assert peers.stdin is not None
            peers.stdin.write(b"go\n")
            await peers.stdin.drain()
            result = await next_json(peers, "start", timeout=WINDOW_FRAMES / 15 * 8 + 60)
            start, end = result["start"], result["end"]
            sfu_freeze, sfu_fps = freeze_and_fps(result["sfu"], start, end)
            direct_freeze, direct_fps = freeze_and_fps(result["direct"], start, end)
            (seen_near, lost_near), (seen_far, lost_far) = (
                link.counts(near),
                link.counts(far),
            )
            figures(
                f"{LOSS_PERCENT} % UDP loss (nftables, both directions), {end - start:.1f} s",
                sfu_fps=sfu_fps,
                sfu_longest_freeze_s=sfu_freeze,
                direct_fps=direct_fps,
                direct_longest_freeze_s=direct_freeze,
                sfu_undecodable=result["sfu_undecodable"],
                direct_undecodable=result["direct_undecodable"],
                dropped_at_node_side=f"{lost_near}/{seen_near}",
                dropped_at_participants_side=f"{lost_far}/{seen_far}",
            )
            assert lost_near > 0 and lost_far > 0, (lost_near, lost_far)  # loss was real
            # Video keeps decoding through the SFU; a busy machine slows both calls alike.
            assert sfu_fps > 0.25 * direct_fps, (sfu_fps, direct_fps)
            assert sfu_freeze < max(5.0, 4 * direct_freeze), (sfu_freeze, direct_freeze)
        finally:
            for proc in procs:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.terminate()
            for proc in procs:
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
