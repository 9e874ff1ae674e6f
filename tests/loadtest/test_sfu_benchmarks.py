"""Smoke tests of the SFU benchmarks against the real `consilium serve`: each runs for a few
seconds with one or two rooms and prints its figures. No figure is asserted (the machine's
load decides them), only that the benchmark went through the product's protocol end to end
and printed a row with media received."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.media, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


async def run(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSILIUM_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 900)  # generous: a busy machine
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    return text


async def test_estaff_benchmark_prints_figures_of_the_real_server() -> None:
    out = await run(
        "loadtest.sfu.bench_sfu",
        "--participants",
        "2",
        "--relay-participants",
        "",
        "--seconds",
        "3",
    )
    assert "server: consilium serve" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:2] == ["sfu", "2"]]
    assert rows, out
    header = next(line.split() for line in out.splitlines() if line.startswith("mode"))
    row = rows[-1]
    assert row[header.index("receiving")] == "4", out  # both got the other's video and audio
    assert float(row[header.index("pkts/s")]) > 0, out
    assert re.search(r"\d", row[header.index("us/pkt")]), out


async def test_call_load_benchmark_prints_figures_of_the_real_server() -> None:
    out = await run(
        "loadtest.sfu.bench_calls",
        "--calls",
        "1,2",
        "--seconds",
        "3",
        "--all-steps",  # figures, not a verdict: a loaded machine may lose packets
        "--server-cpus",
        "",
        "--client-cpus",
        "",
    )
    lines = [line.split() for line in out.splitlines()]
    steps = [parts for parts in lines if parts and parts[0] in ("1", "2") and len(parts) >= 10]
    assert [s[0] for s in steps] == ["1", "2"], out
    assert all(int(s[3]) > 0 for s in steps), out  # forwarded packets per second
    assert "held under 1 % loss:" in out, out
