"""``consilium serve --workers N``: real processes on a loopback port, a scratch PostgreSQL
database and a Redis prefix. Two workers share one HTTP port (SO_REUSEPORT) and both answer;
Socket.IO over WebSocket works on either and chat crosses them; long-polling is refused with
a clear error; a worker killed with ``kill -9`` is started again by the parent; SIGTERM on the
parent drains every worker and the parent exits; without Redis the command says what to set."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core import workers
from core.config import load_settings
from core.db import Database
from core.events import EventBus
from core.seed import seed_accounts
from core.sessions import Sessions, make_store
from rtc import aiortc_internals
from tests.conftest import PG_URL, REDIS_URL, SECRET, free_port, need
from tests.rtc.clients import wait_decoded, wait_for
from tests.rtc.test_signalling import SockClient
from tests.support.live import Sock
from tests.support.media_nodes import MovingPeer, all_decode, loopback_peers
from tests.support.nodes import Browser
from tests.support.pg import pg_admin, scratch_name, url_of
from tests.ui.conftest import Pages

EXE = Path(sys.executable).parent / "consilium"


# -- without a server ---------------------------------------------------------------------


def test_workers_count_and_udp_slices() -> None:
    assert workers.parse_workers("3") == 3
    assert workers.parse_workers("auto") == workers.cpu_count() >= 1
    with pytest.raises(workers.ClusterError):
        workers.parse_workers("zero")
    with pytest.raises(workers.ClusterError):
        workers.parse_workers("0")
    slices = [workers.udp_slice((40000, 40009), 3, i) for i in (1, 2, 3)]
    assert slices == ["40000-40002", "40003-40005", "40006-40009"]
    assert workers.udp_slice(None, 3, 1) == ""


def _serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), "serve", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_several_workers_without_redis_or_postgresql_say_what_to_set(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CONSILIUM_DEV": "1",
        "CONSILIUM_SECRET_KEY": SECRET,
        "CONSILIUM_DATA_DIR": str(tmp_path),
        "CONSILIUM_PORT": str(free_port()),
    }
    env.pop("CONSILIUM_REDIS_URL", None)
    env.pop("CONSILIUM_DATABASE_URL", None)
    done = _serve(env, "--workers", "2")
    assert done.returncode == 2, done
    assert "--workers 2 needs CONSILIUM_REDIS_URL" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    done = _serve({**env, "CONSILIUM_REDIS_URL": "redis://127.0.0.1:1/0"}, "--workers", "2")
    assert done.returncode == 2 and "needs PostgreSQL" in done.stderr, done.stderr
    done = _serve(env, "--workers", "lots")
    assert done.returncode == 2 and "expected a number or 'auto'" in done.stderr, done.stderr


def test_one_worker_settings_are_untouched() -> None:
    settings = load_settings(dev=True, secret_key=SECRET)
    assert (settings.worker_index, settings.worker_count, settings.udp_ports) == (0, 1, None)
    workers.check(settings, 1)  # SQLite, no Redis: fine for one process


# -- real workers -------------------------------------------------------------------------


@dataclass
class Server:
    proc: asyncio.subprocess.Process
    url: str
    log: Path
    prefix: str
    redis: Any
    users: dict[str, Any]
    sessions: Sessions
    http: aiohttp.ClientSession
    socks: list[Sock] = field(default_factory=list)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def own(self, index: int, path: str) -> tuple[int, str]:
        """GET ``path`` on worker ``index``'s own port (CONSILIUM_WORKER_PORT_BASE + index)."""
        base = int(self.worker_env(self.worker_pids()[index])["CONSILIUM_WORKER_PORT_BASE"])
        async with self.http.get(f"http://127.0.0.1:{base + index}{path}") as r:
            return r.status, await r.text()

    def worker_env(self, pid: int) -> dict[str, str]:
        raw = (Path(f"/proc/{pid}") / "environ").read_bytes().split(b"\0")
        return dict(item.decode().split("=", 1) for item in raw if b"=" in item)

    def worker_pids(self) -> dict[int, int]:
        """Worker number → pid, from the parent's direct children and their environment."""
        found: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) != self.proc.pid:
                    continue
                env = (entry / "environ").read_bytes().split(b"\0")
            except (OSError, ValueError):
                continue
            for item in env:
                if item.startswith(b"CONSILIUM_WORKER_INDEX="):
                    found[int(item.split(b"=", 1)[1])] = int(entry.name)
        return found

    async def health(self) -> dict[str, Any] | None:
        """/healthz over a new connection (the kernel picks the worker); None if refused."""
        try:
            async with (
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
                http.get(self.url + "/healthz") as r,
            ):
                return await r.json() if r.status == 200 else None
        except aiohttp.ClientError:
            return None

    async def nodes_answering(self, want: set[str], timeout: float = 120) -> None:
        """Wait until every node of ``want`` answered /healthz on the shared port."""
        seen: set[str] = set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            assert self.proc.returncode is None, self.output()[-3000:]
            body = await self.health()
            if body is not None:
                seen.add(body["node"])
                if want <= seen:
                    return
            else:
                await asyncio.sleep(0.1)
        raise AssertionError(f"only {seen} answered; log:\n{self.output()[-3000:]}")

    async def browser(self, who: str) -> Browser:
        token, s = await self.sessions.create(
            kind="user", subject_id=self.users[who].id, stage="full"
        )
        return Browser(self.http, token, s.csrf_token)

    async def node_of(self, sock: Sock) -> str:
        """The node (worker) holding this Socket.IO connection, from its presence entry."""
        sid = sock.sio.get_sid()
        for _ in range(100):
            for node in ("w1", "w2"):
                key = f"{self.prefix}live:online:127.0.0.1:{self.url.rsplit(':', 1)[1]}-{node}"
                entries = await self.redis.hkeys(key)
                if any(e.decode().endswith(f"|{sid}") for e in entries):
                    return node
            await asyncio.sleep(0.05)
        raise AssertionError(f"socket {sid} is on no worker")

    async def socket_on(self, who: Browser, node: str) -> Sock:
        """A WebSocket connection of ``who`` that the kernel handed to worker ``node``."""
        for _ in range(60):
            sock = await Sock(self.url, who.cookie).connect()
            self.socks.append(sock)
            if await self.node_of(sock) == node:
                return sock
            await sock.close()
        raise AssertionError(f"no connection reached {node}")


