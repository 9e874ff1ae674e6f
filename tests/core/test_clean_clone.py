"""`make run` works from a clean clone: clone the committed tree into a temporary folder,
run `make run` there (venv, install, migrate, seed, serve) and wait for /healthz.

It takes minutes (a fresh virtualenv), so it runs under CI (``.ci/run``) or with
``CONSILIUM_TEST_SLOW=1``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import IN_CI, free_port

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_make_run_serves_from_a_clean_clone(tmp_path):
    if not (IN_CI or os.environ.get("CONSILIUM_TEST_SLOW") == "1"):
        pytest.skip("slow: runs under CI=true or CONSILIUM_TEST_SLOW=1")
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)],
        check=True,
        timeout=120,
    )
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CONSILIUM_", "VIRTUAL_ENV", "PYTHONPATH", "MAKE"))
    }
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p
    )
    env["CONSILIUM_PORT"] = str(port)
    log = (tmp_path / "make-run.log").open("w")
    proc = subprocess.Popen(
        ["make", "run"],
        cwd=clone,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        healthy = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    healthy = r.status == 200
                    break
            except OSError:
                time.sleep(1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
    output = (tmp_path / "make-run.log").read_text()
    assert healthy, f"/healthz never answered; make run said:\n{output[-4000:]}"
    assert "requerant@demo.consilium.fr" in output  # the demo logins are printed
    assert (clone / "var" / "consilium.db").is_file()
