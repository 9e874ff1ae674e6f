"""The hospital's FHIR client (fhirpy, over HTTP) reads Consilium's FHIR R4 API with an API
key: the FR Core Patient with its INS only when qualified, the téléexpertise request and its
state, the signed report with its PDF, hash and size; every read is audited; bad requests get
an OperationOutcome with a 4xx, never a 500."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import aiohttp
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import AuthorizationError, ForbiddenError, ResourceNotFound
from sqlalchemy import func, select, update

from core.audit import AuditEntry
from core.context import DB, SETTINGS
from dossier.identity.ins import ins_with_key
from dossier.models import InsStatus, Patient
from ops import apikeys, tokens
from tests.support.documents import make_dossier

INS_NIR = "urn:oid:1.2.250.1.213.1.4.8"
FR_CORE = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient"


def basic(key_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{key_id}:{secret}".encode()).decode()


async def qualify(app: Any, ins: str) -> None:
    async with app[DB].write() as uow:
        await uow.session.execute(
            update(Patient)
            .where(Patient.ins == ins)
            .values(ins_status=InsStatus.qualified, ins_oid="1.2.250.1.213.1.4.8")
        )


async def audit_count(app: Any, action: str) -> int:
    async with app[DB].read() as s:
        n = await s.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action)
        )
    return int(n or 0)


@pytest.fixture
async def world(app: Any, client: Any, make_client: Any, users: Any) -> dict[str, Any]:
    """Two dossiers of the requester: one expertised with its signed report, on a qualified
    identity; one waiting, on an identity whose INS is not qualified."""
    qualified_ins = ins_with_key("1800175056123")
    other_ins = ins_with_key("2900175056124")
    d1 = await make_dossier(
        app[DB], users, ins=qualified_ins, ipp="IPP-1", state="expertised", signed_parts=True
    )
    d2 = await make_dossier(
        app[DB], users, birth_name="DURAND", first_name="Anne", ins=other_ins, ipp="IPP-2"
    )
    await qualify(app, qualified_ins)
    expert = await make_client()
    await expert.sign_in_as(users["expert"].id)
    r = await expert.post(f"/api/v1/dossiers/{d1}/report")
    assert r.status == 201, await r.text()
    report = await r.json()
    r = await expert.get(f"/api/v1/dossiers/{d1}/documents/{report['id']}/content")
    pdf = await r.read() if r.status == 200 else b""
    key, secret = await apikeys.create_key(
        app[DB], app[SETTINGS], name="DPI", user_email=users["requester"].email, actor=None
    )
    return {
        "d1": d1,
        "d2": d2,
        "report": report,
        "pdf": pdf,
        "qualified_ins": qualified_ins,
        "other_ins": other_ins,
        "key_id": key.id,
        "secret": secret,
        "base": str(client.client.make_url("/fhir/R4")),
    }


async def test_the_hospital_reads_patient_request_and_signed_report_with_fhirpy(
    app: Any, world: dict[str, Any]
) -> None:
    fc = AsyncFHIRClient(world["base"], authorization=basic(world["key_id"], world["secret"]))
    ipp_system = app[SETTINGS].fhir_ipp_system

    raw = await fc.execute("Patient", method="get", params={"identifier": "IPP-1"})
    assert Bundle.model_validate(raw).total == 1
    cs = await fc.execute("metadata", method="get")
    CapabilityStatement.model_validate(cs)
    assert cs["fhirVersion"] == "4.0.1"

    # Patient by IPP: FR Core, INS with the NIR OID (qualified identity), IPP.
    found = await fc.resources("Patient").search(identifier=f"{ipp_system}|IPP-1").fetch_all()
    assert len(found) == 1
    patient = found[0].serialize()
    FhirPatient.model_validate(patient)
    assert patient["meta"]["profile"] == [FR_CORE]
    idents = {i["system"]: i["value"] for i in patient["identifier"]}
    assert idents == {INS_NIR: world["qualified_ins"], ipp_system: "IPP-1"}
    assert patient["name"][0]["family"] == "MARTIN"
    assert patient["birthDate"] == "1980-01-01"
    # ... and by its INS.
    by_ins = fc.resources("Patient").search(identifier=f"{INS_NIR}|{world['qualified_ins']}")
    assert [p.id for p in await by_ins.fetch_all()] == [patient["id"]]

    # The identity that is not qualified: its INS does not travel, nor answers a search.
    other = await fc.resources("Patient").search(identifier=f"{ipp_system}|IPP-2").fetch_all()
    assert len(other) == 1
    assert [i["system"] for i in other[0].serialize()["identifier"]] == [ipp_system]
    assert (
        await fc.resources("Patient")
        .search(identifier=f"{INS_NIR}|{world['other_ins']}")
        .fetch_all()
        == []
    )

    # The request, its state mapped.
    reqs = (
        await fc.resources("ServiceRequest").search(patient=f"Patient/{patient['id']}").fetch_all()
    )
    assert len(reqs) == 1
    sr = reqs[0].serialize()
    ServiceRequest.model_validate(sr)
    assert sr["id"] == str(world["d1"])
    assert sr["status"] == "completed" and sr["priority"] == "urgent"
    assert sr["subject"]["reference"] == f"Patient/{patient['id']}"
    waiting = await fc.resources("ServiceRequest").search(_id=str(world["d2"])).get()
    assert waiting["status"] == "active"

    # The signed report: by patient and by the patient's identifier.
    docs = await fc.resources("DocumentReference").search(patient=patient["id"]).fetch_all()
    assert len(docs) == 1
    dr = docs[0].serialize()
    DocumentReference.model_validate(dr)
    assert dr["id"] == world["report"]["id"]
    assert dr["status"] == "current" and dr["docStatus"] == "final"
    assert dr["identifier"][0]["value"] == f"urn:uuid:{world['report']['id']}"
    assert dr["author"][0]["display"]
    att = dr["content"][0]["attachment"]
    assert att["contentType"] == "application/pdf"
    async with aiohttp.ClientSession() as http:
        hdrs = {"Authorization": basic(world["key_id"], world["secret"])}
        async with http.get(att["url"], headers=hdrs) as r:
            assert r.status == 200
            pdf = await r.read()
    assert pdf.startswith(b"%PDF")
    if world["pdf"]:
        assert pdf == world["pdf"]
    assert att["size"] == len(pdf)
    assert att["hash"] == base64.b64encode(hashlib.sha1(pdf).digest()).decode()
    by_ident = (
        await fc.resources("DocumentReference")
        .search(**{"subject.identifier": f"{ipp_system}|IPP-1"})
        .fetch_all()
    )
    assert [d.id for d in by_ident] == [dr["id"]]
    assert (
        await fc.resources("DocumentReference")
        .search(**{"subject.identifier": f"{ipp_system}|IPP-2"})
        .fetch_all()
        == []
    )

    # Every read was audited.
    assert await audit_count(app, "patient.read") >= 4
    assert await audit_count(app, "dossier.read") >= 2
    assert await audit_count(app, "document.read") >= 3
    assert await audit_count(app, "fhir.search") >= 6


async def test_an_access_token_needs_the_fhir_read_grant(app: Any, world: dict[str, Any]) -> None:
    ok = tokens.mint(world["key_id"], world["secret"], identity="dpi", fhir_read=True)
    fc = AsyncFHIRClient(world["base"], authorization=f"Bearer {ok}")
    assert len(await fc.resources("Patient").search(identifier="IPP-1").fetch_all()) == 1
    room_only = tokens.mint(world["key_id"], world["secret"], identity="dpi", room_create=True)
    fc = AsyncFHIRClient(world["base"], authorization=f"Bearer {room_only}")
    with pytest.raises(ForbiddenError) as e:
        await fc.resources("Patient").search(identifier="IPP-1").fetch_all()
    OperationOutcome.model_validate_json(str(e.value))


async def test_an_account_sees_only_its_patients(
    app: Any, users: Any, world: dict[str, Any]
) -> None:
    key, secret = await apikeys.create_key(
        app[DB], app[SETTINGS], name="Ailleurs", user_email=users["secretary"].email, actor=None
    )
    fc = AsyncFHIRClient(world["base"], authorization=basic(key.id, secret))
    assert await fc.resources("Patient").search(identifier="IPP-1").fetch_all() == []
    with pytest.raises(ResourceNotFound):
        await fc.resources("ServiceRequest").search(_id=str(world["d1"])).get()
    with pytest.raises(ResourceNotFound) as e:  # the read interaction: 404, as if absent
        await fc.execute(f"ServiceRequest/{world['d1']}", method="get")
    OperationOutcome.model_validate_json(str(e.value))


@pytest.mark.parametrize(
    ("method", "path", "status", "auth"),
    [
        ("GET", "/Foo", 404, True),
        ("GET", "/Foo/123", 404, True),
        ("GET", "/Patient?foo=bar", 400, True),
        ("GET", "/Patient?_count=many", 400, True),
        ("GET", "/Patient?identifier=a&identifier=b", 400, True),
        ("GET", "/Patient/not-a-uuid", 400, True),
        ("GET", "/Patient/00000000-0000-0000-0000-000000000000", 404, True),
        ("GET", "/DocumentReference?patient=Practitioner/1", 400, True),
        ("GET", "/ServiceRequest?patient=Patient/zzz", 400, True),
        ("GET", "/Patient?_format=xml", 400, True),
        ("POST", "/Patient", 405, True),
        ("DELETE", "/Patient/00000000-0000-0000-0000-000000000000", 405, True),
        ("GET", "/Patient?identifier=IPP-1", 401, False),
        ("GET", "/Binary/00000000-0000-0000-0000-000000000000", 404, True),
        ("GET", "/Binary", 400, True),
        ("GET", "/a/b/c", 404, True),
    ],
)
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_bad_requests_get_an_operation_outcome_never_a_500(
    world: dict[str, Any], method: str, path: str, status: int, auth: bool
) -> None:
    hdrs = {"Authorization": basic(world["key_id"], world["secret"])} if auth else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, world["base"] + path, headers=hdrs) as r,
    ):
        assert r.status == status, await r.text()
        assert r.headers["Content-Type"].startswith("application/fhir+json")
        body = await r.json(content_type=None)
    oo = OperationOutcome.model_validate(body)
    assert oo.issue[0].severity == "error" and oo.issue[0].diagnostics


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_wrong_api_key_is_refused_with_an_operation_outcome(world: dict[str, Any]) -> None:
    fc = AsyncFHIRClient(world["base"], authorization=basic(world["key_id"], "wrong"))
    with pytest.raises(AuthorizationError) as e:
        await fc.resources("Patient").search(identifier="IPP-1").fetch_all()
    OperationOutcome.model_validate_json(str(e.value))
    # The capability statement needs no credential.
    bundle_like = await AsyncFHIRClient(world["base"]).execute("metadata", method="get")
    assert bundle_like["resourceType"] == "CapabilityStatement"
