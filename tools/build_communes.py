"""Build ``dossier/data/communes.csv.gz``, the table of French communes that the care-offer
radius search and the birth-place check read.

Inputs (both open data, see docs/licences.md "Data shipped with Consilium"):

- the npm package ``@etalab/decoupage-administratif`` (``data/communes.json``): every
  INSEE code of the Code officiel géographique (communes, municipal arrondissements,
  delegated and associated communes, the former codes of merged communes) with its
  postcodes (La Poste);
- ``Coercive/FranceCities`` (``2022_france_cities/france_cities.csv`` and
  ``2022_overseas_collectivities/france_overseas_collectivities.csv``): the coordinates
  La Poste publishes for each INSEE code (``laposte_hexasmal``, ``coordonnees_gps``).

Usage::

    npm pack @etalab/decoupage-administratif@6.0.0 && tar xzf etalab-*.tgz
    python tools/build_communes.py package/data/communes.json france_cities.csv \
        france_overseas_collectivities.csv

A commune without coordinates of its own (created after 2022) takes the mean of its former
codes', else of the communes sharing its postcodes; the ``approx`` column says so.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
from pathlib import Path
from statistics import fmean

OUT = Path(__file__).resolve().parent.parent / "dossier" / "data" / "communes.csv.gz"
KINDS = {
    "commune-actuelle": "COM",
    "arrondissement-municipal": "ARM",
    "commune-deleguee": "COMD",
    "commune-associee": "COMA",
}


def main(decoupage: str, *coordinates: str) -> None:
    coords: dict[str, tuple[float, float]] = {}
    for path in coordinates:
        with open(path, encoding="utf-8") as f:
            for r in csv.DictReader(f):
                if r.get("LATITUDE") and r.get("LONGITUDE"):
                    coords[r["REF_INSEE"]] = (float(r["LATITUDE"]), float(r["LONGITUDE"]))
    communes = json.loads(Path(decoupage).read_text("utf-8"))
    current = [c for c in communes if c["type"] in ("commune-actuelle", "arrondissement-municipal")]
    by_postcode: dict[str, list[tuple[float, float]]] = {}
    for c in current:
        if c["code"] in coords:
            for cp in c.get("codesPostaux") or []:
                by_postcode.setdefault(cp, []).append(coords[c["code"]])

    def place(c: dict) -> tuple[tuple[float, float] | None, bool]:
        if c["code"] in coords:
            return coords[c["code"]], False
        near = [coords[a] for a in c.get("anciensCodes") or [] if a in coords]
        if not near:
            near = [p for cp in c.get("codesPostaux") or [] for p in by_postcode.get(cp, [])]
        if not near:
            return None, True
        return (fmean(p[0] for p in near), fmean(p[1] for p in near)), True

    rows: dict[tuple[str, str], list[str]] = {}
    placed: dict[str, tuple[tuple[float, float] | None, bool, list[str]]] = {}
    for c in current:
        pt, approx = place(c)
        postcodes = sorted(c.get("codesPostaux") or [])
        placed[c["code"]] = (pt, approx, postcodes)
    for c in communes:
        kind = KINDS[c["type"]]
        parent = c.get("chefLieu") or c.get("commune") or ""
        if kind in ("COM", "ARM"):
            pt, approx, postcodes = placed[c["code"]]
            parent = ""
        else:
            own = coords.get(c["code"])
            ppt, _, postcodes = placed.get(parent, (None, True, []))
            pt, approx = (own, False) if own else (ppt, True)
        rows[(c["code"], kind)] = [
            c["code"],
            kind,
            c["nom"],
            " ".join(postcodes),
            f"{pt[0]:.5f}" if pt else "",
            f"{pt[1]:.5f}" if pt else "",
            "1" if approx and pt else "",
            parent,
        ]
        # Former codes of a merged commune stay valid birth places (born before the merger).
        if kind == "COM":
            for old in c.get("anciensCodes") or []:
                if not any(k[0] == old for k in rows):
                    opt = coords.get(old, pt)
                    rows[(old, "OLD")] = [
                        old,
                        "OLD",
                        c["nom"],
                        " ".join(postcodes),
                        f"{opt[0]:.5f}" if opt else "",
                        f"{opt[1]:.5f}" if opt else "",
                        "" if old in coords else ("1" if opt else ""),
                        c["code"],
                    ]
    # A former code that later became a delegated commune is listed once, as COMD.
    codes_with_kind = {k[0] for k in rows if k[1] != "OLD"}
    final = [v for k, v in rows.items() if k[1] != "OLD" or k[0] not in codes_with_kind]
    final.sort(key=lambda r: (r[0], r[1]))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["insee", "kind", "name", "postcodes", "lat", "lon", "approx", "parent"])
    w.writerows(final)
    # mtime=0: the same inputs give the same bytes.
    with gzip.GzipFile(OUT, "wb", compresslevel=9, mtime=0) as gz:
        gz.write(buf.getvalue().encode("utf-8"))
    n_current = sum(1 for r in final if r[1] in ("COM", "ARM"))
    n_approx = sum(1 for r in final if r[1] in ("COM", "ARM") and r[6])
    n_none = sum(1 for r in final if r[1] in ("COM", "ARM") and not r[4])
    print(
        f"{len(final)} codes ({n_current} communes and arrondissements, {n_approx} placed "
        f"approximately, {n_none} without coordinates) → {OUT} ({OUT.stat().st_size} bytes)"
    )


if __name__ == "__main__":
    main(sys.argv[1], *sys.argv[2:])
