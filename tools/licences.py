"""List the licence of every dependency and check that what Consilium ships is AGPL-compatible.

Consilium is published under the AGPL-3.0-or-later. Whoever runs it for others installs its
Python runtime dependencies (and their own) and serves the npm libraries vendored into
``ui/static/vendor``; each of those must be under a licence that can be combined with the
AGPL-3.0. Development and test tools are listed for information only: they are not
distributed with Consilium.

Run from the repository root, in the project's virtualenv (``make install ui-assets``)::

    .venv/bin/python tools/licences.py --write   # regenerate docs/licences.md
    .venv/bin/python tools/licences.py --check   # fail on a licence problem or a stale page

``tests/test_licences.py`` runs the same check under ``make test``. When it fails:

- a licence on the deny list: replace the dependency (or do not ship it);
- an unknown licence: read the package's licence, then either teach ``LICENCE_NAMES`` its
  spelling (metadata that names a known licence) or add a row to ``REVIEWED``, saying why;
- a stale page: run ``--write`` and commit docs/licences.md.

The staleness check compares the (package, licence) pairs of runtime dependencies only, not
versions nor development tools: another day or another machine may resolve newer releases.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "licences.md"
LOCK = ROOT / "ui" / "package-lock.json"
NODE_MODULES = ROOT / "ui" / "node_modules"
PROJECT = "consilium"
DEV_EXTRAS = ("test", "dev")

# SPDX identifiers whose code can be part of a work distributed under the AGPL-3.0-or-later
# (the FSF's list of GPLv3-compatible licences; GPLv3 and AGPLv3 may be combined, section 13).
ALLOWED: dict[str, str] = {
    "0BSD": "permissive",
    "AGPL-3.0-only": "the same licence (the combined work is then AGPL-3.0)",
    "AGPL-3.0-or-later": "the same licence",
    "Apache-2.0": "permissive, compatible with (A)GPL version 3",
    "Artistic-2.0": "permissive",
    "BlueOak-1.0.0": "permissive (Blue Oak Model License, OSI-approved)",
    "BSD-2-Clause": "permissive",
    "BSD-3-Clause": "permissive",
    "BSL-1.0": "permissive",
    "CC0-1.0": "public domain dedication",
    "GPL-2.0-or-later": "copyleft, usable as version 3",
    "GPL-3.0-only": "copyleft, combinable with the AGPL-3.0 (section 13)",
    "GPL-3.0-or-later": "copyleft, combinable with the AGPL-3.0 (section 13)",
    "HPND": "permissive",
    "ISC": "permissive",
    "LGPL-2.1-only": "weak copyleft",
    "LGPL-2.1-or-later": "weak copyleft",
    "LGPL-3.0-only": "weak copyleft",
    "LGPL-3.0-or-later": "weak copyleft",
    "MIT": "permissive",
    "MIT-0": "permissive",
    "MIT-CMU": "permissive",
    "MPL-2.0": "weak copyleft, compatible with (A)GPL (section 3.3)",
    "PSF-2.0": "permissive",
    "Python-2.0": "permissive",
    "Unlicense": "public domain dedication",
    "X11": "permissive",
    "Zlib": "permissive",
}

# Licences whose code must not be shipped with Consilium, and why.
DENIED: dict[str, str] = {
    "AFL-3.0": "incompatible with the GPL family",
    "Apache-1.1": "incompatible with the GPL family",
    "Artistic-1.0": "incompatible with the GPL family",
    "BSD-4-Clause": "advertising clause, incompatible with the GPL family",
    "BUSL-1.1": "not free software (source-available)",
    "CC-BY-NC-4.0": "non-commercial: not free software",
    "CC-BY-NC-SA-4.0": "non-commercial: not free software",
    "CC-BY-ND-4.0": "no derivatives: not free software",
    "CDDL-1.0": "incompatible with the GPL family",
    "CDDL-1.1": "incompatible with the GPL family",
    "CPL-1.0": "incompatible with the GPL family",
    "Elastic-2.0": "not free software (source-available)",
    "EPL-1.0": "incompatible with the GPL family",
    "EPL-2.0": "incompatible with the GPL family without its secondary-licence clause",
    "GPL-1.0-only": "cannot be combined with version 3",
    "GPL-2.0-only": "cannot be combined with version 3",
    "JSON": "'for Good, not Evil': not free software",
    "LicenseRef-Artifex-Commercial": "proprietary",
    "LicenseRef-Commons-Clause": "not free software",
    "LicenseRef-Proprietary": "proprietary",
    "MS-PL": "incompatible with the GPL family",
    "MS-RL": "incompatible with the GPL family",
    "OpenSSL": "advertising clause, incompatible with the GPL family",
    "PolyForm-Noncommercial-1.0.0": "non-commercial: not free software",
    "PolyForm-Small-Business-1.0.0": "not free software",
    "SSPL-1.0": "not free software per the FSF and OSI; conditions beyond the AGPL",
}

# How package metadata spells licences (License field, trove classifiers) -> SPDX expression.
# Keys are lower case. A spelling not here is "unknown" and fails the check for runtime
# dependencies. "BSD License" is deliberately absent: it does not say which BSD.
LICENCE_NAMES: dict[str, str] = {
    "3-clause bsd license": "BSD-3-Clause",
    "apache 2.0": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache license, version 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "bsd 3-clause": "BSD-3-Clause",
    "gnu affero general public license v3": "AGPL-3.0-only",
    "gnu affero general public license v3 or later (agplv3+)": "AGPL-3.0-or-later",
    "gnu general public license v2 (gplv2)": "GPL-2.0-only",
    "gnu general public license v2 or later (gplv2+)": "GPL-2.0-or-later",
    "gnu general public license v3 (gplv3)": "GPL-3.0-only",
    "gnu general public license v3 or later (gplv3+)": "GPL-3.0-or-later",
    "gnu lesser general public license v2 or later (lgplv2+)": "LGPL-2.1-or-later",
    "gnu lesser general public license v3 (lgplv3)": "LGPL-3.0-only",
    "gnu lesser general public license v3 or later (lgplv3+)": "LGPL-3.0-or-later",
    "historical permission notice and disclaimer (hpnd)": "HPND",
    "isc license (iscl)": "ISC",
    "mit license": "MIT",
    "mit-cmu": "MIT-CMU",
    "mozilla public license 2.0 (mpl 2.0)": "MPL-2.0",
    "new bsd license": "BSD-3-Clause",
    "other/proprietary license": "LicenseRef-Proprietary",
    "python software foundation license": "PSF-2.0",
    "server side public license (sspl)": "SSPL-1.0",
    "the unlicense (unlicense)": "Unlicense",
    "zlib/libpng license": "Zlib",
}


@dataclass(frozen=True)
class Reviewed:
    """A licence decided by a person, for packages whose metadata is missing or unclear."""

    licence: str
    versions: str  # the releases the decision was made on (a PEP 440 specifier)
    why: str


# Keys are canonical package names ("npm:" prefix for npm packages). A release outside
# `versions` falls back to its metadata, so a later relicensing is noticed.
REVIEWED: dict[str, Reviewed] = {
    "fhir-core": Reviewed(
        "BSD-3-Clause",
        ">=1,<2",
        "'BSD license' and classifier 'BSD License' only; the base library of fhir.resources by "
        "the same author (nazrulworld), published under the same 3-clause BSD terms.",
    ),
    "fhir-resources": Reviewed(
        "BSD-3-Clause",
        ">=8,<9",
        "'BSD license' and classifier 'BSD License' only; its LICENSE file is the 3-clause BSD "
        "text (Copyright (c) 2019, Md Nazrul Islam).",
    ),
    "npm:combine-errors": Reviewed(
        "MIT",
        "==3.0.3",
        "a dependency of tus-js-client with no licence field in its package.json; its "
        "Readme.md ends with '## License  MIT'.",
    ),
    "pymupdf": Reviewed(
        "AGPL-3.0-or-later OR LicenseRef-Artifex-Commercial",
        ">=1.24,<3",
        "License field 'Dual Licensed - GNU AFFERO GPL 3.0 or Artifex Commercial License'; "
        "its source files say 'either version 3 of the License, or (at your option) any later "
        "version'. Consilium uses it under the AGPL.",
    ),
    "pymupdf-layout": Reviewed(
        "AGPL-3.0-or-later",
        "==2.*",
        "an empty transitional package required by pymupdf 2.x (its METADATA says so; the "
        "layout code is inside pymupdf). Releases 1.x held code: not covered here.",
    ),
    "pymupdf4llm": Reviewed(
        "AGPL-3.0-or-later",
        "==2.*",
        "an empty transitional package required by pymupdf 2.x (its METADATA says so; the "
        "4llm code is inside pymupdf). Releases 1.x held code: not covered here.",
    ),
    "segno": Reviewed(
        "BSD-3-Clause",
        ">=1.6,<2",
        "classifier 'BSD License' only; its LICENSE file is the 3-clause BSD text.",
    ),
}


@dataclass(frozen=True)
class Dependency:
    ecosystem: str  # "PyPI" or "npm"
    name: str
    version: str
    licence: str  # an SPDX expression, or the raw metadata text when unknown
    source: str  # where the licence was read
    runtime: bool

    @property
    def key(self) -> str:
        return f"npm:{self.name}" if self.ecosystem == "npm" else canonicalize_name(self.name)


# --- SPDX expressions -------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z0-9.+:-]+)")


def _tokens(expression: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    text = expression.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ValueError(f"not an SPDX expression: {expression!r}")
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


def verdict(expression: str) -> str:
    """'ok', 'denied' or 'unknown' for an SPDX expression, read against ALLOWED and DENIED.

    ``A OR B`` is fine when either is (we choose it); ``A AND B`` needs both; an exception
    (``A WITH X``) only adds permissions, so it is judged by ``A``.
    """
    try:
        tokens = _tokens(expression)
    except ValueError:
        return "unknown"
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise ValueError("unexpected end")
        pos += 1
        return tokens[pos - 1]

    def term() -> str:
        word = take()
        if word == "(":
            result = either()
            if take() != ")":
                raise ValueError("missing )")
        elif word in (")", "AND", "OR", "WITH"):
            raise ValueError(f"unexpected {word}")
        else:
            licence = word[:-1] + "-or-later" if word.endswith("+") else word
            licence = {"GPL-3.0": "GPL-3.0-only", "LGPL-2.1": "LGPL-2.1-only"}.get(licence, licence)
            if licence in ALLOWED:
                result = "ok"
            elif licence in DENIED:
                result = "denied"
            else:
                result = "unknown"
        if peek() == "WITH":
            take()
            take()
        return result

    def both() -> str:
        results = [term()]
        while peek() == "AND":
            take()
            results.append(term())
        if "denied" in results:
            return "denied"
        return "unknown" if "unknown" in results else "ok"

    def either() -> str:
        results = [both()]
        while peek() == "OR":
            take()
            results.append(both())
        if "ok" in results:
            return "ok"
        return "unknown" if "unknown" in results else "denied"

    try:
        result = either()
        if pos != len(tokens):
            return "unknown"
    except ValueError:
        return "unknown"
    return result


def _known(expression: str) -> bool:
    """Whether every identifier in the expression is one this script has a verdict on."""
    try:
        tokens = _tokens(expression)
    except ValueError:
        return False
    for i, token in enumerate(tokens):
        if token in ("(", ")", "AND", "OR", "WITH") or (i and tokens[i - 1] == "WITH"):
            continue
        base = token[:-1] + "-or-later" if token.endswith("+") else token
        if base not in ALLOWED and base not in DENIED:
            return False
    return True


def _spdx(text: str) -> str | None:
    """The SPDX expression a free-text licence name stands for, if this script knows it."""
    text = " ".join(text.split())
    if not text:
        return None
    if text.lower() in LICENCE_NAMES:
        return LICENCE_NAMES[text.lower()]
    return text if _known(text) else None


# --- Python packages --------------------------------------------------------------------


def _reviewed(key: str, version: str) -> Reviewed | None:
    reviewed = REVIEWED.get(key)
    if reviewed and SpecifierSet(reviewed.versions).contains(version, prereleases=True):
        return reviewed
    return None


def python_licence(dist: metadata.Distribution) -> tuple[str, str]:
    """(licence, source) from a distribution's metadata: reviewed table, License-Expression,
    License field, then trove classifiers."""
    meta = dist.metadata.json  # field names lower case, "-" as "_"; lists for repeated ones
    reviewed = _reviewed(canonicalize_name(str(meta["name"])), str(meta["version"]))
    if reviewed:
        return reviewed.licence, "reviewed"
    expression = str(meta.get("license_expression") or "")
    if expression:
        return " ".join(expression.split()), "License-Expression"
    field = str(meta.get("license") or "").strip()
    if field and "\n" not in field:
        spdx = _spdx(field)
        if spdx:
            return spdx, "License"
    classifiers = [
        c.split(" :: ")[-1]
        for c in meta.get("classifier") or []
        if c.startswith("License :: ") and c != "License :: OSI Approved"
    ]
    if classifiers:
        names = [_spdx(c) for c in classifiers]
        if all(names):
            unique = sorted(set(filter(None, names)))
            # Several licence classifiers mean a choice (packaging, structlog, …).
            joined = " OR ".join(f"({n})" if " " in n else n for n in unique)
            return joined, "classifiers"
        return "; ".join(classifiers), "classifiers"
    if field:
        first = field.splitlines()[0].strip()
        return first[:80], "License"
    return "(none declared)", "none"


def _requirements(dist: metadata.Distribution, extras: Iterable[str]) -> Iterator[Requirement]:
    wanted = set(extras) | {""}
    for line in dist.requires or []:
        req = Requirement(line)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in wanted):
            yield req


def _closure(roots: Iterable[Requirement]) -> tuple[dict[str, metadata.Distribution], set[str]]:
    """Installed distributions reachable from `roots` (with their extras), and the names of
    requirements that are not installed."""
    found: dict[str, metadata.Distribution] = {}
    missing: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = list(roots)
    while todo:
        req = todo.pop()
        key = canonicalize_name(req.name)
        state = (key, frozenset(req.extras))
        if state in seen:
            continue
        seen.add(state)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            missing.add(key)
            continue
        if key != PROJECT:
            found[key] = dist
        todo.extend(_requirements(dist, req.extras))
    return found, missing


def python_dependencies() -> tuple[list[Dependency], list[str]]:
    """Runtime and development dependencies of the installed project, and errors."""
    errors: list[str] = []
    runtime, missing = _closure([Requirement(PROJECT)])
    if missing:
        errors.append(
            "runtime dependencies not installed (run `make install`): " + ", ".join(sorted(missing))
        )
    everything, dev_missing = _closure([Requirement(f"{PROJECT}[{','.join(DEV_EXTRAS)}]")])
    deps: list[Dependency] = []
    for key, dist in everything.items():
        licence, source = python_licence(dist)
        deps.append(
            Dependency("PyPI", dist.metadata["Name"], dist.version, licence, source, key in runtime)
        )
    for key in sorted(dev_missing - missing):
        deps.append(Dependency("PyPI", key, "not installed", "?", "none", False))
    return deps, errors


# --- npm packages -----------------------------------------------------------------------


def _npm_licence(entry: dict[str, object]) -> str | None:
    licence = entry.get("license")
    if isinstance(licence, str):
        return licence
    if isinstance(licence, dict) and isinstance(licence.get("type"), str):
        return str(licence["type"])
    licences = entry.get("licenses")
    if isinstance(licences, list):
        types = [str(x.get("type")) for x in licences if isinstance(x, dict)]
        return " OR ".join(types) if types else None
    return None


def npm_dependencies() -> tuple[list[Dependency], list[str]]:
    """The packages of ui/package-lock.json; a licence missing from the lock is read from
    the package's own package.json in ui/node_modules."""
    errors: list[str] = []
    lock = json.loads(LOCK.read_text(encoding="utf-8"))
    deps: list[Dependency] = []
    for path, entry in sorted(lock.get("packages", {}).items()):
        if not path:
            continue
        name = path.rsplit("node_modules/", 1)[-1]
        licence = _npm_licence(entry)
        source = "package-lock.json"
        if licence is None:
            manifest = ROOT / "ui" / path / "package.json"
            if manifest.is_file():
                licence = _npm_licence(json.loads(manifest.read_text(encoding="utf-8")))
                source = "package.json"
        runtime = not entry.get("dev", False)
        reviewed = REVIEWED.get(f"npm:{name}")
        if reviewed and SpecifierSet(reviewed.versions).contains(entry.get("version", "0")):
            licence, source = reviewed.licence, "reviewed"
        if licence is None:
            if runtime:
                errors.append(f"npm:{name}: no licence in the lock; run `make ui-assets`")
            licence, source = "(none declared)", "none"
        deps.append(
            Dependency("npm", name, str(entry.get("version", "?")), licence, source, runtime)
        )
    return deps, errors


