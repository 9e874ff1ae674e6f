"""Consilium's objects as FHIR R4 resources, each built as a dict and validated by
``fhir.resources`` (its R4B models: Patient, ServiceRequest, DocumentReference, Bundle,
CapabilityStatement and OperationOutcome are the same on the wire in R4 4.0.1 and R4B).

- a patient identity → ``Patient`` with the FR Core profile, its IPP, and its INS (NIR/NIA
  with the ANS OID) only when the identity is qualified (RNIV, :mod:`dossier.identity.ins`);
- a dossier → ``ServiceRequest`` (the téléexpertise request), its status from the dossier
  state;
- a signed report → ``DocumentReference`` (the PDF by URL or inline, its SHA-1 in base64 as
  FHIR's ``Attachment.hash`` asks, its size, author and date).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.servicerequest import ServiceRequest

from core.accounts import User
from core.config import Settings
from dossier.identity.ins import InsOid, exchangeable_ins
from dossier.models import Document, Dossier, DossierState, Patient, Sex

FHIR_VERSION = "4.0.1"
FR_CORE_PATIENT = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient"
FR_CORE_IDENTIFIER_TYPE = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
RPPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"  # national practitioner identifiers (8 + RPPS)
URN_SYSTEM = "urn:ietf:rfc:3986"
LOINC = "http://loinc.org"
BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
INS_SYSTEMS = {f"urn:oid:{oid.value}": oid for oid in InsOid}

GENDER = {Sex.female: "female", Sex.male: "male", Sex.unknown: "unknown"}


def dump(resource: Resource) -> dict[str, Any]:
    """The resource as JSON (FHIR field names, no empty elements)."""
    out: dict[str, Any] = resource.model_dump(mode="json", by_alias=True, exclude_none=True)
    return out


def document_identifier(document_id: uuid.UUID) -> dict[str, str]:
    """The report's business identifier, the same for every copy of it (the DPI deduplicates
    on it: ``If-None-Exist: identifier=urn:ietf:rfc:3986|urn:uuid:…``)."""
    return {"system": URN_SYSTEM, "value": f"urn:uuid:{document_id}"}


def ins_identifier(p: Patient) -> dict[str, Any] | None:
    ins = exchangeable_ins(p.ins_status, p.ins)
    if ins is None:
        return None
    oid = InsOid(p.ins_oid) if p.ins_oid in {o.value for o in InsOid} else InsOid.nir
    code = "INS-NIA" if oid is InsOid.nia else "INS-NIR"
    return {
        "use": "official",
        "type": {"coding": [{"system": FR_CORE_IDENTIFIER_TYPE, "code": code}]},
        "system": f"urn:oid:{oid.value}",
        "value": ins,
    }


def ipp_identifier(p: Patient, settings: Settings) -> dict[str, Any] | None:
    if not p.ipp:
        return None
    return {
        "use": "usual",
        "type": {"coding": [{"system": V2_0203, "code": "PI"}]},
        "system": settings.fhir_ipp_system,
        "value": p.ipp,
    }


def patient_identifiers(p: Patient, settings: Settings) -> list[dict[str, Any]]:
    return [i for i in (ins_identifier(p), ipp_identifier(p, settings)) if i is not None]


def patient(p: Patient, settings: Settings) -> FhirPatient:
    names: list[dict[str, Any]] = [
        {
            "use": "official",
            "family": p.birth_name,
            "given": (p.first_names or p.first_name).split() or [p.first_name],
        }
    ]
    if p.used_name or p.used_first_name:
        names.append(
            {
                "use": "usual",
                "family": p.used_name or p.birth_name,
                "given": [p.used_first_name or p.first_name],
            }
        )
    data: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(p.id),
        "meta": {"profile": [FR_CORE_PATIENT], "lastUpdated": _instant(p.updated_at)},
        "identifier": patient_identifiers(p, settings),
        "name": names,
        "gender": GENDER.get(p.sex, "unknown"),
        "birthDate": p.birth_date.isoformat(),
    }
    if p.birth_commune or p.birth_insee_code:
        place: dict[str, Any] = {"country": p.birth_country or "FRANCE"}
        if p.birth_commune:
            place["city"] = p.birth_commune
        if p.birth_insee_code:  # FR Core carries the INSEE code of the birth commune here
            place["district"] = p.birth_insee_code
        data["extension"] = [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
                "valueAddress": place,
            }
        ]
    return FhirPatient.model_validate(data)


# The dossier's state as a ServiceRequest's status: draft until the requester signs, active
# while it waits for the expert, completed once expertised; a dossier closed without an
# opinion was withdrawn (revoked).
_STATUS = {
    DossierState.draft: "draft",
    DossierState.awaiting_expertise: "active",
    DossierState.expertised: "completed",
}


def request_status(d: Dossier) -> str:
    if d.state in _STATUS:
        return _STATUS[d.state]
    before = d.state_before_closure
    if d.expertised_at is not None or before is DossierState.expertised:
        return "completed"
    return "active" if d.state is DossierState.closure_requested else "revoked"


def practitioner_ref(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    ref: dict[str, Any] = {"type": "Practitioner", "display": user.display_name}
    if user.rpps:
        ref["identifier"] = {"system": RPPS_SYSTEM, "value": f"8{user.rpps}"}
    return ref


def service_request(
    d: Dossier,
    *,
    base: str,
    request_type: str,
    requester: User | None,
    expert: User | None,
) -> ServiceRequest:
    data: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": str(d.id),
        "meta": {"lastUpdated": _instant(d.modified_at)},
        "identifier": [{"system": f"{base}/dossiers", "value": d.number}],
        "status": request_status(d),
        "intent": "order",
        "category": [{"text": "Téléexpertise"}],
        "code": {"text": request_type or "Demande d'avis"},
        "priority": "urgent" if d.urgent else "routine",
        "subject": {"reference": f"Patient/{d.patient_id}"},
        "authoredOn": _instant(d.submitted_at or d.created_at),
        "extension": [
            {"url": f"{base}/fhir/StructureDefinition/dossier-state", "valueCode": d.state.value}
        ],
    }
    if (who := practitioner_ref(requester)) is not None:
        data["requester"] = who
    if (who := practitioner_ref(expert)) is not None:
        data["performer"] = [who]
    return ServiceRequest.model_validate(data)


def attachment(doc: Document, pdf: bytes, *, url: str | None) -> dict[str, Any]:
    """The PDF by URL (the API) or inline (the push), with FHIR's SHA-1 hash in base64."""
    att: dict[str, Any] = {
        "contentType": doc.content_type,
        "language": "fr-FR",
        "size": len(pdf),
        "hash": base64.b64encode(hashlib.sha1(pdf).digest()).decode(),  # noqa: S324 (FHIR's)
        "title": doc.filename,
        "creation": _instant(doc.created_at),
    }
    if url is not None:
        att["url"] = url
    else:
        att["data"] = base64.b64encode(pdf).decode()
    return att


