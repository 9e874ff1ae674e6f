"""Pydantic models of the téléconsultation routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, EmailStr, Field, field_validator, model_validator

from dossier.models import TeleconsultationStep
from dossier.schemas import UserRef


class GuestIn(BaseModel):
    """The patient or a relative, invited by e-mail and/or SMS."""

    name: str = Field(min_length=1, max_length=200)
    relation: Literal["patient", "relative"] = "patient"
    email: EmailStr | None = None
    mobile: str | None = Field(None, pattern=r"^\+?[0-9 .]{8,20}$")

    @model_validator(mode="after")
    def _reachable(self) -> GuestIn:
        if not self.email and not self.mobile:
            raise ValueError("an e-mail address or a mobile number is needed")
        return self


class PlanIn(BaseModel):
    scheduled_at: datetime
    duration_minutes: int = Field(30, ge=5, le=240)
    practitioner_ids: list[uuid.UUID] = Field(default_factory=list, max_length=10)
    nurse_id: uuid.UUID | None = None
    guests: list[GuestIn] = Field(default_factory=list, max_length=5)

    @field_validator("scheduled_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("a time zone is needed (ISO 8601 with offset)")
        return v


class RescheduleIn(BaseModel):
    scheduled_at: datetime
    duration_minutes: int | None = Field(None, ge=5, le=240)

    @field_validator("scheduled_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("a time zone is needed (ISO 8601 with offset)")
        return v


class CancelIn(BaseModel):
    reason: str = Field("", max_length=500)


class GuestOut(BaseModel):
    name: str
    relation: str
    email: str | None
    mobile: str | None


class Occupant(BaseModel):
    name: str
    kind: str


class RoomState(BaseModel):
    id: uuid.UUID
    title: str
    kind: str
    status: str
    scheduled_at: datetime | None
    label: str  # « Salle prévue le 08/12/2026 à 14:30 »
    count: int  # who is inside right now
    occupants: list[Occupant]
    teleconsultation_id: uuid.UUID | None


class TeleconsultationOut(BaseModel):
    id: uuid.UUID
    dossier_id: uuid.UUID
    room_id: uuid.UUID
    scheduled_at: datetime
    duration_minutes: int
    step: TeleconsultationStep
    step_label: str
    planned_by: UserRef | None
    practitioners: list[UserRef]
    nurse: UserRef | None
    guests: list[GuestOut]
    done_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str
