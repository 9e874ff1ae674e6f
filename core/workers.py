"""``consilium serve --workers N``: N nodes on one machine, sharing one HTTP port.

The parent process serves nothing itself. It checks the configuration once (several workers
need Redis and PostgreSQL), runs the migrations once (``--migrate``), then starts N
``consilium serve`` children. Each child is a full node (docs/rooms.md): its own node id
(``<node id>-w<i>``), heartbeat, Socket.IO server and SFU with its own slice of
``CONSILIUM_RTC_UDP_PORTS``, sharing PostgreSQL and Redis with the others. They all listen on
the same address with SO_REUSEPORT, and the kernel spreads new connections over them: no
front process copies the bytes (docs/deployment.md, "Several workers on one machine").

The parent supervises: a worker that crashes is started again (after 1 s, doubling up to
30 s while it keeps crashing at once); SIGTERM or SIGINT is forwarded to every worker, which
drains (its clients are told to reconnect, rooms/nodes.py) and exits; the parent exits when
every worker has. Worker output is copied to the parent's, each line prefixed ``[w<i>]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass

from core.config import Settings

log = logging.getLogger(__name__)

#: a worker that ran this long before crashing is started again after the first delay
STABLE_SECONDS = 30.0
FIRST_RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
#: after SIGTERM, how long the workers get to drain before they are killed (systemd's
#: TimeoutStopSec in deploy/systemd/consilium.service is above it)
STOP_TIMEOUT = 15.0
#: a worker that exits with this code met a configuration error: starting it again is useless
CONFIG_ERROR = 2


class ClusterError(Exception):
    """The configuration cannot run several workers; the message says what to set."""


def parse_workers(value: str) -> int:
    """``"auto"`` → the cores this process may run on; else a positive number."""
    if value.strip().lower() == "auto":
        return cpu_count()
    try:
        n = int(value)
    except ValueError:
        raise ClusterError(f"--workers {value!r}: expected a number or 'auto'") from None
    if not 1 <= n <= 1024:
        raise ClusterError(f"--workers {n}: expected 1 to 1024")
    return n


def cpu_count() -> int:
    """Cores available to this process (its CPU affinity, e.g. under ``taskset``)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def check(settings: Settings, count: int) -> None:
    """Refuse a configuration that several workers would break, with the setting to fix."""
    if count <= 1:
        return
    if not settings.redis_url:
        raise ClusterError(
            f"--workers {count} needs CONSILIUM_REDIS_URL: the workers share sessions, "
            "presence, the live fan-out and the node bus through Redis "
            "(docs/deployment.md, 'Several workers on one machine')"
        )
    if settings.is_sqlite:
        raise ClusterError(
            f"--workers {count} needs PostgreSQL (CONSILIUM_DATABASE_URL=postgresql+asyncpg://…): "
            "work done once per cluster (retention, reminders) is locked in PostgreSQL"
        )
    if settings.worker_port_base and settings.worker_port_base + count > 65535:
        raise ClusterError(f"CONSILIUM_WORKER_PORT_BASE + {count} is above 65535")
    ports = settings.udp_ports
    if ports is not None and ports[1] - ports[0] + 1 < count:
        raise ClusterError(
            f"CONSILIUM_RTC_UDP_PORTS={settings.rtc_udp_ports} has fewer ports than workers"
        )


def udp_slice(ports: tuple[int, int] | None, count: int, index: int) -> str:
    """Worker ``index`` (1-based)'s part of the SFU's UDP range, as a setting value; the
    slices do not overlap, so two workers never race for a port."""
    if ports is None:
        return ""
    low, high = ports
    size = (high - low + 1) // count
    start = low + (index - 1) * size
    end = high if index == count else start + size - 1
    return f"{start}-{end}"


