"""Import of the Annuaire Santé's public extract "Extraction des adresses MSSanté" (ANS).

The file is text, one mailbox a line, fields separated by ``|``, with a header line naming
the columns. Columns are found by name (case, accents and punctuation ignored), in any order;
extra columns are ignored. Those read (see docs/integration.md, « Annuaire MSSanté »):

- ``Type de BAL`` (PER, ORG, APP) and ``Adresse BAL`` — required;
- ``Type d'identifiant PP``, ``Identifiant PP``, ``Identification nationale PP`` (8+RPPS);
- ``Nom d'exercice``, ``Prénom d'exercice``;
- ``Libellé profession``, ``Libellé savoir-faire`` (the specialty);
- ``Raison sociale structure`` (or ``… structure BAL``), ``Commune`` and ``Code postal``
  (a ``… (coord. structure)`` suffix is accepted).

An import is a full import: it runs in one transaction that upserts every mailbox by its
address and then removes those the file no longer lists, so a failure leaves the directory as
it was. The file is read line by line and written in batches (bounded memory). A malformed
line (wrong number of fields, no valid address, a bad RPPS) is reported and skipped.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core import audit
from core.db import Database, utcnow
from core.errors import ValidationFailed
from dossier.identity.patients import fold_for_matching
from dossier.models import MssDirectoryEntry

BATCH = 500
MAX_REPORTED = 100  # bad lines listed in the summary; more are only counted
ADDRESS = re.compile(r"^[^@\s|]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")

# Our field → the folded header names accepted for it (first found wins).
COLUMNS: dict[str, tuple[str, ...]] = {
    "box_type": ("type de bal",),
    "address": ("adresse bal",),
    "id_type": ("type d identifiant pp",),
    "pp_id": ("identifiant pp",),
    "national_id": ("identification nationale pp",),
    "last_name": ("nom d exercice",),
    "first_name": ("prenom d exercice",),
    "profession": ("libelle profession",),
    "specialty": ("libelle savoir faire",),
    "organization": ("raison sociale structure bal", "raison sociale structure"),
    "commune": ("commune coord structure", "commune", "libelle commune coord structure"),
    "postcode": ("code postal coord structure", "code postal"),
}
REQUIRED = ("box_type", "address")


@dataclass
class BadLine:
    line: int
    reason: str


@dataclass
class ImportSummary:
    lines: int = 0
    imported: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    bad: int = 0
    bad_lines: list[BadLine] = field(default_factory=list)

    def report(self, line: int, reason: str) -> None:
        self.bad += 1
        if len(self.bad_lines) < MAX_REPORTED:
            self.bad_lines.append(BadLine(line, reason))


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")  # older extracts were Windows-1252


def _fields(text: str) -> list[str]:
    return [f.strip() for f in text.rstrip("\r\n").split("|")]


def header_map(header: list[str]) -> dict[str, int]:
    """Our field → its column index; refuses a header without the required columns."""
    folded = [fold_for_matching(h) for h in header]
    found: dict[str, int] = {}
    for name, accepted in COLUMNS.items():
        for a in accepted:
            if a in folded:
                found[name] = folded.index(a)
                break
    missing = [n for n in REQUIRED if n not in found]
    if missing:
        wanted = ", ".join(f"« {COLUMNS[n][0]} »" for n in missing)
        raise ValidationFailed(
            f"Ce fichier n'est pas une extraction des adresses MSSanté : colonnes {wanted} "
            "absentes de l'en-tête.",
            code="not_an_mss_extract",
        )
    return found


def _rpps(id_type: str, pp_id: str, national_id: str) -> str:
    """The 11-digit RPPS, or "" (ADELI and others have none); ValueError when malformed."""
    candidate = ""
    if id_type == "8" and pp_id:
        candidate = pp_id
    elif national_id.startswith("8") and len(national_id) == 12:
        candidate = national_id[1:]
    if candidate and not re.fullmatch(r"\d{11}", candidate):
        raise ValueError(f"RPPS invalide « {candidate} »")
    return candidate


def parse(lines: Iterable[bytes], summary: ImportSummary) -> Iterator[dict[str, Any]]:
    """The rows of the file, as values of :class:`MssDirectoryEntry`; bad lines reported."""
    it = iter(lines)
    columns: dict[str, int] | None = None
    width = 0
    for number, raw in enumerate(it, start=1):
        text = _decode(raw)
        if number == 1:
            text = text.lstrip("\ufeff")
        if not text.strip():
            continue
        values = _fields(text)
        if columns is None:
            if values and values[-1] == "":
                values.pop()  # the extracts end each line with a "|"
            columns, width = header_map(values), len(values)
            continue
        summary.lines += 1
        if len(values) == width + 1 and values[-1] == "":
            values.pop()
        if len(values) != width:
            summary.report(number, f"{len(values)} champs au lieu de {width}")
            continue

        def get(name: str, values: list[str] = values, columns: dict[str, int] = columns) -> str:
            i = columns.get(name)
            return values[i] if i is not None else ""

        address = get("address").lower()
        if not ADDRESS.match(address) or len(address) > 254:
            summary.report(number, f"adresse BAL invalide « {get('address')[:80]} »")
            continue
        try:
            rpps = _rpps(get("id_type"), get("pp_id"), get("national_id"))
        except ValueError as e:
            summary.report(number, str(e))
            continue
        row = {
            "address": address,
            "box_type": get("box_type")[:8],
            "rpps": rpps,
            "national_id": get("national_id")[:20],
            "last_name": get("last_name")[:100],
            "first_name": get("first_name")[:100],
            "profession": get("profession")[:100],
            "specialty": get("specialty")[:150],
            "organization": get("organization")[:200],
            "commune": get("commune")[:100],
            "postcode": get("postcode")[:10],
        }
        name = fold_for_matching(f"{row['last_name']} {row['first_name']}")
        specialty = fold_for_matching(f"{row['specialty']} {row['profession']}")
        commune = fold_for_matching(row["commune"])
        row["name_folded"] = name[:210]
        row["specialty_folded"] = specialty[:260]
        row["commune_folded"] = commune[:100]
        row["search_folded"] = " ".join(
            [
                name,
                specialty,
                fold_for_matching(row["organization"]),
                commune,
                row["postcode"],
                rpps,
                address,
            ]
        )[:800]
        yield row
    if columns is None:
        raise ValidationFailed("Le fichier est vide : aucun en-tête.", code="empty_file")


async def import_file(db: Database, path: Path) -> ImportSummary:
    """Replace the directory by the mailboxes of the extract at ``path`` (one transaction)."""
    summary = ImportSummary()
    import_id = uuid.uuid4()
    now = utcnow()
    insert = pg_insert if db.dialect == "postgresql" else sqlite_insert
    async with db.write() as uow:
        s = uow.session
        before = await s.scalar(select(func.count()).select_from(MssDirectoryEntry)) or 0
        batch: list[dict[str, Any]] = []

        async def flush() -> None:
            if not batch:
                return
            rows = [
                {**r, "id": uuid.uuid4(), "import_id": import_id, "imported_at": now} for r in batch
            ]
            stmt = insert(MssDirectoryEntry).values(rows)
            updated = {c: stmt.excluded[c] for c in rows[0] if c not in ("id", "address")}
            await s.execute(stmt.on_conflict_do_update(index_elements=["address"], set_=updated))
            batch.clear()

        with path.open("rb") as f:
            for row in parse(f, summary):
                batch.append(row)
                if len(batch) >= BATCH:
                    await flush()
            await flush()
        imported = (
            await s.scalar(
                select(func.count())
                .select_from(MssDirectoryEntry)
                .where(MssDirectoryEntry.import_id == import_id)
            )
            or 0
        )
        if imported == 0:
            raise ValidationFailed(
                "Aucune adresse valable dans ce fichier : l'annuaire n'a pas été modifié.",
                code="nothing_to_import",
                bad_lines=[{"line": b.line, "reason": b.reason} for b in summary.bad_lines],
            )
        removed = await s.execute(
            delete(MssDirectoryEntry).where(MssDirectoryEntry.import_id != import_id)
        )
        summary.imported = imported
        summary.removed = removed.rowcount or 0  # type: ignore[attr-defined]
        summary.updated = before - summary.removed
        summary.added = imported - summary.updated
        audit.record(
            s,
            "mss_directory.import",
            object_type="mss_directory",
            imported=summary.imported,
            added=summary.added,
            removed=summary.removed,
            bad=summary.bad,
            file=path.name,
        )
    return summary
