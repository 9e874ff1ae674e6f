"""Consilium ships only dependencies whose licences fit its AGPL-3.0-or-later, and
docs/licences.md lists them truly (tools/licences.py builds and checks both)."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from tools import licences
from tools.licences import Dependency

ROOT = Path(__file__).resolve().parent.parent


def test_consilium_is_published_under_the_agpl_3_or_later():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "AGPL-3.0-or-later"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("GNU AFFERO GENERAL PUBLIC LICENSE\n")
    assert "Version 3, 19 November 2007" in text
    assert metadata.metadata("consilium")["License-Expression"] == "AGPL-3.0-or-later"


def test_runtime_dependencies_have_licences_compatible_with_the_agpl():
    deps, errors = licences.collect()
    assert any(d.runtime and d.ecosystem == "npm" for d in deps)
    assert not errors + licences.problems(deps)


def test_licence_page_lists_every_runtime_dependency_with_its_licence():
    deps, _ = licences.collect()
    page = licences.DOC.read_text(encoding="utf-8")
    assert not licences.stale(page, licences.render(deps)), (
        "docs/licences.md is stale: run `.venv/bin/python tools/licences.py --write`"
    )


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("MIT", "ok"),
        ("Apache-2.0 AND MIT", "ok"),
        ("(Apache-2.0 OR BSD-3-Clause) AND MIT", "ok"),
        ("GPL-2.0+", "ok"),
        ("GPL-2.0-or-later WITH Classpath-exception-2.0", "ok"),
        ("AGPL-3.0-only OR LicenseRef-Artifex-Commercial", "ok"),
        ("GPL-2.0-only", "denied"),
        ("MIT AND SSPL-1.0", "denied"),
        ("LicenseRef-Proprietary", "denied"),
        ("GPL-2.0-only OR MIT", "ok"),
        ("MIT AND Some-Licence", "unknown"),
        ("Some-Licence OR GPL-2.0-only", "unknown"),
        ("Dual Licensed - GNU AFFERO GPL 3.0", "unknown"),
        ("MIT AND (Apache-2.0", "unknown"),
    ],
)
def test_verdict_reads_spdx_expressions(expression, expected):
    assert licences.verdict(expression) == expected


def _dep(name: str, licence: str, *, runtime: bool = True, version: str = "1.0") -> Dependency:
    return Dependency("PyPI", name, version, licence, "License-Expression", runtime)


def test_check_names_runtime_dependencies_with_refused_or_unknown_licences():
    found = licences.problems(
        [
            _dep("fine", "MIT"),
            _dep("closed", "LicenseRef-Proprietary"),
            _dep("mystery", "Freely Distributable"),
            _dep("dev-only-tool", "GPL-2.0-only", runtime=False),
        ]
    )
    assert len(found) == 2
    assert found[0].startswith("closed 1.0:")
    assert found[1].startswith("mystery 1.0:") and "REVIEWED" in found[1]


def test_page_is_stale_when_a_licence_changes_but_not_when_a_version_does():
    deps = [_dep("alpha", "MIT"), _dep("beta", "BSD-3-Clause"), _dep("tool", "MIT", runtime=False)]
    page = licences.render(deps)
    assert licences.stale(page, licences.render(deps)) == []
    newer = [_dep("alpha", "MIT", version="2.0"), *deps[1:]]
    assert licences.stale(page, licences.render(newer)) == []
    other_tool = [*deps[:2], _dep("tool", "GPL-2.0-only", runtime=False)]
    assert licences.stale(page, licences.render(other_tool)) == []
    relicensed = [deps[0], _dep("beta", "SSPL-1.0"), deps[2]]
    assert licences.stale(page, licences.render(relicensed)) == [
        "missing or changed: beta: SSPL-1.0",
        "no longer true: beta: BSD-3-Clause",
    ]
    added = [*deps, _dep("gamma", "ISC")]
    assert licences.stale(page, licences.render(added)) == ["missing or changed: gamma: ISC"]


def _installed(tmp_path: Path, name: str, version: str, *headers: str) -> metadata.Distribution:
    info = tmp_path / f"{name}-{version}.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.4", f"Name: {name}", f"Version: {version}", *headers, ""]
    (info / "METADATA").write_text("\n".join(lines), encoding="utf-8")
    return metadata.PathDistribution(info)


def test_licence_is_read_from_expression_then_licence_field_then_classifiers(tmp_path):
    expr = _installed(
        tmp_path, "expr", "1", "License-Expression: MIT", "Classifier: License :: Other"
    )
    assert licences.python_licence(expr) == ("MIT", "License-Expression")
    field = _installed(tmp_path, "field", "1", "License: Apache 2.0")
    assert licences.python_licence(field) == ("Apache-2.0", "License")
    dual = _installed(
        tmp_path,
        "dual",
        "1",
        "Classifier: License :: OSI Approved :: MIT License",
        "Classifier: License :: OSI Approved :: Apache Software License",
    )
    assert licences.python_licence(dual) == ("Apache-2.0 OR MIT", "classifiers")
    vague = _installed(tmp_path, "vague", "1", "Classifier: License :: OSI Approved :: BSD License")
    assert licences.python_licence(vague) == ("BSD License", "classifiers")
    assert licences.verdict("BSD License") == "unknown"


def test_reviewed_decision_holds_only_for_the_releases_it_was_made_on(tmp_path):
    placeholder = _installed(tmp_path, "pymupdf_layout", "2.0")
    assert licences.python_licence(placeholder) == ("AGPL-3.0-or-later", "reviewed")
    older = tmp_path / "old"
    older.mkdir()
    real = _installed(older, "pymupdf_layout", "1.0", "License: PolyForm Noncommercial")
    licence, source = licences.python_licence(real)
    assert source == "License" and licences.verdict(licence) == "unknown"


def test_every_shipped_data_file_names_its_sources_and_licence():
    from tools.licences import SHIPPED_DATA

    data_dir = ROOT / "dossier" / "data"
    files = {str(p.relative_to(ROOT)) for p in data_dir.iterdir() if p.is_file()}
    assert files == {d.path for d in SHIPPED_DATA}
    page = (ROOT / "docs" / "licences.md").read_text(encoding="utf-8")
    for d in SHIPPED_DATA:
        assert f"`{d.path}`" in page and d.licence in page
