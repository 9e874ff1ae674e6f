"""Under CI=true a test that needs PostgreSQL or Redis fails instead of skipping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

TINY = """
from tests.conftest import need

def test_needs_redis():
    need("redis", "")
"""


@pytest.mark.parametrize(("ci", "outcome"), [("true", 1), ("", 0)])
def test_a_missing_service_fails_under_ci_and_skips_locally(tmp_path, ci, outcome):
    (tmp_path / "test_tiny.py").write_text(TINY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSILIUM_TEST_")}
    env["CI"] = ci
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "test_tiny.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == outcome, done.stdout + done.stderr
    if ci:
        assert "CI must run this test" in done.stdout
        assert "1 failed" in done.stdout
    else:
        assert "1 skipped" in done.stdout
