"""deploy/systemd: the units pass ``systemd-analyze verify`` (syntax, known directives,
dependencies between them), with the shipped paths pointed at this checkout's ``consilium``
command. Skipped where systemd's tools are not installed (containers without systemd)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import DEPLOY

SHIPPED_EXE = "/opt/consilium/.venv/bin/consilium"


def test_units_verify(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    exe = Path(sys.executable).parent / "consilium"
    units = []
    for unit in sorted((DEPLOY / "systemd").iterdir()):
        if unit.suffix not in (".service", ".target"):
            continue
        text = unit.read_text()
        if "ExecStart=" in text:
            assert SHIPPED_EXE in text, unit.name
        name = unit.name.replace("@.service", "@8081.service")
        (tmp_path / name).write_text(text.replace(SHIPPED_EXE, str(exe)))
        units.append(str(tmp_path / name))
    assert len(units) == 4, units
    done = subprocess.run(
        [tool, "verify", *units], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    # verify prints one line per problem; "not found" lines about services of other
    # packages (postgresql, redis) are not ours
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip() and "postgresql.service" not in line and "redis-server" not in line
    ]
    assert not problems, "\n".join(problems)
