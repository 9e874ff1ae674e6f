"""Private Redis and PostgreSQL servers for the fault tests, which kill and restart them: each
on a port of its own, in a temporary directory, never the services the other tests share."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import free_port


def _which_or_skip(name: str, *candidates: str) -> str:
    for c in (shutil.which(name), *candidates):
        if c and os.path.exists(c):
            return c
    pytest.skip(f"{name} is not installed")


class RedisServer:
    """``redis-server`` without persistence: a restart loses everything, as a crash would."""

    def __init__(self, workdir: Path) -> None:
        self.exe = _which_or_skip("redis-server")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        log = (self.workdir / f"redis-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            [
                self.exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        import redis.asyncio as aioredis

        client = aioredis.from_url(self.url)
        try:
            for _ in range(300):
                try:
                    await client.ping()
                    return
                except Exception:
                    assert self.proc is not None and self.proc.poll() is None, "redis died"
                    await asyncio.sleep(0.05)
            raise AssertionError("redis-server did not start")
        finally:
            await client.aclose()

    async def kill(self) -> None:
        """``kill -9``: no goodbye to the clients."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(self.proc.wait)

    async def stop(self) -> None:
        await self.kill()


class PostgresServer:
    """A PostgreSQL cluster made by ``initdb`` in a temporary directory, run by ``pg_ctl``
    (as the ``postgres`` system user when the tests run as root: PostgreSQL refuses root)."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not bins:
            pytest.skip("PostgreSQL server binaries are not installed")
        self.bin = Path(bins[-1]).parent
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="consilium-pg-"))
        self.data = self.dir / "data"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/consilium"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, cwd=self.dir)

    async def init(self) -> None:
        await asyncio.to_thread(
            self._run,
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
        )
        await self.start()
        await asyncio.to_thread(
            self._run,
            str(self.bin / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "consilium",
        )

    async def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        await asyncio.to_thread(
            self._run,
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.dir / "server.log"),
            "-w",
            "start",
        )

    async def stop(self, mode: str = "fast") -> None:
        """``fast``: connections are cut, transactions rolled back; ``immediate``: a crash."""
        await asyncio.to_thread(
            self._run, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"
        )

    async def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # not running
            await self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