def document_reference(
    doc: Document,
    pdf: bytes,
    *,
    subject: dict[str, Any],
    author: User | None,
    dossier: Dossier,
    base: str,
    url: str | None,
    superseded: bool = False,
) -> DocumentReference:
    data: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": str(doc.id),
        "masterIdentifier": document_identifier(doc.id),
        "identifier": [document_identifier(doc.id)],
        "status": "superseded" if superseded else "current",
        "docStatus": "final",
        "type": {
            "coding": [{"system": LOINC, "code": "11488-4", "display": "Consult note"}],
            "text": "Compte-rendu de téléexpertise",
        },
        "subject": subject,
        "date": _instant(doc.created_at),
        "description": f"Compte-rendu du dossier {dossier.number}",
        "content": [{"attachment": attachment(doc, pdf, url=url)}],
        "context": {
            "related": [
                {
                    "type": "ServiceRequest",
                    "identifier": {"system": f"{base}/dossiers", "value": dossier.number},
                }
            ]
        },
    }
    who = practitioner_ref(author)
    if who is not None:
        data["author"] = [who]
    elif doc.author_label:
        data["author"] = [{"display": doc.author_label}]
    return DocumentReference.model_validate(data)


def capability_statement(base: str, software_version: str) -> CapabilityStatement:
    def search(*params: tuple[str, str]) -> list[dict[str, str]]:
        return [{"name": n, "type": t} for n, t in params]

    read_search = [{"code": "read"}, {"code": "search-type"}]
    return CapabilityStatement.model_validate(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": _instant(datetime.now().astimezone()),
            "publisher": "Consilium",
            "kind": "instance",
            "software": {"name": "Consilium", "version": software_version},
            "implementation": {"description": "Consilium FHIR R4 API", "url": f"{base}/fhir/R4"},
            "fhirVersion": FHIR_VERSION,
            "format": ["application/fhir+json", "json"],
            "rest": [
                {
                    "mode": "server",
                    "security": {
                        "description": "HTTP Basic with a Consilium API key (id:secret), a "
                        "Bearer access token minted with it carrying the fhir_read grant, or a "
                        "signed-in session. Every read is audited."
                    },
                    "resource": [
                        {
                            "type": "Patient",
                            "profile": FR_CORE_PATIENT,
                            "interaction": read_search,
                            "searchParam": search(("_id", "token"), ("identifier", "token")),
                        },
                        {
                            "type": "ServiceRequest",
                            "interaction": read_search,
                            "searchParam": search(
                                ("_id", "token"),
                                ("identifier", "token"),
                                ("patient", "reference"),
                                ("subject", "reference"),
                            ),
                        },
                        {
                            "type": "DocumentReference",
                            "interaction": read_search,
                            "searchParam": search(
                                ("_id", "token"),
                                ("identifier", "token"),
                                ("patient", "reference"),
                                ("subject", "reference"),
                            ),
                        },
                        {"type": "Binary", "interaction": [{"code": "read"}]},
                    ],
                }
            ],
        }
    )


def bundle(base: str, url: str, resources: list[Resource]) -> Bundle:
    return Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(resources),
            "link": [{"relation": "self", "url": url}],
            "entry": [
                {
                    "fullUrl": f"{base}/fhir/R4/{r.get_resource_type()}/{r.id}",
                    "resource": dump(r),
                    "search": {"mode": "match"},
                }
                for r in resources
            ],
        }
    )


def operation_outcome(code: str, diagnostics: str, severity: str = "error") -> OperationOutcome:
    return OperationOutcome.model_validate(
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
        }
    )


def _instant(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None
