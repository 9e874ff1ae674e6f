"""A secretary's rights end with her delegation (issue 12, item 5): once the admin removed
it, she still read the dossiers she had created, edited their consent and read the patient.
She now reaches a dossier or a patient only through a current delegation from its requester."""

from __future__ import annotations

from tests.dossier.dossier_fixtures import *  # noqa: F403
from tests.dossier.dossier_fixtures import new_patient


async def test_removing_the_delegation_removes_the_secretarys_access(demo, as_user):
    sec_user = demo["users"]["secretary"]
    sec = await as_user(sec_user)
    req = await as_user(demo["users"]["requester"])
    adm = await as_user(demo["users"]["admin"])
    p = await new_patient(sec, birth_name="Petit", first_name="Isabelle")
    # Her own patient, not yet in a dossier, is hers while she holds a delegation.
    loose = await new_patient(sec, birth_name="Loiseau", first_name="Anne")
    r = await sec.post("/api/v1/dossiers", json={"patient_id": p["id"]})
    assert r.status == 201, await r.text()
    d = await r.json()
    url = f"/api/v1/dossiers/{d['id']}"
    consent = {"consent": True, "comment": "Accord"}
    assert (await sec.get(url)).status == 200
    assert (await sec.put(f"{url}/consent", json=consent)).status == 200
    assert (await sec.get(f"/api/v1/patients/{p['id']}")).status == 200
    assert (await sec.get(f"/api/v1/patients/{loose['id']}")).status == 200

    users_url = f"/api/v1/users/{sec_user.id}"
    r = await adm.patch(users_url, json={"delegates_for": []})
    assert r.status == 200, await r.text()

    r = await sec.get(url)
    assert r.status == 404 and (await r.json())["code"] == "dossier_not_found"
    r = await sec.put(f"{url}/consent", json=consent)
    assert r.status == 404
    for pid in (p["id"], loose["id"]):
        r = await sec.get(f"/api/v1/patients/{pid}")
        assert r.status == 404, pid
        r = await sec.patch(f"/api/v1/patients/{pid}", json={"used_name": "Autre"})
        assert r.status == 404, pid
    r = await sec.get("/api/v1/dossiers")
    assert (await r.json())["items"] == []
    # The practitioner keeps the dossier.
    assert (await req.get(url)).status == 200

    r = await adm.patch(users_url, json={"delegates_for": [str(demo["users"]["requester"].id)]})
    assert r.status == 200, await r.text()
    assert (await sec.get(url)).status == 200
    assert (await sec.put(f"{url}/consent", json=consent)).status == 200
    assert (await sec.get(f"/api/v1/patients/{p['id']}")).status == 200
