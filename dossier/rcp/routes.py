"""HTTP routes of RCP (e-Staff) meetings; they only translate to :mod:`dossier.rcp.actions`."""

from __future__ import annotations

import uuid

from aiohttp import web

from core.auth import principal
from dossier.rcp import actions
from dossier.rcp.schemas import (
    CancelIn,
    CurrentIn,
    CurrentOut,
    FicheIn,
    ItemOut,
    MeetingOut,
    MeetingSummary,
    RescheduleIn,
    ScheduleIn,
)
from dossier.web import RouteTable

T_RCP = ["rcp"]
routes = RouteTable()


def _mid(request: web.Request) -> uuid.UUID:
    return uuid.UUID(request.match_info["meeting_id"])


def _iid(request: web.Request) -> uuid.UUID:
    return uuid.UUID(request.match_info["item_id"])


@routes.post(
    "/rcp-meetings",
    body=ScheduleIn,
    response=MeetingOut,
    status=201,
    tags=T_RCP,
    errors=[403, 404, 422],
)
async def schedule_rcp(request: web.Request, body: ScheduleIn) -> MeetingOut:
    """« Planifier une RCP »: agenda of dossiers, lead, invited professionals, e-Staff room."""
    return await actions.schedule(request.app, principal(request), body)


@routes.get("/rcp-meetings", response=list[MeetingSummary], tags=T_RCP)
async def list_rcp(request: web.Request) -> list[MeetingSummary]:
    """The RCPs I lead, planned or am invited to."""
    return await actions.list_meetings(request.app, principal(request))


@routes.get("/rcp-meetings/{meeting_id}", response=MeetingOut, tags=T_RCP, errors=[404])
async def get_rcp(request: web.Request) -> MeetingOut:
    """The meeting with its agenda (patients shown to those who may read the dossier)."""
    return await actions.get_meeting(request.app, principal(request), _mid(request))


@routes.post(
    "/rcp-meetings/{meeting_id}/reschedule",
    body=RescheduleIn,
    response=MeetingOut,
    tags=T_RCP,
    errors=[403, 404, 409, 422],
)
async def reschedule_rcp(request: web.Request, body: RescheduleIn) -> MeetingOut:
    """Move the meeting; everyone gets the updated .ics."""
    return await actions.reschedule(request.app, principal(request), _mid(request), body)


@routes.post(
    "/rcp-meetings/{meeting_id}/cancel",
    body=CancelIn,
    response=MeetingOut,
    tags=T_RCP,
    errors=[403, 404, 409],
)
async def cancel_rcp(request: web.Request, body: CancelIn) -> MeetingOut:
    """Cancel the meeting; its room closes, everyone is told."""
    return await actions.cancel(request.app, principal(request), _mid(request), body.reason)


@routes.post(
    "/rcp-meetings/{meeting_id}/current",
    body=CurrentIn,
    response=CurrentOut,
    tags=T_RCP,
    errors=[403, 404, 409],
)
async def set_current_rcp_item(request: web.Request, body: CurrentIn) -> CurrentOut:
    """« Dossier suivant » or the dossier chosen: shown to everyone in the room."""
    return await actions.set_current(request.app, principal(request), _mid(request), body.item_id)


@routes.put(
    "/rcp-items/{item_id}/fiche",
    body=FicheIn,
    response=ItemOut,
    tags=T_RCP,
    errors=[403, 404, 409, 422],
)
async def save_rcp_fiche(request: web.Request, body: FicheIn) -> ItemOut:
    """The « fiche RCP »: question, proposal, participants present (draft)."""
    return await actions.save_fiche(request.app, principal(request), _iid(request), body)


@routes.post(
    "/rcp-items/{item_id}/sign",
    response=ItemOut,
    tags=T_RCP,
    errors=[403, 404, 409, 422],
)
async def sign_rcp_fiche(request: web.Request) -> ItemOut:
    """The lead signs the fiche (PAdES); it is filed into the dossier."""
    return await actions.sign_fiche(request.app, principal(request), _iid(request))
