"""Request and response models of the patient routes (they feed /api/v1/openapi.json)."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dossier.identity.ins import IdentityDocument, InsOid, allowed_targets, exchangeable_ins
from dossier.models import (
    IdentityStatusChange,
    InsStatus,
    Patient,
    Sex,
)

Str100 = Field(default="", max_length=100)

# Control and format characters (a right-to-left override U+202E, a zero-width joiner, a
# line separator…) have no place in an identity: they disguise it on screen and break the
# report's PDF. Ordinary spaces (category Zs) stay.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def clean_identity_text(value: str) -> str:
    """NFC-normalise one identity text; refuse control and format characters."""
    value = unicodedata.normalize("NFC", value)
    for ch in value:
        if unicodedata.category(ch) in _REFUSED_CATEGORIES:
            raise ValueError(
                f"control or format character U+{ord(ch):04X} is not allowed in an identity"
            )
    return value


class IdentityText(BaseModel):
    """Base of the identity schemas: every text field goes through
    :func:`clean_identity_text` (a 422 naming the field otherwise)."""

    @field_validator("*", mode="after")
    @classmethod
    def _clean_text(cls, v: Any) -> Any:
        return clean_identity_text(v) if type(v) is str else v  # not the StrEnums


# -- patients ---------------------------------------------------------------------------


class Address(IdentityText):
    model_config = ConfigDict(extra="forbid")
    type: str = Field("home", max_length=30)
    country: str = Field("FRANCE", max_length=100)
    city: str = Field("", max_length=100)
    postcode: str = Field("", max_length=10)
    street: str = Field("", max_length=200)
    line1: str = Field("", max_length=200)
    comment: str = Field("", max_length=300)
    valid_from: date | None = None


class Contact(IdentityText):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["mobile", "phone", "email"]
    value: str = Field(min_length=3, max_length=254)


class PatientIn(IdentityText):
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
    ins_oid: InsOid | None = None  # NIR by default when an INS is given
    ins_status: InsStatus = InsStatus.provisional
    # The evidence a status above provisional rests on (RNIV): the INSi teleservice returned
    # this INS; a high-trust identity document was checked.
    insi: bool = False
    identity_document: IdentityDocument | None = None
    status_reason: str = Field("", max_length=500)
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
    ins_oid: str | None
    ins_oid_label: str
    ins_status: InsStatus
    ins_status_label: str
    first_names_list: list[str]
    identity_document: str
    identity_document_label: str
    insi_checked_at: datetime | None
    status_targets: list[InsStatus]  # the statuses the RNIV allows next
    addresses: list[dict[str, Any]]
    contacts: list[dict[str, Any]]

    @classmethod
    def of(cls, p: Patient, *, exchange: bool = False) -> PatientOut:
        """The identity as the API gives it. ``exchange``: as it leaves the requester side
        (the experts' view of a dossier, any export): the INS and its OID only when the
        identity is qualified (RNIV)."""
        ins = exchangeable_ins(p.ins_status, p.ins) if exchange else p.ins
        oid = p.ins_oid if ins else None
        doc = p.identity_document or ""
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
            ins=ins,
            ins_oid=oid,
            ins_oid_label=InsOid(oid).label if oid in set(InsOid) else "",
            ins_status=p.ins_status,
            ins_status_label=p.ins_status.label,
            first_names_list=(p.first_names or p.first_name).split(),
            identity_document="" if exchange else doc,
            identity_document_label=(
                IdentityDocument(doc).label if doc in set(IdentityDocument) and not exchange else ""
            ),
            insi_checked_at=None if exchange else p.insi_checked_at,
            status_targets=[] if exchange else allowed_targets(p.ins_status),
            addresses=list(p.addresses or []),
            contacts=list(p.contacts or []),
        )


class PatientHit(PatientOut):
    match_rate: float  # "Taux de corresp.", 0–100


class PatientPatch(IdentityText):
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
    ins_oid: InsOid | None = None
    # Refused (422 status_change_route): the status moves with POST /patients/{id}/status.
    ins_status: InsStatus | None = None
    # Why the strict traits change (names, sex, birth date and place, INS): required then,
    # kept in the audit log ("Motif de la modification").
    reason: str | None = Field(None, max_length=500)

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


class StatusIn(BaseModel):
    """A move of the identity status (RNIV), with its reason and the evidence of this step."""

    model_config = ConfigDict(extra="forbid")
    status: InsStatus
    reason: str = Field(min_length=1, max_length=500)
    insi: bool = False  # the INSi teleservice returned this identity's INS for its traits
    identity_document: IdentityDocument | None = None  # the high-trust document checked


class StatusChangeOut(BaseModel):
    from_status: InsStatus | None
    from_label: str
    to_status: InsStatus
    to_label: str
    changed_by: str
    changed_at: datetime
    reason: str
    insi: bool
    identity_document: str
    identity_document_label: str

    @classmethod
    def of(cls, r: IdentityStatusChange) -> StatusChangeOut:
        doc = str((r.evidence or {}).get("document") or "")
        return cls(
            from_status=r.from_status,
            from_label=r.from_status.label if r.from_status else "",
            to_status=r.to_status,
            to_label=r.to_status.label,
            changed_by=r.changed_by_label,
            changed_at=r.changed_at,
            reason=r.reason,
            insi=bool((r.evidence or {}).get("insi")),
            identity_document=doc,
            identity_document_label=(
                IdentityDocument(doc).label if doc in set(IdentityDocument) else ""
            ),
        )


# -- lookup by number --------------------------------------------------------------------


class LookupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(min_length=1, max_length=40, examples=["TE-2026-000123"])
    birth_date: date


class LookupOut(BaseModel):
    dossier_id: uuid.UUID
