"""The table of French communes: every INSEE code of the Code officiel géographique with its
postcodes and coordinates, shipped as ``data/communes.csv.gz`` (built by
``tools/build_communes.py``; sources and licences in docs/licences.md).

Two readers: the care-offer directory places a search's address (postcode, else the
commune's name) and the identity checks that a birth place's INSEE code exists. Nothing is
guessed: an unknown postcode or name places nothing, and a name shared by several communes
needs its postcode.

Kinds: ``COM`` commune, ``ARM`` municipal arrondissement (Paris, Lyon, Marseille), ``COMD``
delegated and ``COMA`` associated commune (a former commune inside a new one), ``OLD`` a
former code of a merged commune. All are valid birth places (someone born in 1970 keeps the
code of the commune of that day); only ``COM`` and ``ARM`` place an address.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources
from statistics import fmean

from rapidfuzz import fuzz, process

CURRENT = ("COM", "ARM")
# Born abroad: the INSEE code of the country (99 + 3 digits), not a commune.
ABROAD = re.compile(r"^99\d{3}$")


@dataclass(frozen=True)
class Commune:
    insee: str
    kind: str
    name: str
    postcodes: tuple[str, ...]
    lat: float | None
    lon: float | None
    approx: bool  # coordinates taken from former codes or neighbours, not its own
    parent: str  # the current commune of a delegated/associated/former code


@dataclass(frozen=True)
class Place:
    """Where a search's address was placed."""

    name: str
    postcode: str
    lat: float
    lon: float
    insee: str = ""


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_ = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    words = re.sub(r"[^a-z0-9]+", " ", ascii_).split()
    return " ".join({"st": "saint", "ste": "sainte"}.get(w, w) for w in words)


@cache
def table() -> tuple[Commune, ...]:
    raw = resources.files("dossier").joinpath("data/communes.csv.gz").read_bytes()
    rows = csv.DictReader(io.StringIO(gzip.decompress(raw).decode("utf-8")))
    return tuple(
        Commune(
            insee=r["insee"],
            kind=r["kind"],
            name=r["name"],
            postcodes=tuple(r["postcodes"].split()),
            lat=float(r["lat"]) if r["lat"] else None,
            lon=float(r["lon"]) if r["lon"] else None,
            approx=r["approx"] == "1",
            parent=r["parent"],
        )
        for r in rows
    )


@cache
def _by_insee() -> dict[str, Commune]:
    out: dict[str, Commune] = {}
    for c in table():  # a current commune wins over its delegated namesake
        if c.insee not in out or c.kind in CURRENT:
            out[c.insee] = c
    return out


@cache
def _by_postcode() -> dict[str, tuple[Commune, ...]]:
    out: dict[str, list[Commune]] = {}
    for c in table():
        if c.kind in CURRENT and c.lat is not None:
            for cp in c.postcodes:
                out.setdefault(cp, []).append(c)
    # Paris, Lyon, Marseille: a postcode names an arrondissement, not the whole city.
    return {cp: tuple(x for x in cs if x.kind == "ARM") or tuple(cs) for cp, cs in out.items()}


@cache
def _by_name() -> dict[str, tuple[Commune, ...]]:
    out: dict[str, list[Commune]] = {}
    for c in table():
        if c.kind in CURRENT and c.lat is not None:
            out.setdefault(_fold(c.name), []).append(c)
    return {k: tuple(v) for k, v in out.items()}


def by_insee(code: str) -> Commune | None:
    """The commune (current or former) with this INSEE code."""
    return _by_insee().get(code.strip().upper())


def by_postcode(postcode: str) -> tuple[Commune, ...]:
    return _by_postcode().get(postcode.strip(), ())


def is_birth_place_code(code: str) -> bool:
    """An INSEE code a birth place may carry: a commune of the table (current or former),
    or a country's code for someone born abroad (99xxx)."""
    return bool(ABROAD.match(code)) or by_insee(code) is not None


class UnknownPlace(Exception):
    """The address cannot be placed; ``code`` says why, ``candidates`` names the choices."""

    def __init__(self, code: str, detail: str, candidates: list[str] | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.candidates = candidates or []


def _place(c: Commune, postcode: str = "") -> Place:
    assert c.lat is not None and c.lon is not None
    return Place(c.name, postcode or (c.postcodes[0] if c.postcodes else ""), c.lat, c.lon, c.insee)


def _label(c: Commune) -> str:
    return f"{c.name} ({', '.join(c.postcodes[:3])})"


def geocode(address: str) -> Place:
    """Place an address: "69003", "Lyon", "12 rue X, 38000 Grenoble", "st etienne".

    A postcode decides: unknown → ``UnknownPlace("unknown_postcode")``; shared by several
    communes → the one the address names, else the postcode's area (mean of its communes).
    Without a postcode, the address's last comma-separated part must be a commune's exact
    name (accents, case, hyphens and "St" aside); a name several communes bear needs the postcode
    (``ambiguous_address`` with the candidates); anything else is ``unknown_address``.
    """
    text = address.strip()
    m = re.search(r"\b(\d{5}|2[AB]\d{3})\b", text, re.IGNORECASE)
    folded = _fold(re.sub(r"\b\d+\b", " ", text))
    if m:
        postcode = m.group(1)
        found = by_postcode(postcode)
        if not found:
            raise UnknownPlace(
                "unknown_postcode", f"Le code postal {postcode} n'existe pas en France."
            )
        if len(found) == 1:
            return _place(found[0], postcode)
        for c in found:
            if folded and (folded == _fold(c.name) or folded.endswith(" " + _fold(c.name))):
                return _place(c, postcode)
        lat = fmean(c.lat for c in found if c.lat is not None)
        lon = fmean(c.lon for c in found if c.lon is not None)
        return Place(f"Code postal {postcode}", postcode, round(lat, 5), round(lon, 5))
    if not folded:
        raise UnknownPlace("unknown_address", "Indiquez un code postal ou une commune.")
    names = _by_name()
    # The commune is the address's last comma-separated part ("12 rue X, Grenoble"), whole.
    last = _fold(re.sub(r"\b\d+\b", " ", text.split(",")[-1])) or folded
    found = names.get(last, ())
    if len(found) == 1:
        return _place(found[0])
    if len(found) > 1:
        raise UnknownPlace(
            "ambiguous_address",
            "Plusieurs communes portent ce nom : précisez le code postal.",
            sorted(_label(c) for c in found)[:20],
        )
    # A typo is not corrected silently: close names come back as suggestions.
    close = process.extract(last, list(names), scorer=fuzz.ratio, score_cutoff=85, limit=5)
    raise UnknownPlace(
        "unknown_address",
        "Cette adresse n'a pas pu être placée : indiquez un code postal ou une commune.",
        [_label(c) for name, _, _ in close for c in names[name]][:10],
    )
