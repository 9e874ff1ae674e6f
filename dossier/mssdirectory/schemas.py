"""Request and response models of the MSSanté directory route."""

from __future__ import annotations

from pydantic import BaseModel, Field

from dossier.models import MssDirectoryEntry
from dossier.mssdirectory.search import MAX_LIMIT


class MssDirectoryQuery(BaseModel):
    q: str | None = Field(None, max_length=200)  # words of a name, RPPS, specialty, commune
    rpps: str | None = Field(None, pattern=r"^\s*8?\d{11}\s*$")
    specialty: str | None = Field(None, max_length=150)
    commune: str | None = Field(None, max_length=100)  # a name or the start of a postcode
    limit: int = Field(20, ge=1, le=MAX_LIMIT)


class MssDirectoryEntryOut(BaseModel):
    address: str
    box_type: str  # PER (a person), ORG (a service), APP (an application)
    rpps: str
    last_name: str
    first_name: str
    profession: str
    specialty: str
    organization: str
    commune: str
    postcode: str

    @classmethod
    def of(cls, e: MssDirectoryEntry) -> MssDirectoryEntryOut:
        return cls(
            address=e.address,
            box_type=e.box_type,
            rpps=e.rpps,
            last_name=e.last_name,
            first_name=e.first_name,
            profession=e.profession,
            specialty=e.specialty,
            organization=e.organization,
            commune=e.commune,
            postcode=e.postcode,
        )
