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


class ReportIn(BaseModel):
    """The consultation report's form (« Compte-rendu de téléconsultation »)."""

    reason: str = Field(min_length=1, max_length=4000)  # Motif
    findings: str = Field(min_length=1, max_length=8000)  # Examen clinique / constatations
    conclusion: str = Field(min_length=1, max_length=4000)
    # Prescriptions: a document of the dossier (chosen or just uploaded), appended to the PDF.
    prescription_document_id: uuid.UUID | None = None
    gp_name: str = Field("", max_length=200)  # Médecin traitant
    gp_mss: EmailStr | None = None  # his MSSanté address (dossier or directory)

    @field_validator("reason", "findings", "conclusion")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v.strip()


class SendReportIn(BaseModel):
    to_patient: bool = True  # vault: link by e-mail, code by SMS
    to_gp: bool = True  # MSSanté
    patient_email: EmailStr | None = None  # default: the patient invited to the call
    patient_phone: str | None = Field(None, pattern=r"^\+?[0-9 .]{8,20}$")
    gp_mss: EmailStr | None = None  # default: the one given in the report
    message: str = Field("", max_length=2000)


class SendReportOut(BaseModel):
    sent_to: list[str]  # "vault:<e-mail>", "mss:<address>"
    vault_expires_at: datetime | None = None


class ReportSent(BaseModel):
    channel: str
    to: str
    at: datetime


class ReportOut(BaseModel):
    reason: str
    findings: str
    conclusion: str
    prescription_document_id: uuid.UUID | None
    gp_name: str
    gp_mss: str
    document_id: uuid.UUID | None
    signed_by: UserRef | None
    signed_at: datetime | None
    sent: list[ReportSent]


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
    report: ReportOut | None = None
