"""Pydantic models of the RCP (e-Staff) routes."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from dossier.models import RcpItemStatus, RcpStatus
from dossier.schemas import UserRef


def _aware(v: datetime) -> datetime:
    if v.tzinfo is None:
        raise ValueError("a time zone is needed (ISO 8601 with offset)")
    return v


class AgendaItemIn(BaseModel):
    dossier_id: uuid.UUID
    question: str = Field("", max_length=2000)  # « Question posée »


class ScheduleIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    scheduled_at: datetime
    duration_minutes: int = Field(60, ge=10, le=480)
    # « Responsable de la réunion »; none: the one who plans it.
    lead_id: uuid.UUID | None = None
    invitee_ids: list[uuid.UUID] = Field(default_factory=list, max_length=40)
    agenda: list[AgendaItemIn] = Field(min_length=1, max_length=30)

    _v = field_validator("scheduled_at")(_aware)


class RescheduleIn(BaseModel):
    scheduled_at: datetime
    duration_minutes: int | None = Field(None, ge=10, le=480)

    _v = field_validator("scheduled_at")(_aware)


class CancelIn(BaseModel):
    reason: str = Field("", max_length=500)


class AddItemIn(AgendaItemIn):
    """« Inscrire en RCP »: add a dossier to a planned meeting's agenda."""


class CurrentIn(BaseModel):
    """« Dossier suivant » (no item) or the item chosen in the agenda."""

    item_id: uuid.UUID | None = None


class FicheIn(BaseModel):
    question: str = Field(max_length=2000)
    proposal: str = Field(max_length=8000)  # « Proposition thérapeutique / avis de la RCP »
    present: list[str] = Field(default_factory=list, max_length=60)

    @field_validator("present")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        out = [n.strip() for n in v if n.strip()]
        if any(len(n) > 200 for n in out):
            raise ValueError("a name is at most 200 characters")
        return list(dict.fromkeys(out))


class ItemOut(BaseModel):
    id: uuid.UUID
    position: int
    dossier_id: uuid.UUID
    number: str
    # The patient as the dossier's participants see it; empty for whoever may not read it.
    patient: str
    question: str
    proposal: str
    present: list[str]
    status: RcpItemStatus
    status_label: str
    signed_at: datetime | None
    signed_by: UserRef | None
    document_id: uuid.UUID | None


class MeetingOut(BaseModel):
    id: uuid.UUID
    title: str
    scheduled_at: datetime
    duration_minutes: int
    status: RcpStatus
    status_label: str
    room_id: uuid.UUID
    lead: UserRef | None
    planned_by: UserRef | None
    invitees: list[UserRef]
    items: list[ItemOut]
    current_item_id: uuid.UUID | None
    my_role: str  # lead | invitee | admin
    cancelled_at: datetime | None
    cancel_reason: str


class MeetingSummary(BaseModel):
    id: uuid.UUID
    title: str
    scheduled_at: datetime
    duration_minutes: int
    status: RcpStatus
    status_label: str
    room_id: uuid.UUID
    lead: UserRef | None
    items: int
    signed: int


class CurrentOut(BaseModel):
    """What every participant of the room is shown: no patient data (the page reads the
    meeting, access-checked, for the details)."""

    meeting_id: uuid.UUID
    item_id: uuid.UUID | None
    position: int | None
    dossier_id: uuid.UUID | None
    number: str | None
