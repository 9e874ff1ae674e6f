"""Habilitations: rights an administrator gives a user beyond what a dossier grants.

The one in use is ``dicom_download`` (seed 002 § 3.1.3 « Cette fonctionnalité est soumise à
une habilitation »): downloading DICOM files (a file, a series, or within « Exporter
tout »). Without it a reader of the dossier still views the exam: the server renders its
frames. Granting, revoking and every refused download are audited.
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.accounts import User
from core.db import Database, utcnow
from core.errors import Forbidden, NotFound
from core.principal import Principal
from dossier.models import Document, Habilitation, UserHabilitation


class DicomDownloadForbidden(Forbidden):
    code = "dicom_download_forbidden"
    title = "Downloading DICOM files needs the habilitation"


DICOM_REFUSAL = (
    "Le téléchargement des images au format DICOM est soumis à une habilitation que votre "
    "compte n'a pas. Vous pouvez consulter les images dans la visionneuse."
)


async def held(session: AsyncSession, user_id: uuid.UUID) -> set[Habilitation]:
    rows = await session.execute(
        select(UserHabilitation.name).where(UserHabilitation.user_id == user_id)
    )
    return set(rows.scalars())


async def holds(session: AsyncSession, principal: Principal, name: Habilitation) -> bool:
    if not principal.is_user:
        return False
    return name in await held(session, principal.subject_id)


async def require_dicom_download(
    db: Database, principal: Principal, dossier_id: uuid.UUID, what: str, **details: object
) -> None:
    """403 (audited, French reason) unless the principal may download DICOM files."""
    async with db.read() as session:
        ok = await holds(session, principal, Habilitation.dicom_download)
    if ok:
        return
    await audit.record_now(
        db,
        "document.download_dicom",
        actor=principal,
        object_type="dossier",
        object_id=dossier_id,
        outcome="denied",
        what=what,
        **details,
    )
    raise DicomDownloadForbidden(DICOM_REFUSAL)


def needs_dicom_right(doc: Document) -> bool:
    return doc.category == "dicom"


async def _target(session: AsyncSession, actor: Principal, user_id: uuid.UUID) -> User:
    if not actor.is_admin:
        raise Forbidden("Seul un administrateur attribue les habilitations.", code="admin_only")
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("Utilisateur introuvable.", code="user_not_found")
    return user


async def grant(
    db: Database, actor: Principal, user_id: uuid.UUID, name: Habilitation
) -> set[Habilitation]:
    """An administrator gives ``name`` to a user (idempotent); the user's habilitations."""
    async with db.write() as uow:
        s = uow.session
        await _target(s, actor, user_id)
        if name not in await held(s, user_id):
            s.add(
                UserHabilitation(
                    user_id=user_id, name=name, granted_by_id=actor.subject_id, granted_at=utcnow()
                )
            )
            await s.flush()
            audit.record(
                s,
                "user.habilitation_grant",
                actor=actor,
                object_type="user",
                object_id=user_id,
                habilitation=name.value,
            )
        return await held(s, user_id)


async def revoke(
    db: Database, actor: Principal, user_id: uuid.UUID, name: Habilitation
) -> set[Habilitation]:
    async with db.write() as uow:
        s = uow.session
        await _target(s, actor, user_id)
        result = await s.execute(
            delete(UserHabilitation).where(
                UserHabilitation.user_id == user_id, UserHabilitation.name == name
            )
        )
        if getattr(result, "rowcount", 0):
            audit.record(
                s,
                "user.habilitation_revoke",
                actor=actor,
                object_type="user",
                object_id=user_id,
                habilitation=name.value,
            )
        return await held(s, user_id)


async def mine(db: Database, principal: Principal) -> set[Habilitation]:
    if not principal.is_user:
        return set()
    async with db.read() as session:
        return await held(session, principal.subject_id)
