"""Request and response models of the dossier routes: wizard, forms, closure, activity
view, history (they feed /api/v1/openapi.json)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dossier.careoffers.schemas import CareOfferOut
from dossier.identity.schemas import PatientOut
from dossier.models import (
    DossierState,
    FormSide,
    FormStatus,
    RequestType,
    Sex,
    TeleconsultationStep,
)
from dossier.schemas import UserRef


class RequestTypeOut(BaseModel):
    id: uuid.UUID
    code: str
    label: str
    specialty: str
    template: dict[str, Any]

    @classmethod
    def of(cls, rt: RequestType) -> RequestTypeOut:
        return cls(
            id=rt.id, code=rt.code, label=rt.label, specialty=rt.specialty, template=rt.template
        )


# -- dossier wizard -----------------------------------------------------------------------


class DossierCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient_id: uuid.UUID
    # A secretary names the practitioner they prepare the dossier for.
    requester_id: uuid.UUID | None = None
    urgent: bool = False


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    consent: bool
    comment: str = Field(min_length=1, max_length=2000)
    urgent: bool = False

    @field_validator("comment")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a comment is required")
        return v.strip()


class RecipientsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    care_offer_ids: list[uuid.UUID] = Field(min_length=1, max_length=10)


class RequestTypeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_type_id: uuid.UUID | None = None
    code: str | None = Field(None, max_length=60)


class FormValuesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    values: dict[str, Any] = Field(default_factory=dict)


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    values: dict[str, Any] | None = None  # last values to save before signing


class ClosureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=2000)


class FormPartOut(BaseModel):
    side: FormSide
    status: FormStatus
    fields: list[dict[str, Any]]
    values: dict[str, Any]
    saved_at: datetime | None
    saved_by: UserRef | None
    signed_at: datetime | None
    signed_by: UserRef | None


class ReceiptOut(BaseModel):
    user: UserRef
    first_read_at: datetime  # UTC
    label: str  # "Dossier lu par Dr X le 22/11/2026 à 21h34" (Europe/Paris)


class DossierOut(BaseModel):
    id: uuid.UUID
    number: str  # "TE-2026-000123"
    state: DossierState
    state_label: str
    urgent: bool
    patient: PatientOut
    requester: UserRef
    created_by: UserRef
    on_behalf_label: str | None  # "Sophie Durand, en délégation de Dr Claire Martin"
    consent: bool | None
    consent_comment: str
    consent_at: datetime | None
    request_type: RequestTypeOut | None
    recipients: list[CareOfferOut]
    expert: UserRef | None
    forms: list[FormPartOut]
    receipts: list[ReceiptOut]
    created_at: datetime
    modified_at: datetime
    submitted_at: datetime | None
    expertised_at: datetime | None
    closure_requested_at: datetime | None
    closure_requested_by: UserRef | None
    closed_at: datetime | None
    # "reader": read access given by the dossier's number and the patient's birth date
    my_side: Literal["requester", "expert", "admin", "reader"]
    actions: list[str]  # what I may do now


class ActivityQuery(BaseModel):
    state: DossierState | None = None
    # The step of the dossier's latest téléconsultation (« Téléconsultation planifiée » …)
    teleconsultation: TeleconsultationStep | None = None
    urgent: bool | None = None
    q: str | None = Field(None, min_length=2, max_length=200)
    sort: Literal["modified_at", "-modified_at", "patient", "-patient", "state", "-state"] = (
        "-modified_at"
    )
    page: int = Field(1, ge=1, le=100_000)
    per_page: int = Field(25, ge=1, le=100)


class ActivityRow(BaseModel):
    """One line of the activity view (seed 000 § 2.1)."""

    id: uuid.UUID
    number: str  # "TE-2026-000123"
    patient_name: str  # "Nom du dossier"
    patient_sex: Sex  # "Sexe"
    patient_birth_date: date
    requester: UserRef  # "Demandeur"
    created_by_label: str | None  # "en délégation de"
    modified_at: datetime  # "Date de modification"
    state: DossierState  # "Etape"
    state_label: str
    urgent: bool
    request_type_label: str | None
    by_number: bool = False  # read access given by number (seed 002 § 2.2), not a side
    actions: list[str]  # "Action"
    # The latest téléconsultation planned on the dossier: its step and time.
    teleconsultation_step: TeleconsultationStep | None = None
    teleconsultation_step_label: str | None = None
    teleconsultation_at: datetime | None = None


class ActivityPage(BaseModel):
    items: list[ActivityRow]
    total: int
    page: int
    per_page: int


class HistoryEntry(BaseModel):
    at: datetime
    actor_id: uuid.UUID | None
    actor_label: str
    action: str
    outcome: str
    ip: str
    details: dict[str, Any]