# --- check and page ---------------------------------------------------------------------


def problems(deps: Iterable[Dependency]) -> list[str]:
    """One line per runtime dependency whose licence is denied or unknown."""
    out: list[str] = []
    for dep in deps:
        if not dep.runtime:
            continue
        result = verdict(dep.licence)
        if result == "denied":
            out.append(f"{dep.key} {dep.version}: {dep.licence} cannot be shipped with the AGPL")
        elif result == "unknown":
            out.append(
                f"{dep.key} {dep.version}: licence {dep.licence!r} ({dep.source}) is unknown: "
                "decide, then add it to LICENCE_NAMES or REVIEWED in tools/licences.py"
            )
    return out


def _table(deps: list[Dependency]) -> list[str]:
    lines = ["| Package | Version | Licence | Read from |", "| --- | --- | --- | --- |"]
    for dep in sorted(deps, key=lambda d: (d.ecosystem, d.key)):
        licence = dep.licence.replace("|", "\\|")
        lines.append(f"| {dep.key} | {dep.version} | {licence} | {dep.source} |")
    return lines


RUNTIME_PYTHON = "## Python packages installed with Consilium"
RUNTIME_NPM = "## Browser libraries served from ui/static/vendor (npm)"
DEV = "## Development and test tools (not distributed)"