def own_port_base(count: int) -> int:
    """A base whose next ``count`` TCP ports are free on 127.0.0.1 right now."""
    import socket

    for _ in range(100):
        base = free_port()
        if base + count > 65535:
            continue
        socks = []
        try:
            for port in range(base + 1, base + count + 1):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free ports")


@asynccontextmanager
async def workers_server(tmp_path: Path, count: int = 2) -> AsyncIterator[Server]:
    need("database", PG_URL)
    need("redis", REDIS_URL)
    import redis.asyncio as aioredis

    name = scratch_name("workers")
    db_url = url_of(name)
    await pg_admin(f'CREATE DATABASE "{name}"')
    prefix = f"consilium-workers-{uuid.uuid4().hex[:8]}:"
    redis = aioredis.from_url(REDIS_URL)
    http = aiohttp.ClientSession()
    port = free_port()
    log = tmp_path / "serve.log"
    env = {
        **os.environ,
        "CONSILIUM_DEV": "1",
        "CONSILIUM_HOST": "127.0.0.1",
        "CONSILIUM_PORT": str(port),
        "CONSILIUM_DATABASE_URL": db_url,
        "CONSILIUM_REDIS_URL": REDIS_URL,
        "CONSILIUM_REDIS_PREFIX": prefix,
        "CONSILIUM_SECRET_KEY": SECRET,
        "CONSILIUM_DATA_DIR": str(tmp_path / "data"),
        "CONSILIUM_LOG_LEVEL": "INFO",
        "CONSILIUM_ROOM_GRACE_SECONDS": "2",
        "CONSILIUM_RTC_UDP_PORTS": "41000-41999",
        "CONSILIUM_RTC_ALLOWED_ADDRESSES": '["127.0.0.1"]',
        "CONSILIUM_WORKER_PORT_BASE": str(own_port_base(count)),
    }
    # The parent migrates (--migrate), once, before starting the workers.
    proc = await asyncio.create_subprocess_exec(
        str(EXE), "serve", "--workers", str(count), "--migrate",
        env=env, stdout=log.open("wb"), stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    db: Database | None = None
    srv: Server | None = None
    try:
        srv = Server(proc, f"http://127.0.0.1:{port}", log, prefix, redis, {}, None, http)  # type: ignore[arg-type]
        await srv.nodes_answering({f"127.0.0.1:{port}-w{i}" for i in range(1, count + 1)})
        db = Database(db_url, EventBus())
        srv.users = await seed_accounts(db)
        srv.sessions = Sessions(
            make_store(db, redis, prefix), idle=timedelta(minutes=30), absolute=timedelta(hours=1)
        )
        yield srv
    finally:
        if srv is not None:
            for s in srv.socks:
                await s.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await http.close()
        if db is not None:
            await db.close()
        keys = [k async for k in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.media
@pytest.mark.slow
async def test_two_workers_share_the_port_chat_across_them_restart_and_drain(tmp_path):
    async with workers_server(tmp_path) as srv:
        pids = srv.worker_pids()
        assert sorted(pids) == [1, 2], srv.output()[-2000:]
        # Each worker is its own node, with its own half of the SFU's UDP range.
        envs = {i: srv.worker_env(pid) for i, pid in pids.items()}
        assert envs[1]["CONSILIUM_RTC_UDP_PORTS"] == "41000-41499"
        assert envs[2]["CONSILIUM_RTC_UDP_PORTS"] == "41500-41999"
        assert envs[1]["CONSILIUM_NODE_ID"] != envs[2]["CONSILIUM_NODE_ID"]
        # Each worker also answers on its own port: health checks and scrapes of one worker.
        for i in (1, 2):
            status, text = await srv.own(i, "/healthz")
            assert status == 200 and json.loads(text)["worker"] == i, text
            status, text = await srv.own(i, "/metrics")
            assert status == 200 and "consilium_live_connections" in text, text[:500]
        out = srv.output()
        assert "[w1] " in out and "[w2] " in out  # every line says which worker wrote it
        lines = out.splitlines()
        # Migrations ran once, in the parent (unprefixed), never in a worker.
        assert not any(line.startswith("[w") and "Running upgrade" in line for line in lines)

        # Long-polling is refused by whichever worker takes it, with a code a client can read.
        for _ in range(6):
            async with (
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
                http.get(srv.url + "/socket.io/?EIO=4&transport=polling") as r,
            ):
                assert r.status == 400
                body = await r.json(content_type=None)
                assert body["code"] == "websocket_required", body

        # Two people on two workers: one room, chat crosses.
        host, expert = await srv.browser("requester"), await srv.browser("expert")
        status, room = await host.call(
            "POST", srv.url + "/api/v1/rooms", json={"kind": "estaff", "title": "RCP"}
        )
        assert status == 201, room
        rid = room["id"]
        status, _ = await host.call(
            "POST",
            srv.url + f"/api/v1/rooms/{rid}/members",
            json={"user_id": str(srv.users["expert"].id), "role": "participant"},
        )
        assert status == 201
        h = await srv.socket_on(host, "w1")
        e = await srv.socket_on(expert, "w2")
        host_joined = await h.ok("room:join", {"room_id": rid})
        ghost = (await e.ok("room:join", {"room_id": rid}))["participant_id"]
        await media_on_one_worker(srv, host, h, host_joined, rid)
        mid = str(uuid.uuid4())
        await e.ok("chat:send", {"id": mid, "text": "Bonjour depuis le worker 2"})
        assert (await h.wait_for("chat:message", timeout=30))["id"] == mid
        mid2 = str(uuid.uuid4())
        await h.ok("chat:send", {"id": mid2, "text": "Reçu sur le worker 1"})
        assert await e.wait_for("chat:message", lambda m: m["id"] == mid2, timeout=30)

        # kill -9 of worker 2: the parent starts it again; its client reconnects to a worker.
        os.kill(pids[2], signal.SIGKILL)
        await asyncio.wait_for(e.disconnected.wait(), 30)
        await wait_for(lambda: srv.worker_pids().get(2) not in (None, pids[2]), 120)
        assert "worker 2 crashed" in srv.output()
        # Its participant is not left behind as a ghost, even if worker 2 came back (same
        # node id) before its heartbeat lapsed.
        left = await h.wait_for("participant:left", lambda d: d["participant_id"] == ghost, 60)
        assert left["reason"] == "timeout"
        await srv.nodes_answering({f"127.0.0.1:{srv.url.rsplit(':', 1)[1]}-w2"})
        e2 = await srv.socket_on(expert, "w2")
        await e2.ok("room:join", {"room_id": rid})
        mid3 = str(uuid.uuid4())
        await e2.ok("chat:send", {"id": mid3, "text": "De retour"})
        await h.wait_for("chat:message", lambda m: m["id"] == mid3, timeout=30)
        assert srv.worker_pids()[1] == pids[1]  # the other worker was left alone

        # SIGTERM on the parent: every worker drains (clients told to reconnect) and exits.
        workers_now = set(srv.worker_pids().values())
        srv.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(srv.proc.wait(), 60)
        assert code == 0, srv.output()[-3000:]
        await h.wait_for("server:draining", timeout=5)
        await e2.wait_for("server:draining", timeout=5)
        for pid in workers_now:
            assert not Path(f"/proc/{pid}").exists() or "zombie" in _state(pid)
        assert "all workers stopped (exit 0)" in srv.output()


async def media_on_one_worker(
    srv: Server, host: Browser, h: Sock, joined: dict[str, Any], rid: str
) -> None:
    """Two aiortc participants on worker 1 publish and decode each other's video; the room's
    media runs on the worker it was placed on (rooms/placement.py: worker 1 unless it is the
    busier) and the server's ICE candidates use that worker's half of CONSILIUM_RTC_UDP_PORTS."""
    status, _ = await host.call(
        "POST",
        srv.url + f"/api/v1/rooms/{rid}/members",
        json={"user_id": str(srv.users["secretary"].id), "role": "participant"},
    )
    assert status == 201
    other = await srv.socket_on(await srv.browser("secretary"), "w1")
    second = await other.ok("room:join", {"room_id": rid})
    aiortc_internals.restrict_host_addresses(["127.0.0.1"])
    clients = [SockClient(h, joined["participant_id"]), SockClient(other, second["participant_id"])]
    try:
        media = {(await client.join())["media_node"] for client in clients}
        assert len(media) == 1, media
        low, high = _udp_slice(srv, media.pop())
        first, last = clients
        await first.publish()
        await wait_for(lambda: last.mids_for(first.id, "camera") and not last.lock.locked(), 60)
        await last.publish()
        await wait_for(lambda: first.mids_for(last.id, "camera") and not first.lock.locked(), 60)
        await wait_decoded([(first, last.id), (last, first.id)], 10, timeout=90)
        for client in clients:
            remote = client.pc.remoteDescription
            assert remote is not None
            ports = [
                int(line.split()[5])
                for line in remote.sdp.splitlines()
                if line.startswith("a=candidate:")
            ]
            assert ports and all(low <= p <= high for p in ports), ports
    finally:
        for client in clients:
            await client.close()
        aiortc_internals.restrict_host_addresses(None)
        await other.close()


def _state(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}") / "status").read_text().split("State:")[1].split("\n")[0]
    except (OSError, IndexError):
        return "zombie"


async def _node_of_user(srv: Server, user_id: str) -> set[str]:
    """The workers holding a live connection of this user (presence entries in Redis)."""
    port = srv.url.rsplit(":", 1)[1]
    found = set()
    for node in ("w1", "w2"):
        entries = await srv.redis.hkeys(f"{srv.prefix}live:online:127.0.0.1:{port}-{node}")
        if any(e.decode().startswith(f"{user_id}|") for e in entries):
            found.add(node)
    return found


async def _page_on(srv: Server, page: Any, user_id: str, path: str, node: str) -> None:
    """Open ``path`` until the page's live connection is held by worker ``node``."""
    for _ in range(30):
        await page.goto(path)
        await wait_for(lambda: _node_of_user(srv, user_id), 60)

        async def one_connection() -> bool:  # the previous page's connection has left
            return len(await _node_of_user(srv, user_id)) == 1

        await wait_for(one_connection, 60)
        if await _node_of_user(srv, user_id) == {node}:
            return
    raise AssertionError(f"the page's live connection never reached {node}")


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.browser
@pytest.mark.slow
async def test_the_web_client_chats_across_two_workers_over_websocket(tmp_path, browser):
    """The real page: two practitioners whose pages' live connections the kernel handed to
    different workers write to each other live; no page ever tries long-polling."""
    async with workers_server(tmp_path) as srv:
        pages = Pages(browser, srv.url)
        polling: list[str] = []
        try:
            claire, karim = srv.users["requester"], srv.users["expert"]
            a, b = await pages.new(), await pages.new()
            for page, who in ((a, "requester"), (b, "expert")):
                page.on("request", lambda r: "transport=polling" in r.url and polling.append(r.url))
                token, s = await srv.sessions.create(
                    kind="user", subject_id=srv.users[who].id, stage="full"
                )
                await page.context.add_cookies(
                    [
                        {"name": "consilium_session", "value": token, "url": srv.url},
                        {"name": "consilium_csrf", "value": s.csrf_token, "url": srv.url},
                    ]
                )
            await _page_on(srv, a, str(claire.id), f"/app/messages/{karim.id}", "w1")
            await _page_on(srv, b, str(karim.id), f"/app/messages/{claire.id}", "w2")
            await a.get_by_role("heading", name="Dr Karim Benali").wait_for()
            await b.get_by_role("heading", name="Dr Claire Martin").wait_for()

            first = "Bonjour Karim, message écrit sur le worker 1."
            box = a.get_by_label("Votre message")
            await box.fill(first)
            await box.press("Enter")
            await a.locator(".msg-item.mine .msg-state", has_text="Envoyé").wait_for()
            await b.locator(".msg-item.theirs .msg-text", has_text=first).wait_for()
            reply = "Bien reçu sur le worker 2."
            box_b = b.get_by_label("Votre message")
            await box_b.fill(reply)
            await box_b.press("Enter")
            await a.locator(".msg-item.theirs .msg-text", has_text=reply).wait_for()
            await a.locator(".msg-item.mine .msg-state.read", has_text="Lu").wait_for()
            assert polling == []
            assert pages.errors == []
        finally:
            await pages.close()


# -- rooms' media over two workers (rooms/placement.py) -----------------------------------


def _udp_slice(srv: Server, node: str) -> tuple[int, int]:
    """The UDP ports of worker ``node`` ("…-w1"), from its own environment."""
    env = srv.worker_env(srv.worker_pids()[int(node.rsplit("-w", 1)[1])])
    low, high = env["CONSILIUM_RTC_UDP_PORTS"].split("-")
    return int(low), int(high)


def _server_ports(peer: MovingPeer) -> list[int]:
    """The ports of the server's ICE candidates this participant's peer connection got."""
    remote = peer.client.pc.remoteDescription
    assert remote is not None
    return [
        int(line.split()[5]) for line in remote.sdp.splitlines() if line.startswith("a=candidate:")
    ]


async def _own_sock(srv: Server, who: Browser, index: int) -> Sock:
    """A live connection of ``who`` to worker ``index`` through that worker's own port
    (CONSILIUM_WORKER_PORT_BASE + index): the kernel does not choose."""
    base = int(srv.worker_env(srv.worker_pids()[index])["CONSILIUM_WORKER_PORT_BASE"])
    sock = await Sock(f"http://127.0.0.1:{base + index}", who.cookie).connect()
    srv.socks.append(sock)
    assert await srv.node_of(sock) == f"w{index}"
    return sock


async def _room(srv: Server, host: Browser, title: str, *members: str) -> str:
    status, room = await host.call(
        "POST", srv.url + "/api/v1/rooms", json={"kind": "estaff", "title": title}
    )
    assert status == 201, room
    for who in members:
        status, body = await host.call(
            "POST",
            srv.url + f"/api/v1/rooms/{room['id']}/members",
            json={"user_id": str(srv.users[who].id), "role": "participant"},
        )
        assert status == 201, body
    return str(room["id"])


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.media
@pytest.mark.slow
async def test_rooms_spread_over_two_workers_and_a_call_across_them_has_its_media_on_one(
    tmp_path,
):
    """Issue #14: two workers on one machine, rooms spread over both (placement by load, every
    first media join through worker 1), and a room whose participants reached different
    workers still has its media on one: both decode each other, both peer connections use
    that worker's UDP ports."""
    async with workers_server(tmp_path) as srv:
        port = srv.url.rsplit(":", 1)[1]
        w = {i: f"127.0.0.1:{port}-w{i}" for i in (1, 2)}
        host = await srv.browser("requester")
        peers: list[MovingPeer] = []
        with loopback_peers():
            try:
                # Four rooms, each entered and its media joined through worker 1 only.
                spread: dict[str, str] = {}
                for n in range(4):
                    rid = await _room(srv, host, f"Salle {n + 1}")
                    sock = await _own_sock(srv, host, 1)
                    joined = await sock.ok("room:join", {"room_id": rid})
                    peer = MovingPeer("requester", sock, joined["participant_id"])
                    peers.append(peer)
                    await peer.start()  # rtc:join (placed) and a camera and a microphone
                    spread[rid] = peer.media_nodes[-1]
                assert set(spread.values()) == set(w.values()), spread
                assert await placements_of(srv) == spread

                # One room, one participant on each worker: its media on exactly one of them.
                rid = await _room(srv, host, "Appel entre deux workers", "expert")
                a_sock = await _own_sock(srv, host, 1)
                b_sock = await _own_sock(srv, await srv.browser("expert"), 2)
                a_joined = await a_sock.ok("room:join", {"room_id": rid})
                b_joined = await b_sock.ok("room:join", {"room_id": rid})
                pair = [
                    MovingPeer("requester", a_sock, a_joined["participant_id"]),
                    MovingPeer("expert", b_sock, b_joined["participant_id"]),
                ]
                peers += pair
                for peer in pair:
                    await peer.start()
                await all_decode(pair, frames=10)
                media = {peer.media_nodes[-1] for peer in pair}
                assert len(media) == 1, media
                (node,) = media
                assert node in w.values()
                assert (await placements_of(srv))[rid] == node
                low, high = _udp_slice(srv, node)
                for peer in pair:
                    ports = _server_ports(peer)
                    assert ports and all(low <= p <= high for p in ports), (node, ports)
                assert not any(p.moved for p in peers)  # nothing was placed twice
            finally:
                for peer in peers:
                    await peer.close()


async def placements_of(srv: Server) -> dict[str, str]:
    """Room → media node (``<prefix>media:rooms`` in Redis)."""
    raw = await srv.redis.hgetall(srv.prefix + "media:rooms")
    return {k.decode(): v.decode() for k, v in raw.items()}
