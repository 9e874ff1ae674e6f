"""HTTP routes of téléconsultations planned on a dossier and of the dossier's rooms; they
only translate to :mod:`dossier.teleconsult.actions`."""

from __future__ import annotations

import uuid

from aiohttp import web

from core.auth import principal
from core.context import LIMITER
from core.errors import TooManyRequests
from dossier.sending.routes import SEND_WINDOW, SENDS_PER_WINDOW
from dossier.teleconsult import actions, report
from dossier.teleconsult.schemas import (
    CancelIn,
    PlanIn,
    ReportIn,
    RescheduleIn,
    RoomState,
    SendReportIn,
    SendReportOut,
    TeleconsultationOut,
)
from dossier.web import RouteTable

T_TC = ["teleconsultations"]
routes = RouteTable()


def _did(request: web.Request) -> uuid.UUID:
    return uuid.UUID(request.match_info["dossier_id"])


def _tid(request: web.Request) -> uuid.UUID:
    return uuid.UUID(request.match_info["teleconsultation_id"])


@routes.post(
    "/dossiers/{dossier_id}/teleconsultations",
    body=PlanIn,
    response=TeleconsultationOut,
    status=201,
    tags=T_TC,
    errors=[403, 404, 422, 429],
)
async def plan_teleconsultation(request: web.Request, body: PlanIn) -> TeleconsultationOut:
    """« Planifier une téléconsultation »: room, invitations (e-mail/SMS), .ics, reminders."""
    return await actions.plan(request.app, principal(request), _did(request), body)


@routes.get(
    "/dossiers/{dossier_id}/teleconsultations",
    response=list[TeleconsultationOut],
    tags=T_TC,
    errors=[403, 404],
)
async def list_teleconsultations(request: web.Request) -> list[TeleconsultationOut]:
    """The dossier's téléconsultations, planned, carried out or cancelled."""
    return await actions.list_for_dossier(request.app, principal(request), _did(request))


@routes.get("/dossiers/{dossier_id}/rooms", response=list[RoomState], tags=T_TC, errors=[404])
async def list_dossier_rooms(request: web.Request) -> list[RoomState]:
    """The dossier's open rooms: « Salle prévue le … à … », who is inside now."""
    return await actions.dossier_rooms(request.app, principal(request), _did(request))


@routes.post(
    "/teleconsultations/{teleconsultation_id}/reschedule",
    body=RescheduleIn,
    response=TeleconsultationOut,
    tags=T_TC,
    errors=[403, 404, 409, 422, 429],
)
async def reschedule_teleconsultation(
    request: web.Request, body: RescheduleIn
) -> TeleconsultationOut:
    """Move the appointment; everyone is told (new links, updated .ics)."""
    return await actions.reschedule(request.app, principal(request), _tid(request), body)


@routes.post(
    "/teleconsultations/{teleconsultation_id}/cancel",
    body=CancelIn,
    response=TeleconsultationOut,
    tags=T_TC,
    errors=[403, 404, 409],
)
async def cancel_teleconsultation(request: web.Request, body: CancelIn) -> TeleconsultationOut:
    """Cancel the appointment; the room closes and everyone is told."""
    return await actions.cancel(request.app, principal(request), _tid(request), body.reason)


@routes.post(
    "/teleconsultations/{teleconsultation_id}/done",
    response=TeleconsultationOut,
    tags=T_TC,
    errors=[403, 404, 409],
)
async def teleconsultation_done(request: web.Request) -> TeleconsultationOut:
    """« Téléconsultation réalisée »."""
    return await actions.mark_done(request.app, principal(request), _tid(request))


@routes.post(
    "/teleconsultations/{teleconsultation_id}/report",
    body=ReportIn,
    response=TeleconsultationOut,
    status=201,
    tags=T_TC,
    errors=[403, 404, 409, 422],
)
async def sign_teleconsultation_report(request: web.Request, body: ReportIn) -> TeleconsultationOut:
    """« Signer le compte-rendu »: the consultation report, signed (PAdES) and filed in the
    dossier; the téléconsultation becomes « Compte-rendu signé »."""
    return await report.sign_report(request.app, principal(request), _tid(request), body)


@routes.post(
    "/teleconsultations/{teleconsultation_id}/report/send",
    body=SendReportIn,
    response=SendReportOut,
    tags=T_TC,
    errors=[403, 404, 409, 422, 429, 502],
)
async def send_teleconsultation_report(request: web.Request, body: SendReportIn) -> SendReportOut:
    """« Envoyer le compte-rendu »: to the patient (coffre-fort: link + SMS code) and to the
    médecin traitant by MSSanté."""
    p = principal(request)
    if not await request.app[LIMITER].hit(
        f"send:{p.subject_id}", limit=SENDS_PER_WINDOW, window=SEND_WINDOW
    ):
        raise TooManyRequests(
            "Trop d'envois en peu de temps ; réessayez dans quelques minutes.",
            code="send_rate_limited",
            retry_after=SEND_WINDOW,
        )
    return await report.send_report(request.app, p, _tid(request), body)
