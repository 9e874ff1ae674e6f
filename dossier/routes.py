"""HTTP routes of the dossier: patients, care offers, request types, the dossier wizard, forms,
closure, activity view and history. They only translate to the write paths and reads."""

from __future__ import annotations

import uuid

from aiohttp import web
from pydantic import BaseModel
from sqlalchemy import select

from core import audit
from core.accounts import User
from core.api import Api
from core.auth import principal
from core.context import DB
from core.errors import NotFound, ValidationFailed
from dossier import careoffers, dossiers, identity
from dossier.models import FormSide, Patient, RequestType
from dossier.permissions import visible_patients
from dossier.schemas import (
    ActivityPage,
    ActivityQuery,
    CareOfferOut,
    CareOfferQuery,
    CareOfferSearchOut,
    ClosureIn,
    ConsentIn,
    DossierCreate,
    DossierOut,
    FacetsOut,
    FormValuesIn,
    HistoryEntry,
    PatientHit,
    PatientIn,
    PatientOut,
    PatientPatch,
    PatientQuery,
    RecipientsIn,
    RequestTypeIn,
    RequestTypeOut,
    SignIn,
    UserRef,
)

T_PAT, T_DIR, T_DOS = ["patients"], ["care offers"], ["dossiers"]


def _no_nul(value: object) -> None:
    """PostgreSQL cannot store NUL characters: refuse them up front (422, not a 500)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationFailed("Text may not contain NUL characters", code="nul_character")
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_nul(k)
            _no_nul(v)
    elif isinstance(value, list | tuple):
        for v in value:
            _no_nul(v)
    elif isinstance(value, BaseModel):
        _no_nul(value.model_dump())


def _side(request: web.Request) -> FormSide:
    try:
        return FormSide(request.match_info["side"])
    except ValueError:
        raise NotFound("The side is 'requester' or 'expert'", code="unknown_side") from None


def _did(request: web.Request) -> uuid.UUID:
    return uuid.UUID(request.match_info["dossier_id"])


def setup(app: web.Application) -> None:
    api = Api.of(app)

    # -- patients ------------------------------------------------------------------------

    @api.get("/patients", query=PatientQuery, response=list[PatientHit], tags=T_PAT)
    async def search_patients(request: web.Request, query: PatientQuery) -> list[PatientHit]:
        """Search identities I may see, with a match rate ("Taux de corresp.")."""
        _no_nul(query)
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
        db = request.app[DB]
        async with db.write() as uow:
            hits = await identity.search(uow.session, p, c)
            audit.record(
                uow.session,
                "patient.search",
                actor=p,
                object_type="patient",
                criteria=sorted(k for k, v in query.model_dump().items() if v),
                results=len(hits),
            )
        return [PatientHit(**PatientOut.of(pt).model_dump(), match_rate=r) for pt, r in hits]

    @api.post(
        "/patients", body=PatientIn, response=PatientOut, status=201, tags=T_PAT, errors=[409]
    )
    async def create_patient(request: web.Request, body: PatientIn) -> PatientOut:
        """Create an identity; 409 similar_identities lists look-alikes until confirm=true."""
        _no_nul(body)
        data = body.model_dump(exclude={"confirm"})
        data["addresses"] = [a.model_dump(mode="json") for a in body.addresses]
        data["contacts"] = [c.model_dump(mode="json") for c in body.contacts]
        patient = await identity.create_patient(
            request.app[DB], principal(request), data, confirm=body.confirm
        )
        return PatientOut.of(patient)

    @api.get("/patients/{patient_id}", response=PatientOut, tags=T_PAT)
    async def get_patient(request: web.Request) -> PatientOut:
        """An identity card ("Fiche d'identité")."""
        p = principal(request)
        pid = uuid.UUID(request.match_info["patient_id"])
        async with request.app[DB].write() as uow:
            pt = (
                await uow.session.execute(
                    select(Patient).where(Patient.id == pid, visible_patients(p))
                )
            ).scalar_one_or_none()
            if pt is None:
                raise NotFound("No patient with this id", code="patient_not_found")
            audit.record(uow.session, "patient.read", actor=p, object_type="patient", object_id=pid)
            return PatientOut.of(pt)

    @api.patch(
        "/patients/{patient_id}", body=PatientPatch, response=PatientOut, tags=T_PAT, errors=[409]
    )
    async def patch_patient(request: web.Request, body: PatientPatch) -> PatientOut:
        """Correct an identity ("Modifier"); a qualified identity's traits stay as they are."""
        _no_nul(body)
        changes = body.model_dump(exclude_unset=True, mode="python")
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
        )
        return PatientOut.of(patient)

    # -- directory and request types ---------------------------------------------------

    @api.get("/care-offers", query=CareOfferQuery, response=CareOfferSearchOut, tags=T_DIR)
    async def search_care_offers(request: web.Request, query: CareOfferQuery) -> CareOfferSearchOut:
        """Search the care-offer directory (keyword ≥ 3 characters, specialty, establishment,
        distance from an address within radius_km)."""
        _no_nul(query)
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

    @api.get("/care-offers/facets", response=FacetsOut, tags=T_DIR)
    async def care_offer_facets(request: web.Request) -> FacetsOut:
        """The specialties and establishments of the directory."""
        async with request.app[DB].read() as s:
            specialties, establishments = await careoffers.facets(s)
        return FacetsOut(specialties=specialties, establishments=establishments)

    @api.get("/request-types", response=list[RequestTypeOut], tags=T_DOS)
    async def list_request_types(request: web.Request) -> list[RequestTypeOut]:
        """The request types ("type de demande") and their form templates."""
        async with request.app[DB].read() as s:
            rows = await s.execute(
                select(RequestType).where(RequestType.active.is_(True)).order_by(RequestType.label)
            )
            return [RequestTypeOut.of(rt) for rt in rows.scalars()]

    # -- dossiers --------------------------------------------------------------------------

    @api.get("/dossiers/requesters", response=list[UserRef], tags=T_DOS)
    async def list_requesters(request: web.Request) -> list[UserRef]:
        """Whom I may open a dossier for: myself (practitioner) or those I act for
        (secretary, "en délégation de")."""
        p = principal(request)
        ids = [p.subject_id] if p.role == "practitioner" else list(p.delegates_for)
        if p.role not in ("practitioner", "secretary") or not ids:
            return []
        async with request.app[DB].read() as s:
            rows = await s.execute(
                select(User).where(User.id.in_(ids), User.active.is_(True)).order_by(User.last_name)
            )
            return [UserRef.of(u) for u in rows.scalars()]

    @api.get("/dossiers", query=ActivityQuery, response=ActivityPage, tags=T_DOS)
    async def list_dossiers(request: web.Request, query: ActivityQuery) -> ActivityPage:
        """The activity view: my dossiers, urgent first."""
        _no_nul(query)
        return await dossiers.activity(request.app[DB], principal(request), query)

    async def _view(request: web.Request) -> DossierOut:
        return await dossiers.open_dossier(request.app[DB], principal(request), _did(request))

    @api.post("/dossiers", body=DossierCreate, response=DossierOut, status=201, tags=T_DOS)
    async def create_dossier(request: web.Request, body: DossierCreate) -> DossierOut:
        """Open a draft dossier for a patient (the wizard's first step)."""
        _no_nul(body)
        p = principal(request)
        did = await dossiers.create_dossier(
            request.app[DB],
            p,
            patient_id=body.patient_id,
            requester_id=body.requester_id,
            urgent=body.urgent,
        )
        return await dossiers.open_dossier(request.app[DB], p, did)

    @api.get("/dossiers/{dossier_id}", response=DossierOut, tags=T_DOS)
    async def get_dossier(request: web.Request) -> DossierOut:
        """Open a dossier (an expert's first opening leaves a read receipt)."""
        return await _view(request)

    @api.put(
        "/dossiers/{dossier_id}/consent",
        body=ConsentIn,
        response=DossierOut,
        tags=T_DOS,
        errors=[409],
    )
    async def put_consent(request: web.Request, body: ConsentIn) -> DossierOut:
        """Wizard step: consent (required yes/no and comment), urgent flag."""
        _no_nul(body)
        await dossiers.set_consent(
            request.app[DB],
            principal(request),
            _did(request),
            consent=body.consent,
            comment=body.comment,
            urgent=body.urgent,
        )
        return await _view(request)

    @api.put(
        "/dossiers/{dossier_id}/recipients",
        body=RecipientsIn,
        response=DossierOut,
        tags=T_DOS,
        errors=[409],
    )
    async def put_recipients(request: web.Request, body: RecipientsIn) -> DossierOut:
        """Wizard step: the care offers the dossier is addressed to."""
        _no_nul(body)
        await dossiers.set_recipients(
            request.app[DB], principal(request), _did(request), body.care_offer_ids
        )
        return await _view(request)

    @api.put(
        "/dossiers/{dossier_id}/request-type",
        body=RequestTypeIn,
        response=DossierOut,
        tags=T_DOS,
        errors=[409],
    )
    async def put_request_type(request: web.Request, body: RequestTypeIn) -> DossierOut:
        """Wizard step: the request type (its form)."""
        _no_nul(body)
        await dossiers.set_request_type(
            request.app[DB],
            principal(request),
            _did(request),
            request_type_id=body.request_type_id,
            code=body.code,
        )
        return await _view(request)

    @api.put(
        "/dossiers/{dossier_id}/forms/{side}",
        body=FormValuesIn,
        response=DossierOut,
        tags=T_DOS,
        errors=[409],
    )
    async def put_form(request: web.Request, body: FormValuesIn) -> DossierOut:
        """Save a draft of the requester or expert part ("Enregistrer")."""
        _no_nul(body)
        await dossiers.save_form(
            request.app[DB], principal(request), _did(request), _side(request), body.values
        )
        return await _view(request)

    @api.post(
        "/dossiers/{dossier_id}/forms/{side}/sign",
        body=SignIn,
        response=DossierOut,
        tags=T_DOS,
        errors=[409],
    )
    async def sign_form(request: web.Request, body: SignIn) -> DossierOut:
        """Sign a part: validated, then locked for good; the dossier moves on."""
        _no_nul(body)
        await dossiers.sign_form(
            request.app[DB], principal(request), _did(request), _side(request), body.values
        )
        return await _view(request)

    @api.post(
        "/dossiers/{dossier_id}/closure-request",
        body=ClosureIn,
        response=DossierOut,
        tags=T_DOS,
        errors=[409],
    )
    async def post_closure_request(request: web.Request, body: ClosureIn) -> DossierOut:
        """Ask to close the dossier ("Demande clôture")."""
        _no_nul(body)
        await dossiers.request_closure(
            request.app[DB], principal(request), _did(request), body.reason
        )
        return await _view(request)

    @api.delete(
        "/dossiers/{dossier_id}/closure-request", response=DossierOut, tags=T_DOS, errors=[409]
    )
    async def delete_closure_request(request: web.Request) -> DossierOut:
        """Withdraw or refuse a closure request: the dossier goes back where it was."""
        await dossiers.withdraw_closure(request.app[DB], principal(request), _did(request))
        return await _view(request)

    @api.post("/dossiers/{dossier_id}/close", response=DossierOut, tags=T_DOS, errors=[409])
    async def post_close(request: web.Request) -> DossierOut:
        """Close the dossier ("Dossier clôturé")."""
        await dossiers.close(request.app[DB], principal(request), _did(request))
        return await _view(request)

    @api.get("/dossiers/{dossier_id}/history", response=list[HistoryEntry], tags=T_DOS)
    async def get_history(request: web.Request) -> list[HistoryEntry]:
        """The dossier's own history, from the audit log."""
        return await dossiers.history(request.app[DB], principal(request), _did(request))
