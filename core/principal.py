"""Who is making a request: a signed-in account or an invited guest."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Principal:
    kind: Literal["user", "guest"]
    subject_id: uuid.UUID
    label: str
    role: str  # practitioner | secretary | admin | guest
    session_id: str
    ip: str = ""
    delegates_for: tuple[uuid.UUID, ...] = field(default_factory=tuple)
    data: dict[str, object] = field(default_factory=dict)

    @property
    def is_user(self) -> bool:
        return self.kind == "user"

    @property
    def is_admin(self) -> bool:
        return self.kind == "user" and self.role == "admin"

    @property
    def user_id(self) -> uuid.UUID:
        """The account id; only for users (guests have none)."""
        assert self.kind == "user", "guests have no account"
        return self.subject_id
