"""Who may read or add documents of a dossier, from the dossier's own permission rule.

:mod:`dossier.permissions` decides what a principal is to a dossier. For documents: whoever
may see the dossier may read its documents; the requester side and the expert side (not an
administrator, who writes none of the medical parts) may add them. As for the dossier
itself, someone who may not see it gets 404 (its existence is not revealed) and someone who
may see it but not act gets 403; both refusals are audited.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.errors import Forbidden, NotFound
from core.principal import Principal
from dossier.models import Dossier
from dossier.permissions import Access, access_to


async def _denied(
    session: AsyncSession, principal: Principal, dossier_id: uuid.UUID, action: str
) -> None:
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


async def _access(
    session: AsyncSession, principal: Principal, dossier_id: uuid.UUID, action: str
) -> Access:
    dossier = await session.get(Dossier, dossier_id)
    if dossier is None:
        raise NotFound("No dossier with this id", code="dossier_not_found")
    acc = await access_to(session, principal, dossier)
    if not acc.can_see:
        await _denied(session, principal, dossier_id, action)
        raise NotFound("No dossier with this id", code="dossier_not_found")
    return acc


async def require_document_read(
    session: AsyncSession, principal: Principal, dossier_id: uuid.UUID
) -> None:
    await _access(session, principal, dossier_id, "document.read")


async def require_document_write(
    session: AsyncSession, principal: Principal, dossier_id: uuid.UUID
) -> None:
    acc = await _access(session, principal, dossier_id, "document.add")
    if not (acc.requester_side or acc.expert_side):
        await _denied(session, principal, dossier_id, "document.add")
        raise Forbidden(
            "Seuls les intervenants du dossier y ajoutent des documents.",
            code="document_write_forbidden",
        )


async def require_document_send(
    session: AsyncSession, principal: Principal, dossier_id: uuid.UUID
) -> None:
    """Sending a document out of Consilium (MSSanté, vault) is for the dossier's participants:
    a reader by number consults, he does not forward."""
    acc = await _access(session, principal, dossier_id, "dossier.send")
    if not acc.participant:
        await _denied(session, principal, dossier_id, "dossier.send")
        raise Forbidden(
            "Seuls les intervenants du dossier envoient ses documents.",
            code="send_forbidden",
        )
