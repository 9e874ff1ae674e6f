"""Identity: INS structure and key, tolerant search with a match rate limited to what the
user may see, duplicate warning, and refusals that write nothing."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from core.context import DB
from core.errors import ValidationFailed
from dossier.identity.patients import (
    Criteria,
    fold_for_matching,
    ins_key,
    ins_with_key,
    match_rate,
    validate_ins,
)
from dossier.models import Patient, Sex
from tests.dossier.dossier_fixtures import *  # noqa: F403
from tests.dossier.dossier_fixtures import CARDIO_EMAIL, PATIENT, new_patient

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


# -- INS, pure -------------------------------------------------------------------------


def test_ins_key_is_97_minus_nir_mod_97():
    assert ins_key("1840775123456") == 97 - 1840775123456 % 97
    assert validate_ins(ins_with_key("1840775123456")) == ins_with_key("1840775123456")


def test_ins_corsica_counts_2a_as_19_and_2b_as_18():
    for nir13, numeric in (
        ("18507" + "2A" + "004012", "1850719004012"),
        ("28507" + "2B" + "033007", "2850718033007"),
    ):
        key = 97 - int(numeric) % 97
        assert validate_ins(f"{nir13}{key:02d}") == f"{nir13}{key:02d}"
        with pytest.raises(ValidationFailed):
            validate_ins(f"{nir13}{(key % 97) + 1:02d}")


@pytest.mark.parametrize("month", ["20", "30", "42", "50", "99"])
def test_ins_accepts_the_nir_special_months(month):
    assert validate_ins(ins_with_key(f"185{month}75123456"))


@pytest.mark.parametrize(
    "bad",
    [
        "12345",  # too short
        "1840775123456789",  # 16
        "5840775123456" + "00",  # sex digit 5
        ins_with_key("1841375123456"),  # month 13
        ins_with_key("1844375123456"),  # month 43
        ins_with_key("1840700123456"),  # department 00
        ins_with_key("1840775000456"),  # commune 000
        ins_with_key("1840775123000"),  # order 000
        "18407751234X6" + "12",  # a letter
        ins_with_key("1840775123456")[:13] + "00",  # wrong key
    ],
)
def test_ins_refuses_malformed_numbers(bad):
    with pytest.raises(ValidationFailed) as e:
        validate_ins(bad)
    assert e.value.code == "invalid_ins"


def test_ins_must_agree_with_sex_and_birth_date():
    ins = ins_with_key("2860269381042")
    assert validate_ins(ins, sex=Sex.female, birth_date=date(1986, 2, 7)) == ins
    with pytest.raises(ValidationFailed) as e:
        validate_ins(ins, sex=Sex.male)
    assert e.value.code == "ins_mismatch"
    with pytest.raises(ValidationFailed):
        validate_ins(ins, birth_date=date(1986, 3, 7))


def test_match_rate_is_tolerant_of_accents_case_order_and_typos():
    p = Patient(
        birth_name="LEFÈVRE",
        used_name="",
        first_name="Anaïs",
        first_names="",
        used_first_name="",
        sex=Sex.female,
        birth_date=date(1970, 4, 3),
    )
    assert fold_for_matching("Lefèvre-d'Aubigné") == "lefevre d aubigne"
    assert match_rate(p, Criteria(text="lefevre anais")) == 100.0
    assert match_rate(p, Criteria(text="ANAIS Lefevre")) == 100.0
    assert match_rate(p, Criteria(text="lef")) == 100.0  # the start of a name
    assert 70 <= match_rate(p, Criteria(text="lefebvre anais")) < 100
    assert match_rate(p, Criteria(text="lefevre", birth_date=date(1970, 3, 4))) < 100  # swapped
    assert match_rate(p, Criteria(text="durand pierre")) < 70


# -- through the API --------------------------------------------------------------------


async def test_search_only_finds_patients_the_user_may_see(demo, as_user):
    req = await as_user(demo["users"]["requester"])
    sec = await as_user(demo["users"]["secretary"])
    outsider = await as_user(demo["everyone"][CARDIO_EMAIL])
    await new_patient(req, birth_name="Vautrin", first_name="Odile")
    for c, expected in ((req, 1), (sec, 1), (outsider, 0)):
        r = await c.get("/api/v1/patients", params={"q": "vautrin"})
        assert r.status == 200
        assert len(await r.json()) == expected
    r = await outsider.get("/api/v1/patients", params={"ipp": "DEMO-0001"})
    assert await r.json() == []


async def test_search_by_ins_ipp_and_birth_date(demo, as_user):
    req = await as_user(demo["users"]["requester"])
    ins = ins_with_key("2860269381042")
    r = await req.get("/api/v1/patients", params={"ins": ins})
    [p] = await r.json()
    assert p["ipp"] == "DEMO-0001" and p["match_rate"] == 100.0
    r = await req.get("/api/v1/patients", params={"ipp": "DEMO-0002"})
    assert [x["birth_name"] for x in await r.json()] == ["MARTIN"]
    r = await req.get("/api/v1/patients", params={"birth_date": "1986-02-07"})
    assert [x["ipp"] for x in await r.json()] == ["DEMO-0001"]
    r = await req.get("/api/v1/patients", params={"ins": "123"})
    assert r.status == 422 and (await r.json())["code"] == "invalid_ins"
    r = await req.get("/api/v1/patients")
    assert r.status == 422 and (await r.json())["code"] == "criteria_required"


async def count_patients(app) -> int:
    async with app[DB].read() as s:
        return int(await s.scalar(select(func.count()).select_from(Patient)) or 0)


@SQLITE
async def test_invalid_identity_is_refused_and_nothing_written(app, demo, as_user):
    req = await as_user(demo["users"]["requester"])
    before = await count_patients(app)
    cases = [
        ({"ins": "184077512345600"}, "invalid_ins"),
        ({"ins": ins_with_key("1500338185001")}, "ins_mismatch"),  # male INS, female patient
        ({"birth_date": "2999-01-01"}, "validation_failed"),
        ({"sex": "X"}, "validation_failed"),
        ({"birth_insee_code": "../etc"}, "validation_failed"),
        ({"ins_status": "qualified"}, "evidence_required"),
        ({"ins_status": "recovered", "insi": True}, "ins_required"),
        ({"birth_insee_code": "38999"}, "unknown_birth_place"),
        ({"first_names": "Marie Élise"}, "first_name_mismatch"),
        ({"ins": ins_with_key("2500338185001"), "ins_oid": "1.2.3"}, "validation_failed"),
        ({"unknown": 1}, "validation_failed"),
    ]
    for over, code in cases:
        r = await req.post("/api/v1/patients", json={**PATIENT, **over, "confirm": True})
        assert r.status == 422, over
        assert r.content_type == "application/problem+json"
        assert (await r.json())["code"] == code, over
    assert await count_patients(app) == before


@SQLITE
async def test_same_ins_twice_is_a_conflict(demo, as_user):
    req = await as_user(demo["users"]["requester"])
    ins = ins_with_key("2500338185001")
    await new_patient(req, ins=ins, birth_date="1950-03-12")
    r = await req.post(
        "/api/v1/patients",
        json={
            **PATIENT,
            "birth_name": "Autre",
            "ins": ins,
            "birth_date": "1950-03-01",
            "confirm": True,
        },
    )
    assert r.status == 409 and (await r.json())["code"] == "ins_exists"


@SQLITE
async def test_duplicate_warning_writes_nothing_until_confirmed(app, demo, as_user):
    req = await as_user(demo["users"]["requester"])
    body = {
        "birth_name": "Sevestre",
        "first_name": "Veronique",
        "sex": "F",
        "birth_date": "1986-02-07",
    }
    before = await count_patients(app)
    r = await req.post("/api/v1/patients", json=body)
    assert r.status == 409
    problem = await r.json()
    assert problem["code"] == "similar_identities"
    assert problem["candidates"][0]["ipp"] == "DEMO-0001"
    assert await count_patients(app) == before
    r = await req.post("/api/v1/patients", json={**body, "confirm": True})
    assert r.status == 201
    assert await count_patients(app) == before + 1


@SQLITE
async def test_identity_corrections_keep_qualified_traits(demo, as_user):
    req = await as_user(demo["users"]["requester"])
    outsider = await as_user(demo["everyone"][CARDIO_EMAIL])
    p = await new_patient(req, birth_name="Morel", first_name="Luc", sex="M")
    url = f"/api/v1/patients/{p['id']}"
    r = await req.patch(
        url, json={"used_name": "Morel-Vidal", "first_name": "Lucas", "reason": "Prénom mal saisi"}
    )
    assert r.status == 200, await r.text()
    assert (await r.json())["display_name"] == "MOREL (MOREL-VIDAL) Lucas"
    r = await req.get("/api/v1/patients", params={"q": "morel-vidal lucas"})
    assert [x["id"] for x in await r.json()] == [p["id"]]
    r = await req.patch(url, json={"ins": "123"})
    assert r.status == 422 and (await r.json())["code"] == "invalid_ins"
    r = await req.patch(url, json={"sex": None, "birth_name": None})
    assert r.status == 200  # null means unchanged
    r = await outsider.patch(url, json={"used_name": "X"})
    assert r.status == 404
    # The demo patient's identity is qualified: its traits stay, its contacts may change.
    [demo_p] = await (await req.get("/api/v1/patients", params={"ipp": "DEMO-0001"})).json()
    url = f"/api/v1/patients/{demo_p['id']}"
    r = await req.patch(url, json={"birth_name": "Sevestres"})
    assert r.status == 409 and (await r.json())["code"] == "identity_qualified"
    r = await req.patch(url, json={"contacts": [{"kind": "mobile", "value": "+33611223344"}]})
    assert r.status == 200 and (await r.json())["contacts"][0]["value"] == "+33611223344"
    r = await req.get(f"/api/v1/patients/{demo_p['id']}")
    assert (await r.json())["birth_name"] == "SEVESTRE"
