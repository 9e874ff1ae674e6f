"""Who is making a request: a signed-in account or an invited guest.

Build one with :meth:`Principal.for_user` or :meth:`Principal.for_guest` (or
:func:`for_session` from a stored session), never field by field: the role, label and
delegations of an account are read off it in one place.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from core.accounts import User
    from core.sessions import SessionData

GUEST_LABEL = "Invité"


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

    @classmethod
    def for_user(
        cls,
        user: User,
        *,
        session_id: str = "",
        ip: str = "",
        delegates_for: Iterable[uuid.UUID] = (),
        data: dict[str, object] | None = None,
    ) -> Principal:
        """An account acting (``delegates_for``: the practitioners a secretary acts for)."""
        return cls(
            kind="user",
            subject_id=user.id,
            label=user.display_name,
            role=user.role.value,
            session_id=session_id,
            ip=ip,
            delegates_for=tuple(delegates_for),
            data=dict(data or {}),
        )

    @classmethod
    def for_guest(
        cls,
        subject_id: uuid.UUID,
        label: str = GUEST_LABEL,
        *,
        session_id: str = "",
        ip: str = "",
        data: dict[str, object] | None = None,
    ) -> Principal:
        """A guest who came through an invitation link (``subject_id``: the guest's own id,
        one per use of the link)."""
        return cls(
            kind="guest",
            subject_id=subject_id,
            label=label,
            role="guest",
            session_id=session_id,
            ip=ip,
            data=dict(data or {}),
        )

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


async def for_session(db: AsyncSession, s: SessionData, *, ip: str = "") -> Principal | None:
    """The principal of a stored session; None when its account is gone or deactivated."""
    if s.kind == "guest":
        label = str(s.data.get("label", GUEST_LABEL))
        return Principal.for_guest(s.subject_id, label, session_id=s.id, ip=ip, data=s.data)
    from core import accounts

    user = await db.get(accounts.User, s.subject_id)
    if user is None or not user.active:
        return None
    delegates = await accounts.delegators_of(db, user.id)
    return Principal.for_user(user, session_id=s.id, ip=ip, delegates_for=delegates, data=s.data)
