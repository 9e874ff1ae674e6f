"""Request and response models of the dossier API (they feed /api/v1/openapi.json)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.accounts import User
from dossier.models import (
    CareOffer,
    DossierState,
    FormSide,
    FormStatus,
    InsStatus,
    Patient,
    RequestType,
    Sex,
)

Str100 = Field(default="", max_length=100)


# -- patients ---------------------------------------------------------------------------


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field("home", max_length=30)
    country: str = Field("FRANCE", max_length=100)
    city: str = Field("", max_length=100)
    postcode: str = Field("", max_length=10)
    street: str = Field("", max_length=200)
    line1: str = Field("", max_length=200)
    comment: str = Field("", max_length=300)
    valid_from: date | None = None


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["mobile", "phone", "email"]
    value: str = Field(min_length=3, max_length=254)


class PatientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    birth_name: str = Field(min_length=1, max_length=100)
    used_name: str = Str100
    first_name: str = Field(min_length=1, max_length=100)
    first_names: str = Field("", max_length=300)
    used_first_name: str = Str100
    sex: Sex
    birth_date: date
    birth_country: str = Field("FRANCE", max_length=100)
    birth_commune: str = Str100
    birth_postcode: str = Field("", max_length=10)
    birth_insee_code: str = Field("", pattern=r"^(\d{5}|2[AB]\d{3})?$")
    addresses: list[Address] = Field(default_factory=list, max_length=10)
    contacts: list[Contact] = Field(default_factory=list, max_length=10)
    ipp: str | None = Field(None, max_length=40)
    ins: str | None = Field(None, max_length=30)
    ins_status: InsStatus = InsStatus.provisional
    confirm: bool = False  # create even though look-alike identities exist

    @field_validator("birth_date")
    @classmethod
    def _not_future(cls, v: date) -> date:
        if v > date.today() or v.year < 1880:
            raise ValueError("birth date out of range")
        return v


class PatientOut(BaseModel):
    id: uuid.UUID
    ipp: str | None
    birth_name: str
    used_name: str
    first_name: str
    first_names: str
    used_first_name: str
    display_name: str
    sex: Sex
    birth_date: date
    birth_country: str
    birth_commune: str
    birth_postcode: str
    birth_insee_code: str
    ins: str | None
    ins_status: InsStatus
    ins_status_label: str
    addresses: list[dict[str, Any]]
    contacts: list[dict[str, Any]]

    @classmethod
    def of(cls, p: Patient) -> PatientOut:
        return cls(
            id=p.id,
            ipp=p.ipp,
            birth_name=p.birth_name,
            used_name=p.used_name,
            first_name=p.first_name,
            first_names=p.first_names,
            used_first_name=p.used_first_name,
            display_name=p.display_name,
            sex=p.sex,
            birth_date=p.birth_date,
            birth_country=p.birth_country,
            birth_commune=p.birth_commune,
            birth_postcode=p.birth_postcode,
            birth_insee_code=p.birth_insee_code,
            ins=p.ins,
            ins_status=p.ins_status,
            ins_status_label=p.ins_status.label,
            addresses=list(p.addresses or []),
            contacts=list(p.contacts or []),
        )


class PatientHit(PatientOut):
    match_rate: float  # "Taux de corresp.", 0–100


class PatientPatch(BaseModel):
    """Corrections of an identity; only the fields sent change."""

    model_config = ConfigDict(extra="forbid")
    birth_name: str | None = Field(None, min_length=1, max_length=100)
    used_name: str | None = Field(None, max_length=100)
    first_name: str | None = Field(None, min_length=1, max_length=100)
    first_names: str | None = Field(None, max_length=300)
    used_first_name: str | None = Field(None, max_length=100)
    sex: Sex | None = None
    birth_date: date | None = None
    birth_country: str | None = Field(None, max_length=100)
    birth_commune: str | None = Field(None, max_length=100)
    birth_postcode: str | None = Field(None, max_length=10)
    birth_insee_code: str | None = Field(None, pattern=r"^(\d{5}|2[AB]\d{3})?$")
    addresses: list[Address] | None = Field(None, max_length=10)
    contacts: list[Contact] | None = Field(None, max_length=10)
    ipp: str | None = Field(None, max_length=40)
    ins: str | None = Field(None, max_length=30)
    ins_status: InsStatus | None = None

    @field_validator("birth_date")
    @classmethod
    def _not_future(cls, v: date | None) -> date | None:
        if v is not None and (v > date.today() or v.year < 1880):
            raise ValueError("birth date out of range")
        return v


class PatientQuery(BaseModel):
    q: str | None = Field(None, min_length=2, max_length=200)
    birth_date: date | None = None
    ins: str | None = Field(None, max_length=30)
    ipp: str | None = Field(None, max_length=40)
    sex: Sex | None = None


# -- people -----------------------------------------------------------------------------


class UserRef(BaseModel):
    id: uuid.UUID
    name: str
    initials: str
    specialty: str = ""

    @classmethod
    def of(cls, u: User) -> UserRef:
        initials = (u.first_name[:1] + u.last_name[:1]).upper()
        return cls(id=u.id, name=u.display_name, initials=initials, specialty=u.specialty)


# -- care offers and request types ----------------------------------------------------


class CareOfferOut(BaseModel):
    id: uuid.UUID
    name: str
    specialty: str
    establishment: str
    address: str
    postcode: str
    city: str
    latitude: float | None
    longitude: float | None
    distance_km: float | None = None
    members: list[UserRef] = Field(default_factory=list)

    @classmethod
    def of(
        cls, o: CareOffer, members: list[User] | None = None, distance: float | None = None
    ) -> CareOfferOut:
        return cls(
            id=o.id,
            name=o.name,
            specialty=o.specialty,
            establishment=o.establishment,
            address=o.address,
            postcode=o.postcode,
            city=o.city,
            latitude=o.latitude,
            longitude=o.longitude,
            distance_km=distance,
            members=[UserRef.of(u) for u in members or []],
        )


class CareOfferQuery(BaseModel):
    q: str | None = Field(None, max_length=200)
    specialty: str | None = Field(None, max_length=100)
    establishment: str | None = Field(None, max_length=200)
    near: str | None = Field(None, max_length=300)  # address, postcode or commune
    radius_km: float = Field(50.0, gt=0, le=1000)


class CareOfferSearchOut(BaseModel):
    origin: dict[str, Any] | None  # where "near" was placed: name, postcode, lat, lon
    items: list[CareOfferOut]


class FacetsOut(BaseModel):
    specialties: list[str]
    establishments: list[str]


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
