"""HTTP routes of the care-offer directory."""

from __future__ import annotations

from aiohttp import web

from core.context import DB
from core.errors import ValidationFailed
from dossier import communes
from dossier.careoffers import directory as careoffers
from dossier.careoffers.schemas import (
    CareOfferOut,
    CareOfferQuery,
    CareOfferSearchOut,
    CommuneOut,
    CommuneQuery,
    FacetsOut,
)
from dossier.web import RouteTable

T_DIR = ["care offers"]
routes = RouteTable()


@routes.get("/care-offers", query=CareOfferQuery, response=CareOfferSearchOut, tags=T_DIR)
async def search_care_offers(request: web.Request, query: CareOfferQuery) -> CareOfferSearchOut:
    """Search the care-offer directory (keyword ≥ 3 characters, specialty, establishment,
    distance from an address within radius_km)."""
    async with request.app[DB].read() as s:
        hits, origin = await careoffers.search(
            s,
            q=query.q or "",
            specialty=query.specialty or "",
            establishment=query.establishment or "",
            near=query.near or "",
            radius_km=query.radius_km,
        )
    return CareOfferSearchOut(
        origin=(
            {
                "name": origin.name,
                "postcode": origin.postcode,
                "lat": origin.lat,
                "lon": origin.lon,
            }
            if origin
            else None
        ),
        items=[CareOfferOut.of(h.offer, h.members, h.distance_km) for h in hits],
    )


@routes.get("/care-offers/facets", response=FacetsOut, tags=T_DIR)
async def care_offer_facets(request: web.Request) -> FacetsOut:
    """The specialties and establishments of the directory."""
    async with request.app[DB].read() as s:
        specialties, establishments = await careoffers.facets(s)
    return FacetsOut(specialties=specialties, establishments=establishments)


@routes.get("/communes", query=CommuneQuery, response=list[CommuneOut], tags=["communes"])
async def find_communes(request: web.Request, query: CommuneQuery) -> list[CommuneOut]:
    """The communes of a postcode, or the commune of an INSEE code (current or former): the
    identity form's birth place. An unknown postcode or code is refused, never guessed."""
    if query.insee:
        found = communes.by_insee(query.insee)
        if found is None:
            raise ValidationFailed(
                f"No French commune has the INSEE code {query.insee}", code="unknown_insee_code"
            )
        hits: tuple[communes.Commune, ...] = (found,)
    elif query.postcode:
        hits = communes.by_postcode(query.postcode)
        if not hits:
            raise ValidationFailed(
                f"Le code postal {query.postcode} n'existe pas en France.", code="unknown_postcode"
            )
    else:
        raise ValidationFailed("Give a postcode or an INSEE code", code="criteria_required")
    return [
        CommuneOut(
            insee=c.insee, name=c.name, postcodes=list(c.postcodes), kind=c.kind, parent=c.parent
        )
        for c in hits
    ]
