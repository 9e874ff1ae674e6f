"""The care-offer directory ("Sélection de l'offre", seed 000 § 2.2.2): search by keyword
(3 characters minimum), specialty, establishment, and distance from an address.

Geocoding works without the internet, from the complete table of French communes
(:mod:`dossier.communes`): an address is placed by its postcode, else by its commune's
name; an unknown postcode or name is refused, never guessed.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.accounts import User
from core.errors import ValidationFailed
from dossier.communes import Place, UnknownPlace, geocode
from dossier.identity.patients import fold_for_matching
from dossier.models import CareOffer, CareOfferMember

MIN_KEYWORD = 3
DEFAULT_RADIUS_KM = 50.0
EARTH_RADIUS_KM = 6371.0


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


@dataclass
class OfferHit:
    offer: CareOffer
    distance_km: float | None
    members: list[User]


async def members_of(
    session: AsyncSession, offer_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[User]]:
    out: dict[uuid.UUID, list[User]] = {i: [] for i in offer_ids}
    if not offer_ids:
        return out
    rows = await session.execute(
        select(CareOfferMember.care_offer_id, User)
        .join(User, User.id == CareOfferMember.user_id)
        .where(CareOfferMember.care_offer_id.in_(offer_ids), User.active.is_(True))
        .order_by(User.last_name)
    )
    for offer_id, user in rows:
        out[offer_id].append(user)
    return out


async def search(
    session: AsyncSession,
    *,
    q: str = "",
    specialty: str = "",
    establishment: str = "",
    near: str = "",
    radius_km: float = DEFAULT_RADIUS_KM,
    limit: int = 50,
) -> tuple[list[OfferHit], Place | None]:
    """Active offers matching every given criterion, nearest first when ``near`` is given."""
    q = q.strip()
    if q and len(q) < MIN_KEYWORD:
        raise ValidationFailed(
            f"Type at least {MIN_KEYWORD} characters to search", code="query_too_short"
        )
    origin: Place | None = None
    if near.strip():
        try:
            origin = geocode(near)
        except UnknownPlace as e:
            raise ValidationFailed(e.detail, code=e.code, candidates=e.candidates) from None
    offers = (
        (await session.execute(select(CareOffer).where(CareOffer.active.is_(True)))).scalars().all()
    )
    words = fold_for_matching(q).split()
    spec, estab = fold_for_matching(specialty), fold_for_matching(establishment)
    hits: list[OfferHit] = []
    for o in offers:
        hay = fold_for_matching(
            f"{o.name} {o.specialty} {o.establishment} {o.city} {o.description}"
        )
        if words and not all(w in hay for w in words):
            continue
        if spec and spec not in fold_for_matching(o.specialty):
            continue
        if estab and estab not in fold_for_matching(o.establishment):
            continue
        dist = None
        if origin is not None:
            if o.latitude is None or o.longitude is None:
                continue
            dist = round(haversine_km(origin.lat, origin.lon, o.latitude, o.longitude), 1)
            if dist > radius_km:
                continue
        hits.append(OfferHit(o, dist, []))
    hits.sort(key=lambda h: (h.distance_km if h.distance_km is not None else 0.0, h.offer.name))
    hits = hits[:limit]
    members = await members_of(session, [h.offer.id for h in hits])
    for h in hits:
        h.members = members[h.offer.id]
    return hits, origin


async def facets(session: AsyncSession) -> tuple[list[str], list[str]]:
    """The specialties and establishments of the directory (the search form's lists)."""
    rows = (
        await session.execute(
            select(CareOffer.specialty, CareOffer.establishment).where(CareOffer.active.is_(True))
        )
    ).all()
    return sorted({r[0] for r in rows}), sorted({r[1] for r in rows})
