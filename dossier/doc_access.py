"""Who may read or add documents of a dossier: the dossier's own permission rule, applied.

The rule (seed 002, issue 5 item 10): the requester, the recipients (members of the chosen
care offers), the expert, their delegates and administrators see a dossier. Refusals are
audited. Until the dossier package exposes its permission functions, the rule is written
here from the same tables; it then delegates to them.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.errors import Forbidden, NotFound
from core.principal import Principal


async def _participants(session: AsyncSession, dossier_id: uuid.UUID) -> set[uuid.UUID] | None:
    from dossier.models import CareOfferMember, Dossier, DossierRecipient

    d = await session.get(Dossier, dossier_id)
    if d is None:
        return None
    people = {d.requester_id, d.created_by_id}
    if d.expert_id:
        people.add(d.expert_id)
    rows = await session.execute(
        select(CareOfferMember.user_id)
        .join(DossierRecipient, DossierRecipient.care_offer_id == CareOfferMember.care_offer_id)
        .where(DossierRecipient.dossier_id == dossier_id)
    )
    people.update(rows.scalars())
    return people


async def can_see(session: AsyncSession, principal: Principal, dossier_id: uuid.UUID) -> bool:
    people = await _participants(session, dossier_id)
    if people is None:
        raise NotFound("Dossier introuvable.", code="dossier_not_found")
    if principal.is_admin:
        return True
    if not principal.is_user:
        return False
    return principal.subject_id in people or any(p in people for p in principal.delegates_for)


async def _require(
    session: AsyncSession, principal: Principal, dossier_id: uuid.UUID, action: str
) -> None:
    if await can_see(session, principal, dossier_id):
        return
    # The caller's transaction will roll back: the refusal is written in one of its own.
    async with AsyncSession(session.bind) as apart:
        audit.record(
            apart,
            action,
            actor=principal,
            object_type="dossier",
            object_id=dossier_id,
            outcome="denied",
        )
        await apart.commit()
    raise Forbidden("Vous n'avez pas accès à ce dossier.", code="dossier_forbidden")


async def require_document_read(
    session: AsyncSession, principal: Principal, dossier_id: uuid.UUID
) -> None:
    await _require(session, principal, dossier_id, "document.read")


async def require_document_write(
    session: AsyncSession, principal: Principal, dossier_id: uuid.UUID
) -> None:
    await _require(session, principal, dossier_id, "document.add")
