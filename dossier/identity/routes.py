"""HTTP routes of patients' identities and of the lookup of a dossier by its number."""

from __future__ import annotations

import uuid

from aiohttp import web

from core.auth import principal
from core.context import DB
from core.errors import ValidationFailed
from dossier.identity import lookup
from dossier.identity import patients as identity
from dossier.identity import status as identity_status
from dossier.identity.schemas import (
    LookupIn,
    LookupOut,
    PatientHit,
    PatientIn,
    PatientOut,
    PatientPatch,
    PatientQuery,
    StatusChangeOut,
    StatusIn,
)
from dossier.web import RouteTable

T_PAT = ["patients"]
routes = RouteTable()


@routes.get("/patients", query=PatientQuery, response=list[PatientHit], tags=T_PAT)
async def search_patients(request: web.Request, query: PatientQuery) -> list[PatientHit]:
    """Search identities I may see, with a match rate ("Taux de corresp.")."""
    p = principal(request)
    ins = ""
    if query.ins:
        ins = identity.validate_ins(query.ins)
    if not (query.q or query.birth_date or ins or query.ipp):
        raise ValidationFailed(
            "Give a name (2 characters at least), a birth date, an INS or an IPP",
            code="criteria_required",
        )
    c = identity.Criteria(
        text=query.q or "",
        birth_date=query.birth_date,
        ins=ins,
        ipp=query.ipp or "",
        sex=query.sex,
    )
    criteria = sorted(k for k, v in query.model_dump().items() if v)
    hits = await identity.search_patients(request.app[DB], p, c, criteria)
    held = await identity.held_by(request.app[DB], p, [pt.id for pt, _ in hits])
    return [
        PatientHit(**PatientOut.of(pt, exchange=pt.id not in held).model_dump(), match_rate=r)
        for pt, r in hits
    ]


@routes.post("/patients", body=PatientIn, response=PatientOut, status=201, tags=T_PAT, errors=[409])
async def create_patient(request: web.Request, body: PatientIn) -> PatientOut:
    """Create an identity; 409 similar_identities lists look-alikes until confirm=true."""
    data = body.model_dump(
        exclude={"confirm", "insi", "identity_document", "status_reason"}, mode="python"
    )
    data["addresses"] = [a.model_dump(mode="json") for a in body.addresses]
    data["contacts"] = [c.model_dump(mode="json") for c in body.contacts]
    patient = await identity.create_patient(
        request.app[DB],
        principal(request),
        data,
        confirm=body.confirm,
        evidence=identity_status.Evidence(insi=body.insi, document=body.identity_document),
        reason=body.status_reason,
    )
    return PatientOut.of(patient)


@routes.get("/patients/{patient_id}", response=PatientOut, tags=T_PAT)
async def get_patient(request: web.Request) -> PatientOut:
    """An identity card ("Fiche d'identité")."""
    p = principal(request)
    pt = await identity.read_patient(
        request.app[DB], p, uuid.UUID(request.match_info["patient_id"])
    )
    held = await identity.held_by(request.app[DB], p, [pt.id])
    return PatientOut.of(pt, exchange=pt.id not in held)


@routes.patch(
    "/patients/{patient_id}",
    body=PatientPatch,
    response=PatientOut,
    tags=T_PAT,
    errors=[403, 409],
)
async def patch_patient(request: web.Request, body: PatientPatch) -> PatientOut:
    """Correct an identity ("Modifier"): by the requester side holding it (403
    identity_change_not_allowed otherwise); a strict trait needs a ``reason`` (422
    reason_required); a qualified identity's traits stay as they are."""
    changes = body.model_dump(exclude_unset=True, exclude={"reason"}, mode="python")
    # Only the IPP and the INS may be cleared; null elsewhere means "unchanged".
    changes = {k: v for k, v in changes.items() if v is not None or k in ("ipp", "ins")}
    if body.addresses is not None:
        changes["addresses"] = [a.model_dump(mode="json") for a in body.addresses]
    if body.contacts is not None:
        changes["contacts"] = [c.model_dump(mode="json") for c in body.contacts]
    patient = await identity.update_patient(
        request.app[DB],
        principal(request),
        uuid.UUID(request.match_info["patient_id"]),
        changes,
        reason=body.reason or "",
    )
    return PatientOut.of(patient)


@routes.post(
    "/patients/{patient_id}/status",
    body=StatusIn,
    response=PatientOut,
    tags=T_PAT,
    errors=[403, 404, 409],
)
async def change_identity_status(request: web.Request, body: StatusIn) -> PatientOut:
    """Move the identity status (provisoire, récupérée, validée, qualifiée) as the RNIV
    allows (409 illegal_identity_transition otherwise), with a reason and the evidence of
    the step (422 evidence_required: an INSi call, a high-trust document)."""
    patient = await identity_status.change_status(
        request.app[DB],
        principal(request),
        uuid.UUID(request.match_info["patient_id"]),
        body.status,
        reason=body.reason,
        evidence=identity_status.Evidence(insi=body.insi, document=body.identity_document),
    )
    return PatientOut.of(patient)


@routes.get(
    "/patients/{patient_id}/status-history",
    response=list[StatusChangeOut],
    tags=T_PAT,
    errors=[404],
)
async def identity_status_history(request: web.Request) -> list[StatusChangeOut]:
    """Who changed the identity status, when, why and on what evidence, oldest first."""
    rows = await identity_status.history(
        request.app[DB], principal(request), uuid.UUID(request.match_info["patient_id"])
    )
    return [StatusChangeOut.of(r) for r in rows]


@routes.post(
    "/dossiers/lookup",
    body=LookupIn,
    response=LookupOut,
    tags=["dossiers"],
    errors=[403, 404, 422, 429],
)
async def lookup_dossier(request: web.Request, body: LookupIn) -> LookupOut:
    """Open a dossier by its number and the patient's birth date (read access)."""
    did = await lookup.lookup(request.app[DB], principal(request), body.number, body.birth_date)
    return LookupOut(dossier_id=did)