@dataclass(frozen=True)
class ShippedData:
    path: str
    what: str
    sources: str
    licence: str


# Data files in the repository that come from elsewhere (not packages): each with where it
# comes from and under which licence. tests/test_licences.py checks that every file under
# dossier/data is listed here.
SHIPPED_DATA: tuple[ShippedData, ...] = (
    ShippedData(
        "dossier/data/communes.csv.gz",
        "every INSEE code of the Code officiel géographique (communes, municipal arrondissements,"
        " delegated and associated communes, former codes) with postcodes and coordinates;"
        " built by `tools/build_communes.py`",
        "INSEE codes, names and La Poste postcodes from the npm package"
        " `@etalab/decoupage-administratif` 6.0.0 (code MIT, data Licence Ouverte 2.0 /"
        " Etalab); coordinates (La Poste `laposte_hexasmal`, `coordonnees_gps`, Licence"
        " Ouverte) as compiled in github.com/Coercive/FranceCities 2022 (MIT)",
        "Licence Ouverte 2.0 (Etalab), compatible with CC-BY 2.0 and ODC-BY; MIT for the"
        " compilations. Attribution: INSEE, La Poste, Etalab.",
    ),
)


def render(deps: list[Dependency]) -> str:
    py = [d for d in deps if d.ecosystem == "PyPI" and d.runtime]
    npm = [d for d in deps if d.ecosystem == "npm" and d.runtime]
    dev = [d for d in deps if not d.runtime]
    lines = [
        "# Licences",
        "",
        "Consilium is free software: you can redistribute it and/or modify it under the terms",
        "of the GNU Affero General Public License as published by the Free Software Foundation,",
        "either version 3 of the License, or (at your option) any later version",
        "(`AGPL-3.0-or-later`, full text in [LICENSE](../LICENSE)). A hospital that runs it for",
        "its users must offer them its source, changes included (section 13).",
        "",
        "Below, the licence of every dependency. This page is generated by",
        "`.venv/bin/python tools/licences.py --write` from the installed packages' metadata and",
        "`ui/package-lock.json`; do not edit it by hand. `tests/test_licences.py` fails when a",
        "runtime dependency's licence is not known to be compatible with the AGPL-3.0, or when",
        "this page no longer lists the runtime dependencies and their licences (versions may",
        "differ from one installation to another and are given for information).",
        "",
        '"Read from" says where the licence comes from: the package\'s `License-Expression`,',
        "`License` field or trove classifiers, the npm lock or manifest, or `reviewed` (a",
        "decision recorded in `REVIEWED` in tools/licences.py, listed at the end).",
        "",
        RUNTIME_PYTHON,
        "",
        "`pip install consilium` installs these (dependencies of dependencies included), named",
        "as PyPI normalises them.",
        "",
        *_table(py),
        "",
        RUNTIME_NPM,
        "",
        "Copied from `ui/node_modules` by `ui/scripts/vendor.mjs` and sent to browsers; the",
        "table lists every non-development package of `ui/package-lock.json`, with the `npm:`",
        "prefix that `REVIEWED` uses.",
        "",
        *_table(npm),
        "",
        DEV,
        "",
        "The `test` and `dev` extras of pyproject.toml with their dependencies, then the npm",
        "development packages (`npm:`). They are not checked: they run on developers' machines",
        "and in CI, and are not part of what is distributed.",
        "",
        *_table(dev),
        "",
        "## Data shipped with Consilium",
        "",
        "| File | What | Sources | Licence |",
        "| --- | --- | --- | --- |",
        *(f"| `{d.path}` | {d.what} | {d.sources} | {d.licence} |" for d in SHIPPED_DATA),
        "",
        "## Reviewed decisions",
        "",
        "| Package | Releases | Licence | Why |",
        "| --- | --- | --- | --- |",
        *(
            f"| {key} | {r.versions} | {r.licence} | {r.why} |"
            for key, r in sorted(REVIEWED.items())
        ),
        "",
        "## Licences accepted for runtime dependencies",
        "",
        ", ".join(f"`{name}`" for name in sorted(ALLOWED)) + ".",
        "",
        "Refused: " + ", ".join(f"`{name}`" for name in sorted(DENIED)) + ".",
        "",
    ]
    return "\n".join(lines)


