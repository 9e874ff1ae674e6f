"""Who may see and change a dossier: the one place every route and write path asks.

Sides of a dossier:

- the **requester side**: the requesting practitioner and the secretaries who *currently*
  hold a delegation from them. A secretary who created a dossier "en délégation de" the
  requester keeps it only as long as the delegation: having created it gives no right of its
  own (the delegation ends, her access ends, on both sides of the database);
- the **expert side**, once the dossier has left ``draft`` (a draft is not sent yet): the
  members of the chosen care offers, the expert who took or signed it, and their delegates;
- **admins** see every dossier but write none of the medical parts;
- **readers by number**: a practitioner who typed the dossier's number and the patient's
  birth date (seed 002 § 2.2, ``dossier/lookup.py``) holds a ``DossierGrant`` on that one
  dossier: they read it and its documents, and nothing else. The grant is personal (not
  extended to their delegates), does not make the patient's other dossiers or identity
  visible, and does not open the dossier's rooms (rooms are for the participants).

Only practitioners sign: a secretary prepares, the practitioner signs. Someone who may not
see a dossier gets 404 (its existence is not revealed); someone who may see it but not do the
action gets 403. Both are written to the audit log as ``denied``.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.db import Database, utcnow
from core.errors import Forbidden, NotFound
from core.principal import Principal
from dossier.models import (
    CareOfferMember,
    Dossier,
    DossierGrant,
    DossierRecipient,
    DossierState,
    GrantKind,
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
    reader: bool = False  # a read grant (consulted by number), on neither side

    @property
    def participant(self) -> bool:
        """On a side of the dossier, or an admin: may enter its rooms, send it, etc."""
        return self.admin or self.requester_side or self.expert_side

    @property
    def can_see(self) -> bool:
        return self.participant or self.reader

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


def visible_dossiers(principal: Principal, *, grants: bool = False) -> ColumnElement[bool]:
    """A WHERE clause on ``Dossier`` selecting the dossiers the principal takes part in;
    with ``grants``, also those they were given read access to (consulted by number)."""
    if principal.is_admin:
        return true()
    ids = acting_ids(principal)
    if not ids:
        return false()
    clauses = [
        # Not created_by: a secretary's rights end with her delegation.
        Dossier.requester_id.in_(ids),
        and_(
            Dossier.state != DossierState.draft,
            or_(Dossier.expert_id.in_(ids), Dossier.id.in_(_offer_member_dossiers(ids))),
        ),
    ]
    if grants:
        clauses.append(
            Dossier.id.in_(
                select(DossierGrant.dossier_id).where(DossierGrant.user_id == principal.subject_id)
            )
        )
    return or_(*clauses)


def visible_patients(principal: Principal) -> ColumnElement[bool]:
    """A WHERE clause on ``Patient``: patients the principal (or those they act for) created,
    and the patients of the dossiers they take part in (seed 002: "les patients pour lesquels
    l'utilisateur est identifié comme intervenant"). A dossier read by number does not count:
    it opens that dossier, "mais ne permet pas d'accéder à l'ensemble des dossiers du
    patient" (seed 002 § 2.2).

    A secretary's own creations follow her delegations: she keeps a patient she created only
    until a dossier is opened on it (then the dossier's requester decides, through the
    delegation), and only while she holds a delegation at all."""
    if principal.is_admin:
        return true()
    ids = acting_ids(principal)
    if not ids:
        return false()
    through_dossiers = Patient.id.in_(select(Dossier.patient_id).where(visible_dossiers(principal)))
    if principal.role != "secretary":
        return or_(Patient.created_by_id.in_(ids), through_dossiers)
    if not principal.delegates_for:
        return through_dossiers
    return or_(
        Patient.created_by_id.in_(list(principal.delegates_for)),
        and_(
            Patient.created_by_id == principal.subject_id,
            ~Patient.id.in_(select(Dossier.patient_id)),
        ),
        through_dossiers,
    )


def identity_holders(principal: Principal) -> ColumnElement[bool]:
    """A WHERE clause on ``Patient``: the identities the principal may change. The identity
    belongs to the requester side: the practitioner who created it, the requesters of the
    dossiers on that patient, and the secretaries currently delegated by them (and a
    secretary's own new identity until a dossier is opened on it). Not admins (they write no
    medical part), not the experts, not readers by number."""
    if principal.is_admin or not principal.is_user:
        return false()
    ids = acting_ids(principal)
    if principal.role == "secretary" and not principal.delegates_for:
        return false()
    created: ColumnElement[bool] = Patient.created_by_id.in_(ids)
    if principal.role == "secretary":
        created = or_(
            Patient.created_by_id.in_(list(principal.delegates_for)),
            and_(
                Patient.created_by_id == principal.subject_id,
                ~Patient.id.in_(select(Dossier.patient_id)),
            ),
        )
    return or_(
        created,
        Patient.id.in_(select(Dossier.patient_id).where(Dossier.requester_id.in_(ids))),
    )


async def access_to(session: AsyncSession, principal: Principal, dossier: Dossier) -> Access:
    if not principal.is_user:
        return Access()
    me = principal.subject_id
    ids = acting_ids(principal)
    secretary = principal.role == "secretary"
    # Not created_by: a secretary's rights on a dossier end with her delegation.
    requester_side = dossier.requester_id in ids
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
    reader = False
    if not (principal.is_admin or requester_side or expert_side):
        reader = await has_grant(session, dossier.id, me)
    return Access(
        admin=principal.is_admin,
        requester_side=requester_side,
        is_requester=is_requester,
        expert_side=expert_side,
        is_expert=is_expert,
        is_secretary=secretary,
        reader=reader,
    )


async def has_grant(session: AsyncSession, dossier_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    row = await session.execute(
        select(DossierGrant.id).where(
            DossierGrant.dossier_id == dossier_id, DossierGrant.user_id == user_id
        )
    )
    return row.first() is not None


async def grant_read(
    session: AsyncSession,
    dossier_id: uuid.UUID,
    user_id: uuid.UUID,
    kind: GrantKind = GrantKind.by_number,
) -> bool:
    """Give ``user_id`` read access to one dossier, in the caller's transaction; True when
    the grant is new (idempotent: two lookups at once leave one row)."""
    if await has_grant(session, dossier_id, user_id):
        return False
    try:
        async with session.begin_nested():
            session.add(
                DossierGrant(dossier_id=dossier_id, user_id=user_id, kind=kind, granted_at=utcnow())
            )
    except IntegrityError:
        return False
    return True


async def can_see(session: AsyncSession, principal: Principal, dossier_id: uuid.UUID) -> bool:
    """For rooms on a dossier: is this principal a participant of the dossier (a side, or an
    admin)? A reader by number reads the dossier but does not join or open its rooms."""
    dossier = await session.get(Dossier, dossier_id)
    if dossier is None:
        return False
    return (await access_to(session, principal, dossier)).participant


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
