"""Search of the MSSanté directory: words of a name, RPPS, specialty, commune (accents and
case ignored), the matches sorted by name."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import ValidationFailed
from dossier.identity.patients import fold_for_matching
from dossier.models import MssDirectoryEntry

MIN_QUERY = 2
MAX_LIMIT = 50


def rpps_of(value: str) -> str:
    """An RPPS typed as such (11 digits) or as its national identifier (8 + RPPS)."""
    digits = value.strip()
    if re.fullmatch(r"8\d{11}", digits):
        digits = digits[1:]
    if not re.fullmatch(r"\d{11}", digits):
        raise ValidationFailed(
            "Un numéro RPPS a 11 chiffres (ou 12 précédé de 8).", code="invalid_rpps"
        )
    return digits


async def search(
    session: AsyncSession,
    *,
    q: str = "",
    rpps: str = "",
    specialty: str = "",
    commune: str = "",
    limit: int = 20,
) -> list[MssDirectoryEntry]:
    """The mailboxes matching every criterion given (at least one is required)."""
    words = fold_for_matching(q).split()
    spec, place = fold_for_matching(specialty), fold_for_matching(commune)
    if not (words or rpps.strip() or spec or place):
        raise ValidationFailed(
            "Indiquez un nom, un RPPS, une spécialité ou une commune.", code="criteria_required"
        )
    if q.strip() and len("".join(words)) < MIN_QUERY:
        raise ValidationFailed(
            f"Tapez au moins {MIN_QUERY} caractères pour chercher.", code="query_too_short"
        )
    t = MssDirectoryEntry
    stmt = select(t)
    for w in words:
        # An 11-digit word is an RPPS, 8+RPPS its national form: both find the same person.
        if re.fullmatch(r"8\d{11}", w):
            w = w[1:]
        stmt = stmt.where(t.search_folded.contains(w, autoescape=True))
    if rpps.strip():
        stmt = stmt.where(t.rpps == rpps_of(rpps))
    if spec:
        stmt = stmt.where(t.specialty_folded.contains(spec, autoescape=True))
    if place:
        if place.isdigit():
            stmt = stmt.where(t.postcode.startswith(place, autoescape=True))
        else:
            stmt = stmt.where(t.commune_folded.contains(place, autoescape=True))
    stmt = stmt.order_by(t.name_folded, t.organization, t.address).limit(min(limit, MAX_LIMIT))
    return list((await session.execute(stmt)).scalars())
