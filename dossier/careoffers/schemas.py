"""Request and response models of the care-offer directory routes."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field

from core.accounts import User
from dossier.models import (
    CareOffer,
)
from dossier.schemas import UserRef

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


class CommuneQuery(BaseModel):
    postcode: str | None = Field(None, pattern=r"^\d{5}$")
    insee: str | None = Field(None, pattern=r"^(\d{5}|2[ABab]\d{3})$")


class CommuneOut(BaseModel):
    insee: str
    name: str
    postcodes: list[str]
    kind: str  # COM, ARM, COMD (delegated), COMA (associated), OLD (former code)
    parent: str  # the current commune of a delegated, associated or former one
