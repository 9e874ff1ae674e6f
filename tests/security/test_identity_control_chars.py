"""Identity texts with control or format characters (issue 12, item 13): a right-to-left
override U+202E in a birth name disguised the identity on screen and then broke the report
(an undocumented 422). They are refused at input, naming the field; texts are stored NFC."""

from __future__ import annotations

import unicodedata

from tests.dossier.dossier_fixtures import *  # noqa: F403
from tests.dossier.dossier_fixtures import PATIENT, new_patient

RLO = "\u202e"


def _names_field(body: dict, field: str) -> bool:
    return body["code"] == "validation_failed" and any(
        field in e["loc"] for e in body.get("errors", [])
    )


async def test_control_and_format_characters_are_refused_in_identities(demo, as_user):
    req = await as_user(demo["users"]["requester"])
    r = await req.post(
        "/api/v1/patients", json={**PATIENT, "birth_name": f"Dup{RLO}tnod", "confirm": True}
    )
    assert r.status == 422, await r.text()
    assert r.content_type == "application/problem+json"
    assert _names_field(await r.json(), "birth_name")
    for bad in ({"first_name": "Ana\u200bïs"}, {"birth_commune": "Gre\nnoble"}):
        r = await req.post("/api/v1/patients", json={**PATIENT, **bad, "confirm": True})
        assert r.status == 422 and _names_field(await r.json(), next(iter(bad))), bad
    r = await req.post(
        "/api/v1/patients",
        json={**PATIENT, "addresses": [{"city": "Lyon\u2028"}], "confirm": True},
    )
    assert r.status == 422 and _names_field(await r.json(), "city")
    r = await req.post(
        "/api/v1/patients",
        json={**PATIENT, "contacts": [{"kind": "email", "value": f"a{RLO}@b.fr"}], "confirm": True},
    )
    assert r.status == 422 and _names_field(await r.json(), "value")

    # An ordinary accented identity is fine, and stored composed (NFC).
    decomposed = unicodedata.normalize("NFD", "Lefèvre-Noël")
    p = await new_patient(req, birth_name=decomposed, first_name="Hélène Marie")
    assert p["birth_name"].casefold() == "lefèvre-noël"  # composed: "è" is one character
    assert p["first_name"].casefold() == "hélène marie"

    url = f"/api/v1/patients/{p['id']}"
    r = await req.patch(url, json={"birth_name": f"Lef{RLO}èvre"})
    assert r.status == 422 and _names_field(await r.json(), "birth_name")
    r = await req.patch(url, json={"used_name": "Ma\u0000rtin"})
    assert r.status == 422
    r = await req.get(url)
    assert (await r.json())["birth_name"] == p["birth_name"]
    r = await req.patch(url, json={"used_name": unicodedata.normalize("NFD", "Bérénice")})
    assert r.status == 200, await r.text()
    assert (await r.json())["used_name"].casefold() == "bérénice"
