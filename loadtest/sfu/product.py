"""The real product under load: a `consilium serve` process and clients that speak its protocol.

`ConsiliumServer` prepares a throw-away data directory (SQLite, files) on loopback the way an
operator would: `consilium migrate`, `consilium create-user --totp` for the practitioner who
hosts the calls, `consilium api-key create` for the application that books them; then starts
`consilium serve` (optionally pinned to CPUs with `taskset`) and reads its `/metrics`.

A room is booked through the server API (`POST /api/v1/server/rooms` with the API key); its
host is the practitioner, signed in with password and TOTP (`/api/v1/auth/login`, then
`/auth/verify`); every other participant is a guest holding an access token minted with the
key (`room_join` grant, `POST /api/v1/access/join`), who waits in the lobby until the host's
connection admits them (`room:admit`). Each participant then holds its own Socket.IO
connection (`room:join`) and negotiates media with `rtc:join`, `rtc:offer`, `rtc:pull` and
`rtc:answer` (docs/rooms.md, docs/rtc.md); `rtc:renegotiate` triggers a pull, `rtc:stats`
and the other room events arrive as they would in a browser (counted, not parsed further).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pyotp
import socketio
from prometheus_client.parser import text_string_to_metric_families

from ops import tokens

CLK_TCK = os.sysconf("SC_CLK_TCK")
EXE = Path(sys.executable).parent / "consilium"
HOST_EMAIL = "medecin.banc@bench.consilium.fr"
HOST_PASSWORD = "Bench-host-password-2026"  # a throw-away data directory
ROOT = Path(__file__).resolve().parents[2]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def runqueue_wait(pid: int) -> float:
    """Seconds the process was runnable but waiting for a CPU (other load on the machine)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        path = f"/proc/{pid}/task/{task}/schedstat"
        with contextlib.suppress(FileNotFoundError), open(path) as f:  # a thread just ended
            total += int(f.read().split()[1])
    return total / 1e9


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the benchmark process dies, however it dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ProtocolError(RuntimeError):
    pass


def _ok(event: str, ack: Any) -> dict[str, Any]:
    if not isinstance(ack, dict) or not ack.get("ok"):
        raise ProtocolError(f"{event}: {ack}")
    return ack


@dataclass
class Metrics:
    """What one scrape of /metrics says (the figures the benchmarks use)."""

    samples: dict[str, float]
    lag_buckets: list[tuple[float, float]]  # (upper bound, cumulative count)

    def get(self, name: str) -> float:
        return self.samples.get(name, 0.0)


def lag_quantile(before: Metrics, after: Metrics, q: float) -> float | None:
    """Quantile of the event-loop lag probes between two scrapes, from the histogram's bucket
    counts (linear inside a bucket, as Prometheus' histogram_quantile)."""
    old = dict(before.lag_buckets)
    buckets = [(le, count - old.get(le, 0.0)) for le, count in after.lag_buckets]
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return lower
            inside = count - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, count
    return None


