"""HTTP routes of the dossier's life: request types, the creation wizard, forms and their
signatures, closure, activity view and history. They only translate to the actions of
:mod:`dossier.workflow.dossiers`."""

from __future__ import annotations

import uuid

from aiohttp import web

from core.auth import principal
from core.context import DB
from core.errors import NotFound
from dossier.models import FormSide
from dossier.schemas import UserRef
from dossier.web import RouteTable
from dossier.workflow import dossiers
from dossier.workflow.schemas import (
    ActivityPage,
    ActivityQuery,
    ClosureIn,
    ConsentIn,
    DossierCreate,
    DossierOut,
    FormValuesIn,
    HistoryEntry,
    RecipientsIn,
    RequestTypeIn,
    RequestTypeOut,
    SignIn,
)

T_DOS = ["dossiers"]
routes = RouteTable()


def _side(request: web.Request) -> FormSide:
    try:
        return FormSide(request.match_info["side"])
    except ValueError:
        raise NotFound("The side is 'requester' or 'expert'", code="unknown_side") from None


def _did(request: web.Request) -> uuid.UUID:
    return uuid.UUID(request.match_info["dossier_id"])


@routes.get("/request-types", response=list[RequestTypeOut], tags=T_DOS)
async def list_request_types(request: web.Request) -> list[RequestTypeOut]:
    """The request types ("type de demande") and their form templates."""
    return [RequestTypeOut.of(rt) for rt in await dossiers.request_types(request.app[DB])]


# -- dossiers --------------------------------------------------------------------------


@routes.get("/dossiers/requesters", response=list[UserRef], tags=T_DOS)
async def list_requesters(request: web.Request) -> list[UserRef]:
    """Whom I may open a dossier for: myself (practitioner) or those I act for
    (secretary, "en délégation de")."""
    users = await dossiers.requesters_for(request.app[DB], principal(request))
    return [UserRef.of(u) for u in users]


@routes.get("/dossiers", query=ActivityQuery, response=ActivityPage, tags=T_DOS)
async def list_dossiers(request: web.Request, query: ActivityQuery) -> ActivityPage:
    """The activity view: my dossiers, urgent first."""
    return await dossiers.activity(request.app[DB], principal(request), query)


async def _view(request: web.Request) -> DossierOut:
    """The dossier as it is after the caller's change."""
    return await dossiers.open_dossier(
        request.app[DB], principal(request), _did(request), after_write=True
    )


@routes.post(
    "/dossiers", body=DossierCreate, response=DossierOut, status=201, tags=T_DOS, errors=[404]
)
async def create_dossier(request: web.Request, body: DossierCreate) -> DossierOut:
    """Open a draft dossier for a patient (the wizard's first step)."""
    p = principal(request)
    did = await dossiers.create_dossier(
        request.app[DB],
        p,
        patient_id=body.patient_id,
        requester_id=body.requester_id,
        urgent=body.urgent,
    )
    return await dossiers.open_dossier(request.app[DB], p, did, after_write=True)


@routes.get("/dossiers/{dossier_id}", response=DossierOut, tags=T_DOS)
async def get_dossier(request: web.Request) -> DossierOut:
    """Open a dossier (an expert's first opening leaves a read receipt)."""
    return await dossiers.open_dossier(request.app[DB], principal(request), _did(request))


@routes.put(
    "/dossiers/{dossier_id}/consent",
    body=ConsentIn,
    response=DossierOut,
    tags=T_DOS,
    errors=[409],
)
async def put_consent(request: web.Request, body: ConsentIn) -> DossierOut:
    """Wizard step: consent (required yes/no and comment), urgent flag."""
    await dossiers.set_consent(
        request.app[DB],
        principal(request),
        _did(request),
        consent=body.consent,
        comment=body.comment,
        urgent=body.urgent,
    )
    return await _view(request)


@routes.put(
    "/dossiers/{dossier_id}/recipients",
    body=RecipientsIn,
    response=DossierOut,
    tags=T_DOS,
    errors=[409],
)
async def put_recipients(request: web.Request, body: RecipientsIn) -> DossierOut:
    """Wizard step: the care offers the dossier is addressed to."""
    await dossiers.set_recipients(
        request.app[DB], principal(request), _did(request), body.care_offer_ids
    )
    return await _view(request)


@routes.put(
    "/dossiers/{dossier_id}/request-type",
    body=RequestTypeIn,
    response=DossierOut,
    tags=T_DOS,
    errors=[409],
)
async def put_request_type(request: web.Request, body: RequestTypeIn) -> DossierOut:
    """Wizard step: the request type (its form)."""
    await dossiers.set_request_type(
        request.app[DB],
        principal(request),
        _did(request),
        request_type_id=body.request_type_id,
        code=body.code,
    )
    return await _view(request)


@routes.put(
    "/dossiers/{dossier_id}/forms/{side}",
    body=FormValuesIn,
    response=DossierOut,
    tags=T_DOS,
    errors=[409],
)
async def put_form(request: web.Request, body: FormValuesIn) -> DossierOut:
    """Save a draft of the requester or expert part ("Enregistrer")."""
    await dossiers.save_form(
        request.app[DB], principal(request), _did(request), _side(request), body.values
    )
    return await _view(request)


@routes.post(
    "/dossiers/{dossier_id}/forms/{side}/sign",
    body=SignIn,
    response=DossierOut,
    tags=T_DOS,
    errors=[409],
)
async def sign_form(request: web.Request, body: SignIn) -> DossierOut:
    """Sign a part: validated, then locked for good; the dossier moves on."""
    await dossiers.sign_form(
        request.app[DB], principal(request), _did(request), _side(request), body.values
    )
    return await _view(request)


@routes.post(
    "/dossiers/{dossier_id}/closure-request",
    body=ClosureIn,
    response=DossierOut,
    tags=T_DOS,
    errors=[409],
)
async def post_closure_request(request: web.Request, body: ClosureIn) -> DossierOut:
    """Ask to close the dossier ("Demande clôture")."""
    await dossiers.request_closure(request.app[DB], principal(request), _did(request), body.reason)
    return await _view(request)


@routes.delete(
    "/dossiers/{dossier_id}/closure-request", response=DossierOut, tags=T_DOS, errors=[409]
)
async def delete_closure_request(request: web.Request) -> DossierOut:
    """Withdraw or refuse a closure request: the dossier goes back where it was."""
    await dossiers.withdraw_closure(request.app[DB], principal(request), _did(request))
    return await _view(request)


@routes.post("/dossiers/{dossier_id}/close", response=DossierOut, tags=T_DOS, errors=[409])
async def post_close(request: web.Request) -> DossierOut:
    """Close the dossier ("Dossier clôturé")."""
    await dossiers.close(request.app[DB], principal(request), _did(request))
    return await _view(request)


@routes.get("/dossiers/{dossier_id}/history", response=list[HistoryEntry], tags=T_DOS)
async def get_history(request: web.Request) -> list[HistoryEntry]:
    """The dossier's own history, from the audit log."""
    return await dossiers.history(request.app[DB], principal(request), _did(request))
