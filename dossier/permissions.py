"""Who may see and change a dossier: the one place every route and write path asks.

Sides of a dossier:

- the **requester side**: the requesting practitioner, whoever created the dossier (a
  secretary "en délégation de" the requester), and the requester's delegates;
- the **expert side**, once the dossier has left ``draft`` (a draft is not sent yet): the
  members of the chosen care offers, the expert who took or signed it, and their delegates;
- **admins** see every dossier but write none of the medical parts.

Only practitioners sign: a secretary prepares, the practitioner signs. Someone who may not
see a dossier gets 404 (its existence is not revealed); someone who may see it but not do the
action gets 403. Both are written to the audit log as ``denied``.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Database
from core.errors import Forbidden, NotFound
from core.principal import Principal
from dossier.models import (
    CareOfferMember,
    Dossier,
    DossierRecipient,
    DossierState,
    Patient,
)


class Action(enum.StrEnum):
    read = "read"
    edit_request = "edit_request"  # consent, recipients, request type, requester form draft
    sign_request = "sign_request"
    edit_expertise = "edit_expertise"
    sign_expertise = "sign_expertise"
    request_closure = "request_closure"
    close = "close"


@dataclass(frozen=True)
class Access:
    """What one principal is to one dossier."""

    admin: bool = False
    requester_side: bool = False
    is_requester: bool = False  # the requesting practitioner in person
    expert_side: bool = False
    is_expert: bool = False  # a practitioner answering for a recipient care offer
    is_secretary: bool = False

    @property
    def can_see(self) -> bool:
        return self.admin or self.requester_side or self.expert_side

    def allows(self, action: Action) -> bool:
        if action is Action.read:
            return self.can_see
        if action is Action.edit_request:
            return self.requester_side
        if action is Action.sign_request:
            return self.is_requester
        if action in (Action.edit_expertise, Action.sign_expertise):
            return self.is_expert
        if action is Action.request_closure:
            return self.requester_side or self.is_expert
        if action is Action.close:
            return self.admin or self.requester_side or self.is_expert
        return False


def acting_ids(principal: Principal) -> list[uuid.UUID]:
    """The principal's own id and the practitioners they act for."""
    if not principal.is_user:
        return []
    return [principal.subject_id, *principal.delegates_for]


def _offer_member_dossiers(ids: list[uuid.UUID]) -> select:  # type: ignore[valid-type]
    return (
        select(DossierRecipient.dossier_id)
        .join(CareOfferMember, CareOfferMember.care_offer_id == DossierRecipient.care_offer_id)
        .where(CareOfferMember.user_id.in_(ids))
    )


def visible_dossiers(principal: Principal) -> ColumnElement[bool]:
    """A WHERE clause on ``Dossier`` selecting the dossiers the principal may see."""
    if principal.is_admin:
        return true()
    ids = acting_ids(principal)
    if not ids:
        return false()
    return or_(
        Dossier.requester_id.in_(ids),
        Dossier.created_by_id.in_(ids),
        and_(
            Dossier.state != DossierState.draft,
            or_(Dossier.expert_id.in_(ids), Dossier.id.in_(_offer_member_dossiers(ids))),
        ),
    )


def visible_patients(principal: Principal) -> ColumnElement[bool]:
    """A WHERE clause on ``Patient``: patients the principal (or those they act for) created,
    and the patients of the dossiers they may see (seed 002: "les patients pour lesquels
    l'utilisateur est identifié comme intervenant")."""
    if principal.is_admin:
        return true()
    ids = acting_ids(principal)
    if not ids:
        return false()
    return or_(
        Patient.created_by_id.in_(ids),
        Patient.id.in_(select(Dossier.patient_id).where(visible_dossiers(principal))),
    )


async def access_to(session: AsyncSession, principal: Principal, dossier: Dossier) -> Access:
    if not principal.is_user:
        return Access()
    me = principal.subject_id
    ids = acting_ids(principal)
    secretary = principal.role == "secretary"
    requester_side = (
        dossier.requester_id in ids or dossier.created_by_id == me or dossier.created_by_id in ids
    )
    is_requester = dossier.requester_id == me and not secretary
    expert_side = is_expert = False
    if dossier.state is not DossierState.draft:
        rows = await session.execute(
            select(CareOfferMember.user_id, CareOfferMember.role)
            .join(
                DossierRecipient,
                DossierRecipient.care_offer_id == CareOfferMember.care_offer_id,
            )
            .where(DossierRecipient.dossier_id == dossier.id, CareOfferMember.user_id.in_(ids))
        )
        members = list(rows)
        expert_side = bool(members) or dossier.expert_id in ids
        is_expert = not secretary and (
            dossier.expert_id == me or any(uid == me and role == "expert" for uid, role in members)
        )
    return Access(
        admin=principal.is_admin,
        requester_side=requester_side,
        is_requester=is_requester,
        expert_side=expert_side,
        is_expert=is_expert,
        is_secretary=secretary,
    )


async def can_see(session: AsyncSession, principal: Principal, dossier_id: uuid.UUID) -> bool:
    """For other packages (rooms on a dossier): may this principal see the dossier?"""
    dossier = await session.get(Dossier, dossier_id)
    if dossier is None:
        return False
    return (await access_to(session, principal, dossier)).can_see


async def require(
    session: AsyncSession,
    db: Database,
    principal: Principal,
    dossier_id: uuid.UUID,
    action: Action,
    *,
    for_update: bool | None = None,
) -> tuple[Dossier, Access]:
    """Load the dossier and check the action: 404 when invisible, 403 when not allowed.

    Writes lock the dossier's row (PostgreSQL) so that two changes of one dossier run one
    after the other. Refusals are audited in a transaction of their own (the caller's is
    rolled back).
    """
    if for_update is None:
        for_update = action is not Action.read
    from core import audit

    stmt = select(Dossier).where(Dossier.id == dossier_id)
    if for_update and db.dialect == "postgresql":
        stmt = stmt.with_for_update()
    dossier = (await session.execute(stmt)).scalar_one_or_none()
    if dossier is None:
        raise NotFound("No dossier with this id", code="dossier_not_found")
    acc = await access_to(session, principal, dossier)
    if not acc.can_see:
        await audit.record_now(
            db,
            f"dossier.{action.value}",
            actor=principal,
            object_type="dossier",
            object_id=dossier_id,
            outcome="denied",
        )
        raise NotFound("No dossier with this id", code="dossier_not_found")
    if not acc.allows(action):
        await audit.record_now(
            db,
            f"dossier.{action.value}",
            actor=principal,
            object_type="dossier",
            object_id=dossier_id,
            outcome="denied",
        )
        if action in (Action.sign_request, Action.sign_expertise) and acc.is_secretary:
            raise Forbidden(
                "A secretary prepares the dossier; the practitioner signs",
                code="secretary_cannot_sign",
            )
        raise Forbidden(f"You may not {action.value.replace('_', ' ')} on this dossier")
    return dossier, acc
