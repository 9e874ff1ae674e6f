"""The care-offer directory: keyword (3 characters min), specialty, establishment, radius."""

from __future__ import annotations

import pytest

from dossier.careoffers.directory import geocode, haversine_km
from tests.dossier.dossier_fixtures import *  # noqa: F403

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def test_geocode_by_postcode_name_and_typo():
    assert geocode("69003").name == "Lyon 3e Arrondissement"
    assert geocode("12 rue de la République, 38000 Grenoble").name == "Grenoble"
    assert geocode("st etienne").name == "Saint-Étienne"
    assert geocode("Clermont Ferand").name == "Clermont-Ferrand"
    assert geocode("Nowhere-sur-Mer") is None


def test_haversine_lyon_grenoble_is_about_95_km():
    ly, gr = geocode("Lyon"), geocode("Grenoble")
    assert 90 < haversine_km(ly.lat, ly.lon, gr.lat, gr.lon) < 100


async def test_keyword_needs_three_characters(demo, as_user):
    c = await as_user(demo["users"]["requester"])
    r = await c.get("/api/v1/care-offers", params={"q": "de"})
    assert r.status == 422 and (await r.json())["code"] == "query_too_short"
    r = await c.get("/api/v1/care-offers", params={"q": "derm"})
    assert r.status == 200
    assert {o["specialty"] for o in (await r.json())["items"]} == {"Dermatologie"}


@SQLITE
async def test_radius_specialty_and_establishment_filters(demo, as_user):
    c = await as_user(demo["users"]["requester"])
    r = await c.get(
        "/api/v1/care-offers",
        params={"specialty": "neurologie", "near": "Bron", "radius_km": "30"},
    )
    items = (await r.json())["items"]
    assert [o["city"] for o in items] == ["Bron"]
    r = await c.get(
        "/api/v1/care-offers",
        params={"specialty": "neurologie", "near": "Bron", "radius_km": "120"},
    )
    items = (await r.json())["items"]
    assert [o["city"] for o in items][:2] == ["Bron", "Saint-Priest-en-Jarez"]  # nearest first
    assert items == sorted(items, key=lambda o: o["distance_km"])
    r = await c.get("/api/v1/care-offers", params={"establishment": "grenoble alpes"})
    assert {o["establishment"] for o in (await r.json())["items"]} == {"CHU Grenoble Alpes"}
    r = await c.get("/api/v1/care-offers", params={"near": "Atlantis"})
    assert r.status == 422 and (await r.json())["code"] == "unknown_address"
    r = await c.get("/api/v1/care-offers", params={"near": "Lyon", "radius_km": "-1"})
    assert r.status == 422
    r = await c.get("/api/v1/care-offers/facets")
    facets = await r.json()
    assert "Endocrinologie-diabétologie" in facets["specialties"]
    assert len(facets["establishments"]) >= 5
