"""Chat load: N Socket.IO clients over M rooms sending at a chosen total rate.

Starts its own server(s) on 127.0.0.1 (``consilium serve`` subprocesses), prepares rooms and
sessions, spreads the clients over a few worker processes, and prints: connected clients,
messages sent (stored and acknowledged) per second, deliveries per second (messages
received by other participants), delivery latency p50/p99 (send → reception) and ack
latency p50/p99.

    .venv/bin/python -m loadtest.chat.bench_chat --clients 1000 --rooms 100 --rate 500
    .venv/bin/python -m loadtest.chat.bench_chat --nodes 2 \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres \\
        --redis-url redis://127.0.0.1:6379/0

One node uses the embedded SQLite database; two nodes need PostgreSQL (a fresh database is
created and dropped) and Redis (a fresh key prefix, deleted afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import socket
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

SECRET = "loadtest-secret-key-0123456789-abcdefghijkl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


# -- preparation (in the parent process) ------------------------------------------------


async def prepare(
    database_url: str, redis_url: str, prefix: str, n_clients: int, n_rooms: int
) -> tuple[list[str], list[str]]:
    """Rooms owned by the demo requester, and one session per client (cookies)."""
    from core.db import Database
    from core.events import EventBus
    from core.seed import seed_accounts
    from core.sessions import DbSessionStore, RedisSessionStore, Sessions, SessionStore
    from rooms.models import Room, RoomKind, RoomStatus

    db = Database(database_url, EventBus())
    users = await seed_accounts(db)
    owner = users["requester"]
    room_ids: list[str] = []
    async with db.write() as uow:
        for i in range(n_rooms):
            room = Room(
                kind=RoomKind.estaff,
                title=f"Salle de charge {i}",
                owner_id=owner.id,
                capacity=50,
                locked=False,
                status=RoomStatus.open,
            )
            uow.session.add(room)
            await uow.session.flush()
            room_ids.append(str(room.id))
    redis = None
    store: SessionStore
    if redis_url:
        import redis.asyncio as aioredis

        redis = aioredis.from_url(redis_url)
        store = RedisSessionStore(redis, prefix + "session:")
    else:
        store = DbSessionStore(db)
    sessions = Sessions(store, idle=timedelta(hours=2), absolute=timedelta(hours=3))
    cookies = []
    for _ in range(n_clients):
        token, _s = await sessions.create(kind="user", subject_id=owner.id, stage="full")
        cookies.append(f"consilium_session={token}")
    if redis is not None:
        await redis.aclose()
    await db.close()
    return room_ids, cookies


# -- client workers (separate processes) ------------------------------------------------


async def worker_main(
    urls: list[str],
    jobs: list[tuple[str, str]],  # (cookie, room id)
    rate: float,
    duration: float,
    ready: Any,
    go: Any,
    results: Any,
) -> None:
    import socketio

    latencies: list[float] = []
    ack_lat: list[float] = []
    counters = {"connected": 0, "joined": 0, "sent": 0, "errors": 0, "received": 0}
    clients: list[socketio.AsyncClient] = []
    measuring = {"on": False}

    def make(i: int) -> socketio.AsyncClient:
        c = socketio.AsyncClient(reconnection=False)

        @c.on("chat:message")
        async def on_message(m: dict[str, Any]) -> None:
            if not measuring["on"]:
                return
            sent_at = float(m["text"].split(" ", 1)[0])
            latencies.append(time.time() - sent_at)
            counters["received"] += 1

        return c

    sem = asyncio.Semaphore(40)

    async def connect(i: int, cookie: str, room: str) -> None:
        c = make(i)
        async with sem:
            try:
                await c.connect(
                    urls[i % len(urls)],
                    headers={"Cookie": cookie},
                    transports=["websocket"],
                    wait_timeout=30,
                )
                counters["connected"] += 1
                ack = await c.call("room:join", {"room_id": room}, timeout=30)
                if ack.get("ok"):
                    counters["joined"] += 1
                    clients.append(c)
            except Exception as e:  # report, keep going: this is a load generator
                counters["errors"] += 1
                print(f"connect failed: {e!r}", file=sys.stderr)

    await asyncio.gather(*(connect(i, ck, rm) for i, (ck, rm) in enumerate(jobs)))
    ready.set()
    while not go.is_set():
        await asyncio.sleep(0.01)
    measuring["on"] = True
    pending: set[asyncio.Task[None]] = set()

    async def send_one(c: socketio.AsyncClient) -> None:
        t0 = time.time()
        try:
            ack = await c.call(
                "chat:send", {"id": str(uuid.uuid4()), "text": f"{t0} bonjour"}, timeout=30
            )
            if ack.get("ok"):
                counters["sent"] += 1
                ack_lat.append(time.time() - t0)
            else:
                counters["errors"] += 1
        except Exception:
            counters["errors"] += 1

    start = time.monotonic()
    n = 0
    while clients and time.monotonic() - start < duration:
        n += 1
        t = asyncio.create_task(send_one(random.choice(clients)))
        pending.add(t)
        t.add_done_callback(pending.discard)
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    if pending:
        await asyncio.wait(pending, timeout=30)
    await asyncio.sleep(2)  # deliveries in flight
    measuring["on"] = False
    results.put({**counters, "latencies": latencies, "ack": ack_lat})
    await asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True)


def worker(*args: Any) -> None:
    asyncio.run(worker_main(*args))


# -- servers ------------------------------------------------------------------------------


def start_server(env: dict[str, str], port: int, log: Path) -> Any:
    import subprocess

    exe = Path(sys.executable).parent / "consilium"
    return subprocess.Popen(
        [str(exe), "serve"],
        env={**env, "CONSILIUM_PORT": str(port)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def wait_ready(url: str, proc: Any) -> None:
    import urllib.request

    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"server {url} exited")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server {url} did not start")


async def pg_admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--rooms", type=int, default=100)
    ap.add_argument("--rate", type=float, default=500, help="messages sent per second, in all")
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--nodes", type=int, choices=[1, 2], default=1)
    ap.add_argument("--workers", type=int, default=2, help="client processes")
    ap.add_argument("--database-url", default="", help="PostgreSQL admin URL (two nodes)")
    ap.add_argument("--redis-url", default="")
    args = ap.parse_args()
    if args.nodes == 2 and not (args.database_url and args.redis_url):
        ap.error("two nodes need --database-url (PostgreSQL) and --redis-url")

    from core.migrate import upgrade

    tmp = Path(tempfile.mkdtemp(prefix="bench-chat-"))
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    pg_name = ""
    if args.nodes == 2:
        pg_name = f"consilium_bench_{uuid.uuid4().hex[:8]}"
        asyncio.run(pg_admin(args.database_url, f'CREATE DATABASE "{pg_name}"'))
        database_url = f"{args.database_url.rpartition('/')[0]}/{pg_name}"
    else:
        database_url = f"sqlite+aiosqlite:///{tmp / 'consilium.db'}"
    procs: list[Any] = []
    try:
        upgrade(database_url)
        room_ids, cookies = asyncio.run(
            prepare(
                database_url,
                args.redis_url if args.nodes == 2 else "",
                prefix,
                args.clients,
                args.rooms,
            )
        )
        env = {
            **os.environ,
            "CONSILIUM_DEV": "1",
            "CONSILIUM_HOST": "127.0.0.1",
            "CONSILIUM_DATABASE_URL": database_url,
            "CONSILIUM_SECRET_KEY": SECRET,
            "CONSILIUM_DATA_DIR": str(tmp),
            "CONSILIUM_LOG_LEVEL": "WARNING",
            "CONSILIUM_REDIS_PREFIX": prefix,
        }
        if args.nodes == 2:
            env["CONSILIUM_REDIS_URL"] = args.redis_url
        urls = []
        for i in range(args.nodes):
            port = free_port()
            procs.append(start_server(env, port, tmp / f"node{i}.log"))
            urls.append(f"http://127.0.0.1:{port}")
        for url, p in zip(urls, procs, strict=True):
            wait_ready(url, p)

        jobs = [(cookies[i], room_ids[i % len(room_ids)]) for i in range(args.clients)]
        ctx = mp.get_context("spawn")
        results = ctx.Queue()
        go = ctx.Event()
        readies = []
        workers = []
        for w in range(args.workers):
            ready = ctx.Event()
            readies.append(ready)
            mine = jobs[w :: args.workers]
            # Interleave nodes per worker so every room has members on every node.
            p = ctx.Process(
                target=worker,
                args=(urls, mine, args.rate / args.workers, args.duration, ready, go, results),
            )
            p.start()
            workers.append(p)
        t0 = time.monotonic()
        for r in readies:
            r.wait(timeout=300)
        print(f"connected in {time.monotonic() - t0:.1f}s", flush=True)
        go.set()
        collected = [results.get(timeout=args.duration + 120) for _ in workers]
        for p in workers:
            p.join(timeout=30)
        lat = [x for c in collected for x in c["latencies"]]
        ack = [x for c in collected for x in c["ack"]]
        joined = sum(c["joined"] for c in collected)
        sent = sum(c["sent"] for c in collected)
        received = sum(c["received"] for c in collected)
        errors = sum(c["errors"] for c in collected)
        print(
            f"nodes={args.nodes} clients={args.clients} rooms={args.rooms} "
            f"target={args.rate:.0f} msg/s for {args.duration:.0f}s"
        )
        print(f"  connected clients (joined a room): {joined}")
        print(f"  messages stored+acked: {sent / args.duration:.0f}/s ({sent}), errors {errors}")
        print(f"  deliveries to other participants: {received / args.duration:.0f}/s ({received})")
        mean = statistics.fmean(lat) * 1000 if lat else float("nan")
        print(
            f"  delivery latency p50 {pct(lat, 0.5) * 1000:.1f} ms"
            f"  p99 {pct(lat, 0.99) * 1000:.1f} ms  (mean {mean:.1f} ms)"
        )
        print(
            f"  ack latency      p50 {pct(ack, 0.5) * 1000:.1f} ms"
            f"  p99 {pct(ack, 0.99) * 1000:.1f} ms"
        )
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except Exception:
                p.kill()
        if args.nodes == 2:
            asyncio.run(
                pg_admin(args.database_url, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            )

            async def purge() -> None:
                import redis.asyncio as aioredis

                r = aioredis.from_url(args.redis_url)
                keys = [k async for k in r.scan_iter(match=prefix + "*")]
                if keys:
                    await r.delete(*keys)
                await r.aclose()

            asyncio.run(purge())
    return 0


if __name__ == "__main__":
    sys.exit(main())