class ConsiliumServer:
    """A `consilium serve` on 127.0.0.1 with a throw-away SQLite data directory."""

    def __init__(self, cpus: str | None = None, log_level: str = "WARNING") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="consilium-bench-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cpus = cpus
        self.env = {
            **os.environ,
            "CONSILIUM_DEV": "1",
            "CONSILIUM_HOST": "127.0.0.1",
            "CONSILIUM_PORT": str(self.port),
            "CONSILIUM_DATA_DIR": str(self.dir / "data"),
            "CONSILIUM_DATABASE_URL": f"sqlite+aiosqlite:///{self.dir}/consilium.db",
            "CONSILIUM_SECRET_KEY": base64.b32encode(os.urandom(30)).decode(),
            "CONSILIUM_RTC_ALLOWED_ADDRESSES": '["127.0.0.1"]',
            "CONSILIUM_LOG_LEVEL": log_level,
        }
        for name in ("CONSILIUM_REDIS_URL", "CONSILIUM_SMTP_HOST", "CONSILIUM_STUN_URLS"):
            self.env.pop(name, None)
        self.proc: asyncio.subprocess.Process | None = None
        self.totp_secret = ""
        self.key_id = ""
        self.key_secret = ""
        self.log = self.dir / "server.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def _cli(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            str(EXE),
            *args,
            env=self.env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        text = out.decode(errors="replace")
        if proc.returncode:
            raise RuntimeError(f"consilium {' '.join(args)}: {text}")
        return text

    async def start(self) -> None:
        await self._cli("migrate")
        out = await self._cli(
            "create-user",
            "--email",
            HOST_EMAIL,
            "--role",
            "practitioner",
            "--first-name",
            "Camille",
            "--last-name",
            "Banc",
            "--title",
            "Dr",
            "--password",
            HOST_PASSWORD,
            "--totp",
        )
        found = re.search(r"TOTP secret:\s*(\S+)", out)
        if not found:
            raise RuntimeError(f"no TOTP secret in: {out}")
        self.totp_secret = found.group(1)
        out = await self._cli("api-key", "create", "--name", "load test", "--user", HOST_EMAIL)
        key = re.search(r"API key:\s*(\S+)", out)
        secret = re.search(r"API secret:\s*(\S+)", out)
        if not key or not secret:
            raise RuntimeError(f"no API key in: {out}")
        self.key_id, self.key_secret = key.group(1), secret.group(1)
        prefix = ["taskset", "-c", self.cpus] if self.cpus else []
        self.proc = await asyncio.create_subprocess_exec(
            *prefix,
            str(EXE),
            "serve",
            env=self.env,
            cwd=ROOT,
            stdout=self.log.open("wb"),
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + 120  # importing the server takes seconds on a busy box
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"consilium serve exited: {self.log.read_text()[-3000:]}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(self.url + "/healthz") as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.2)
        raise RuntimeError(f"consilium serve did not start: {self.log.read_text()[-3000:]}")

    async def metrics(self, http: aiohttp.ClientSession) -> Metrics:
        async with http.get(self.url + "/metrics") as r:
            r.raise_for_status()
            text = await r.text()
        samples: dict[str, float] = {}
        buckets: list[tuple[float, float]] = []
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "consilium_event_loop_lag_bucket":
                    buckets.append((float(s.labels["le"]), s.value))
                elif not s.labels:
                    samples[s.name] = s.value
        return Metrics(samples, sorted(buckets))

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    def cleanup(self, keep_log_to: Path | None = None) -> None:
        if keep_log_to is not None and self.log.exists():
            shutil.copy(self.log, keep_log_to)
        shutil.rmtree(self.dir, ignore_errors=True)


def _cookie_header(jar: aiohttp.CookieJar) -> str:
    return "; ".join(f"{c.key}={c.value}" for c in jar)


async def sign_in(server: ConsiliumServer) -> tuple[aiohttp.ClientSession, str]:
    """The host practitioner's session (password, then TOTP): (HTTP session, Cookie header)."""
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    api = server.url + "/api/v1"
    async with http.post(
        f"{api}/auth/login", json={"email": HOST_EMAIL, "password": HOST_PASSWORD}
    ) as r:
        if r.status != 200:
            raise ProtocolError(f"login: {r.status} {await r.text()}")
    csrf = next(c.value for c in http.cookie_jar if c.key == "consilium_csrf")
    body = {"method": "totp", "code": pyotp.TOTP(server.totp_secret).now()}
    async with http.post(f"{api}/auth/verify", json=body, headers={"X-CSRF-Token": csrf}) as r:
        if r.status != 200:
            raise ProtocolError(f"verify: {r.status} {await r.text()}")
    return http, _cookie_header(http.cookie_jar)


async def book_room(
    http: aiohttp.ClientSession, server: ConsiliumServer, kind: str, title: str, capacity: int
) -> str:
    """The application books a room with its API key (Basic key id:secret)."""
    auth = aiohttp.BasicAuth(server.key_id, server.key_secret)
    body = {"kind": kind, "title": title, "capacity": capacity}
    async with http.post(server.url + "/api/v1/server/rooms", json=body, auth=auth) as r:
        if r.status != 201:
            raise ProtocolError(f"server/rooms: {r.status} {await r.text()}")
        return str((await r.json())["id"])


async def guest_cookie(
    server: ConsiliumServer, room_id: str, identity: str, name: str
) -> tuple[str, str]:
    """A patient's guest session from an access token with a room_join grant:
    (Cookie header, guest id)."""
    token = tokens.mint(
        server.key_id, server.key_secret, identity=identity, name=name, room_join=True, room=room_id
    )
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(server.url + "/api/v1/access/join", json={"token": token}) as r:
            if r.status != 200:
                raise ProtocolError(f"access/join: {r.status} {await r.text()}")
            guest_id = (await r.json())["guest_id"]
        return _cookie_header(http.cookie_jar), str(guest_id)


@dataclass
class Connection:
    """One participant's Socket.IO connection: the `Signal` of `loadtest.sfu.peers`."""

    url: str
    cookie: str
    room_id: str
    timeout: float = 60.0
    sio: socketio.AsyncClient = field(init=False)
    counts: dict[str, int] = field(default_factory=dict)  # room events received, by name
    admitted: asyncio.Event = field(default_factory=asyncio.Event)
    participant_id: str = ""
    on_renegotiate: Any = None

    def __post_init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)

        @self.sio.on("*")
        async def any_event(event: str, data: Any = None) -> None:
            self.counts[event] = self.counts.get(event, 0) + 1
            if event == "lobby:admitted":
                self.admitted.set()
            elif event == "rtc:renegotiate" and self.on_renegotiate is not None:
                self.on_renegotiate()

    async def connect(self) -> None:
        await self.sio.connect(
            self.url,
            headers={"Cookie": self.cookie},
            transports=["websocket"],
            wait_timeout=self.timeout,
        )

    async def call(self, event: str, data: Any = None) -> dict[str, Any]:
        ack = await self.sio.call(event, data if data is not None else {}, timeout=self.timeout)
        return _ok(event, ack)

    async def enter(self) -> dict[str, Any]:
        return await self.call("room:join", {"room_id": self.room_id})

    # -- Signal ---------------------------------------------------------------------------

    async def join(self) -> dict[str, Any]:
        joined = await self.call("rtc:join")
        self.participant_id = joined["participant_id"]
        return joined

    async def offer(self, sdp: str, sources: dict[str, str]) -> dict[str, Any]:
        return await self.call("rtc:offer", {"sdp": sdp, "type": "offer", "sources": sources})

    async def pull(self) -> dict[str, Any] | None:
        return (await self.call("rtc:pull"))["offer"]

    async def answer(self, sdp: str) -> dict[str, Any]:
        return await self.call("rtc:answer", {"sdp": sdp, "type": "answer"})

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.sio.disconnect()


async def open_room(
    server: ConsiliumServer,
    http: aiohttp.ClientSession,
    host_cookie: str,
    kind: str,
    title: str,
    size: int,
    tag: str = "",
) -> list[Connection]:
    """A booked room with its host and `size - 1` admitted guests, each in the room over
    its own Socket.IO connection (no media yet). The host comes first in the list."""
    room_id = await book_room(http, server, kind, title, max(size, 2))
    host = Connection(server.url, host_cookie, room_id)
    await host.connect()
    await host.enter()
    people = [host]
    for i in range(1, size):
        identity = f"patient-{tag}{i}-{uuid.uuid4().hex[:6]}"
        cookie, guest_id = await guest_cookie(server, room_id, identity, f"Patient {i}")
        guest = Connection(server.url, cookie, room_id)
        await guest.connect()
        first = await guest.enter()
        if first.get("status") == "lobby":
            await host.call("room:admit", {"guest_id": guest_id})
            await asyncio.wait_for(guest.admitted.wait(), guest.timeout)
            joined = await guest.enter()
            if joined.get("status") != "joined":
                raise ProtocolError(f"room:join after admission: {joined}")
        people.append(guest)
    return people