def runtime_pairs(page: str) -> set[tuple[str, str, str]]:
    """(section, package, licence) for each row of the runtime tables of a page."""
    pairs: set[tuple[str, str, str]] = set()
    section = ""
    for line in page.splitlines():
        if line.startswith("## "):
            section = line
            continue
        if section not in (RUNTIME_PYTHON, RUNTIME_NPM) or not line.startswith("| "):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) != 4 or cells[0] == "Package" or set(cells[0]) <= {"-", " "}:
            continue
        pairs.add((section, cells[0], cells[2].replace("\\|", "|")))
    return pairs


def stale(page: str, fresh: str) -> list[str]:
    """What the committed page says wrongly about runtime dependencies, one line each."""
    old, new = runtime_pairs(page), runtime_pairs(fresh)
    lines = [f"missing or changed: {name}: {lic}" for _, name, lic in sorted(new - old)]
    lines += [f"no longer true: {name}: {lic}" for _, name, lic in sorted(old - new)]
    return lines


def collect() -> tuple[list[Dependency], list[str]]:
    py, py_errors = python_dependencies()
    npm, npm_errors = npm_dependencies()
    return py + npm, py_errors + npm_errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="regenerate docs/licences.md")
    mode.add_argument("--check", action="store_true", help="check licences and the page")
    args = parser.parse_args(argv)
    deps, errors = collect()
    errors += problems(deps)
    page = render(deps)
    if args.write:
        DOC.write_text(page, encoding="utf-8")
    elif args.check:
        current = DOC.read_text(encoding="utf-8") if DOC.is_file() else ""
        errors += [f"docs/licences.md is stale: {line}" for line in stale(current, page)]
    else:
        sys.stdout.write(page)
    for line in errors:
        print(f"licences: {line}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
