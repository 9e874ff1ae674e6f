"""The care-offer directory: keyword (3 characters min), specialty, establishment, radius."""

from __future__ import annotations

import pytest

from dossier import communes
from dossier.careoffers.directory import haversine_km
from dossier.communes import UnknownPlace, geocode
from tests.dossier.dossier_fixtures import *  # noqa: F403

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def test_geocode_by_postcode_and_name():
    assert geocode("69003").name == "Lyon 3e Arrondissement"
    assert geocode("12 rue de la République, 38000 Grenoble").name == "Grenoble"
    assert geocode("st etienne").name == "Saint-Étienne"
    assert geocode("75015 Paris").insee == "75115"
    assert geocode("20000").insee == "2A004"  # Ajaccio
    assert geocode("97500").postcode == "97500"  # Saint-Pierre-et-Miquelon, shared postcode
    assert geocode("69400 Arnas").name == "Arnas"  # the commune the address names
    assert geocode("Plouguerneau").postcode == "29880"  # a small commune far from the demo
    # Shared by Guissény and Plouguerneau, named by neither: the postcode's area.
    assert geocode("29880").name == "Code postal 29880"


def test_the_table_holds_every_commune_with_coordinates_and_postcodes():
    current = [c for c in communes.table() if c.kind in ("COM", "ARM")]
    assert len(current) > 34_900  # 34 969 communes + 45 arrondissements (COG 2025)
    assert all(c.lat is not None and c.lon is not None for c in current)
    assert all(41 < c.lat < 52 and -6 < c.lon < 10 for c in current if c.insee < "97")
    with_postcode = [c for c in current if c.postcodes]
    assert len(with_postcode) >= len(current) - 5  # the TAAF districts have none
    assert communes.by_insee("2B033").name == "Bastia"
    # A former commune keeps its code as a birth place: Anctoville, in Aurseulles since 2016.
    assert communes.by_insee("14011").parent == "14581"
    assert communes.is_birth_place_code("99100")  # born abroad: the country's code
    assert not communes.is_birth_place_code("00000")


@pytest.mark.parametrize(
    "address, code",
    [
        ("99999", "unknown_postcode"),  # no such postcode: refused, not its department
        ("69999 Lyon", "unknown_postcode"),
        ("Clermont Ferand", "unknown_address"),  # a typo is suggested, not corrected
        ("Nowhere-sur-Mer", "unknown_address"),
        ("Saint-Martin", "ambiguous_address"),  # dozens of communes bear the name
    ],
)
def test_unknown_or_ambiguous_places_are_refused_never_guessed(address, code):
    with pytest.raises(UnknownPlace) as e:
        geocode(address)
    assert e.value.code == code
    if address == "Clermont Ferand":
        assert e.value.candidates == ["Clermont-Ferrand (63000, 63100)"]


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
    r = await c.get("/api/v1/care-offers", params={"near": "69999"})
    assert r.status == 422 and r.content_type == "application/problem+json"
    assert (await r.json())["code"] == "unknown_postcode"
    r = await c.get("/api/v1/care-offers", params={"near": "Saint-Martin"})
    body = await r.json()
    assert r.status == 422 and body["code"] == "ambiguous_address"
    assert "Saint-Martin (32300)" in body["candidates"]
    # A commune the old demo table did not know, 50 km around Brest: no offer there.
    r = await c.get("/api/v1/care-offers", params={"near": "29880 Plouguerneau", "radius_km": "50"})
    assert r.status == 200 and (await r.json())["items"] == []
    assert (await r.json())["origin"]["name"] == "Plouguerneau"
    r = await c.get("/api/v1/care-offers", params={"near": "Lyon", "radius_km": "-1"})
    assert r.status == 422
    r = await c.get("/api/v1/care-offers/facets")
    facets = await r.json()
    assert "Endocrinologie-diabétologie" in facets["specialties"]
    assert len(facets["establishments"]) >= 5


@SQLITE
async def test_communes_route_lists_a_postcode_and_refuses_unknown_ones(demo, as_user):
    c = await as_user(demo["users"]["requester"])
    r = await c.get("/api/v1/communes", params={"postcode": "29880"})
    assert r.status == 200
    assert sorted(x["name"] for x in await r.json()) == ["Guissény", "Plouguerneau"]
    r = await c.get("/api/v1/communes", params={"insee": "14011"})  # a delegated commune
    [anctoville] = await r.json()
    assert (anctoville["name"], anctoville["kind"], anctoville["parent"]) == (
        "Anctoville",
        "COMD",
        "14581",
    )
    for params, code in (
        ({"postcode": "69999"}, "unknown_postcode"),
        ({"insee": "00000"}, "unknown_insee_code"),
        ({"postcode": "6900"}, "validation_failed"),
        ({}, "criteria_required"),
    ):
        r = await c.get("/api/v1/communes", params=params)
        assert r.status == 422 and r.content_type == "application/problem+json", params
        assert (await r.json())["code"] == code, params