def check_port(host: str, port: int) -> None:
    """Fail now, with one line, if the port is taken by something that does not share it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise ClusterError(f"cannot listen on {host}:{port}: {e.strerror}") from None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the worker gets SIGTERM (and drains) if the parent dies without a word."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Worker:
    index: int
    env: dict[str, str]
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0


class Supervisor:
    """Starts the workers, copies their output, restarts the crashed, stops them all."""

    def __init__(self, settings: Settings, count: int, *, argv: list[str] | None = None) -> None:
        self.settings = settings
        self.count = count
        self.argv = argv or [sys.executable, "-m", "core.cli", "serve"]
        self.stopping = asyncio.Event()
        self.exit_code = 0
        base = dict(os.environ)
        base.pop("CONSILIUM_WORKER_INDEX", None)
        self.workers = [
            Worker(
                i,
                {
                    **base,
                    "CONSILIUM_WORKER_INDEX": str(i),
                    "CONSILIUM_WORKER_COUNT": str(count),
                    "CONSILIUM_NODE_ID": f"{settings.node_id}-w{i}",
                    "CONSILIUM_HOST": settings.host,
                    "CONSILIUM_PORT": str(settings.port),
                    "CONSILIUM_RTC_UDP_PORTS": udp_slice(settings.udp_ports, count, i),
                    "PYTHONUNBUFFERED": "1",
                },
            )
            for i in range(1, count + 1)
        ]

    def say(self, line: str) -> None:
        sys.stdout.write(f"[workers] {line}\n")
        sys.stdout.flush()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        keepers = [asyncio.create_task(self.keep(w)) for w in self.workers]
        self.say(
            f"{self.count} workers on {self.settings.host}:{self.settings.port} "
            f"(parent pid {os.getpid()})"
        )
        await asyncio.gather(*keepers)
        self.say(f"all workers stopped (exit {self.exit_code})")
        return self.exit_code

    def stop(self) -> None:
        """Forward SIGTERM to every worker (each drains, then exits)."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.say("stopping: SIGTERM to every worker")
        for w in self.workers:
            if w.proc is not None and w.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.send_signal(signal.SIGTERM)
        asyncio.get_running_loop().call_later(STOP_TIMEOUT, self.kill_all)

    def kill_all(self) -> None:
        for w in self.workers:
            if w.proc is not None and w.proc.returncode is None:
                self.say(f"worker {w.index} did not stop within {STOP_TIMEOUT:.0f} s: killed")
                with contextlib.suppress(ProcessLookupError):
                    w.proc.kill()

    async def keep(self, w: Worker) -> None:
        """Run worker ``w`` until the supervisor stops, starting it again when it crashes."""
        delay = FIRST_RESTART_DELAY
        while not self.stopping.is_set():
            started = time.monotonic()
            w.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                env=w.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                limit=1 << 20,
            )
            w.starts += 1
            self.say(f"worker {w.index} started (pid {w.proc.pid})")
            if self.stopping.is_set():  # SIGTERM came while it was being started
                w.proc.send_signal(signal.SIGTERM)
            pump = asyncio.create_task(self.pump(w, w.proc))
            code = await w.proc.wait()
            await pump
            if self.stopping.is_set():
                self.say(f"worker {w.index} stopped (exit {code})")
                return
            if code in (0, -signal.SIGTERM, -signal.SIGINT):
                # Stopped from outside (someone signalled this worker alone): not a crash.
                self.say(f"worker {w.index} stopped (exit {code}); not started again")
                return
            if code == CONFIG_ERROR:
                self.say(f"worker {w.index} refused its configuration: stopping every worker")
                self.exit_code = CONFIG_ERROR
                self.stop()
                return
            delay = FIRST_RESTART_DELAY if time.monotonic() - started > STABLE_SECONDS else delay
            self.say(f"worker {w.index} crashed (exit {code}); starting it again in {delay:.0f} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            delay = min(delay * 2, MAX_RESTART_DELAY)

    async def pump(self, w: Worker, proc: asyncio.subprocess.Process) -> None:
        """Copy the worker's output, each line prefixed with its number (console format;
        JSON lines carry a ``worker`` field instead and pass unchanged)."""
        assert proc.stdout is not None
        prefix = b"" if self.settings.log_format == "json" else f"[w{w.index}] ".encode()
        out = sys.stdout.buffer
        while True:
            try:
                line = await proc.stdout.readline()
            except ValueError:  # a line over the limit: pass what was read
                line = await proc.stdout.read(1 << 20)
            if not line:
                return
            out.write(prefix + line if line.endswith(b"\n") else prefix + line + b"\n")
            out.flush()


def serve_workers(settings: Settings, count: int) -> int:
    """Check, then supervise ``count`` workers until they all exit; the exit code."""
    check(settings, count)
    check_port(settings.host, settings.port)
    if settings.worker_port_base:
        for i in range(1, count + 1):
            check_port(settings.host, settings.worker_port_base + i)
    return asyncio.run(Supervisor(settings, count).run())
