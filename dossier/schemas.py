"""Models shared by the dossier's subpackages (they feed /api/v1/openapi.json)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel

from core.accounts import User

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
