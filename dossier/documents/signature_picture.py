"""The picture of a user's handwritten signature (seed 000, 3.2: "Charger une signature").

It belongs to the account, but it exists to be stamped on the dossier's documents
(:mod:`dossier.documents.stamping`) and lives in the dossier's blob store and tables, so its
actions are here: ``core`` may not import the dossier package.
"""

from __future__ import annotations

from core import audit
from core.db import Database, utcnow
from core.errors import NotFound
from core.principal import Principal
from dossier.documents.stamping import normalise_signature
from dossier.documents.store import on_commit_delete, on_rollback_delete, storage_for
from dossier.models import UserSignature


async def set_signature_picture(db: Database, principal: Principal, data: bytes) -> UserSignature:
    """Store (or replace) the principal's signature picture, re-encoded as a PNG."""
    png, w, h = normalise_signature(data)
    async with db.write() as uow:
        storage = storage_for(uow.session)
        blob = await storage.blobs.put_bytes(png)
        on_rollback_delete(uow.session, storage, blob.key)
        row = await uow.session.get(UserSignature, principal.subject_id)
        if row is None:
            row = UserSignature(user_id=principal.subject_id, blob_key=blob.key, width=w, height=h)
            uow.session.add(row)
        else:
            on_commit_delete(uow.session, storage, [row.blob_key])
            row.blob_key, row.width, row.height = blob.key, w, h
        row.updated_at = utcnow()
        audit.record(
            uow.session,
            "account.signature_set",
            actor=principal,
            object_type="user",
            object_id=principal.subject_id,
        )
    return row


async def signature_picture(db: Database, principal: Principal) -> bytes:
    """The principal's signature picture (PNG); 404 ``no_signature`` when none."""
    async with db.read() as session:
        row = await session.get(UserSignature, principal.subject_id)
        storage = storage_for(session)
    if row is None:
        raise NotFound("Aucune signature chargée.", code="no_signature")
    return await storage.blobs.read(row.blob_key)


async def delete_signature_picture(db: Database, principal: Principal) -> None:
    async with db.write() as uow:
        row = await uow.session.get(UserSignature, principal.subject_id)
        if row is None:
            return
        on_commit_delete(uow.session, storage_for(uow.session), [row.blob_key])
        await uow.session.delete(row)
        audit.record(
            uow.session,
            "account.signature_delete",
            actor=principal,
            object_type="user",
            object_id=principal.subject_id,
        )
