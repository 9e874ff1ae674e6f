"""HTTP routes of the care-offer directory."""

from __future__ import annotations

from aiohttp import web

from core.context import DB
from dossier.careoffers import directory as careoffers
from dossier.careoffers.schemas import CareOfferOut, CareOfferQuery, CareOfferSearchOut, FacetsOut
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
