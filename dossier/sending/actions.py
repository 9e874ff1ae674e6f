"""Sending a PDF of the dossier (seed 000, 4.1.2 "Envoi sécurisé de document PDF").

- **MSSanté**: the PDF goes as an attachment to the recipient's MSSanté address, through
  the operator's relay (``Notifier.send_email(..., mss=True)``). The report also goes as
  an IHE XDM archive (``IHE_XDM.ZIP``, :mod:`dossier.sending.xdm`: XDS metadata and a CDA
  R2 embedding the PDF) with the referential's ``X-MSS-CODECDA`` header, and
  ``X-MSS-INS: O`` when the patient's qualified INS is in it.
- **Vault** (coffre-fort numérique), for a recipient without MSSanté: an e-mail carries a
  time-limited link, an SMS carries a 6-digit code; the document is delivered only to
  whoever has both. Token and code are stored as keyed hashes, attempts are counted.

Every sending writes an audit row on the dossier (``object_type="dossier"``), so it shows
in the dossier's history.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import timedelta
from typing import Literal

from sqlalchemy import select

from core import audit
from core.accounts import User
from core.config import Settings
from core.db import Database, utcnow
from core.errors import Forbidden, Gone, NotFound, ValidationFailed
from core.notify import Attachment, DeliveryError, Email, Notifier
from core.paris_time import paris_datetime
from core.principal import Principal
from core.storage import Storage
from dossier.documents import access as doc_access
from dossier.documents.store import get_document
from dossier.models import Document, Dossier, Patient, VaultDeposit
from dossier.sending import xdm

VAULT_TTL = timedelta(days=7)
VAULT_MAX_ATTEMPTS = 5
MAX_MSS_ATTACHMENT = 20 * 1024 * 1024  # operators cap messages around 20-25 MB

Channel = Literal["mss", "vault"]


def _keyed(settings: Settings, purpose: str, value: str) -> str:
    return hmac.new(
        settings.secret_key.encode(), f"{purpose}:{value}".encode(), hashlib.sha256
    ).hexdigest()


def _mask(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:2]}…@{domain}" if domain else f"…{address[-4:]}"


async def _document_for_sending(
    db: Database, principal: Principal, dossier_id: uuid.UUID, document_id: uuid.UUID
) -> Document:
    async with db.read() as session:
        await doc_access.require_document_send(session, principal, dossier_id)
        doc = await get_document(session, document_id, dossier_id)
    if doc.content_type != "application/pdf":
        raise ValidationFailed("Seuls les documents PDF s'envoient.", code="not_a_pdf")
    if doc.pending_identity_check:
        raise ValidationFailed(
            "Ce document attend une vérification d'identité.", code="identity_unconfirmed"
        )
    return doc


async def send_mss(
    db: Database,
    storage: Storage,
    notifier: Notifier,
    principal: Principal,
    dossier_id: uuid.UUID,
    document_id: uuid.UUID,
    recipients: list[str],
    message: str = "",
) -> list[str]:
    """Send a PDF of the dossier to MSSanté addresses; returns the addresses reached."""
    doc = await _document_for_sending(db, principal, dossier_id, document_id)
    if doc.size > MAX_MSS_ATTACHMENT:
        raise ValidationFailed(
            "Document trop volumineux pour la messagerie sécurisée : utilisez le coffre-fort.",
            code="too_large_for_mss",
        )
    pdf = await storage.blobs.read(doc.blob_key)
    attachments = [Attachment(doc.filename, pdf, "application/pdf")]
    headers: dict[str, str] = {}
    if doc.source == "report":
        archive = await _xdm_of(db, principal, dossier_id, pdf, recipients)
        attachments.append(Attachment("IHE_XDM.ZIP", archive.content, "application/zip"))
        headers["X-MSS-CODECDA"] = archive.cda_code
        if archive.ins_in_metadata:
            headers["X-MSS-INS"] = "O"
    sent: list[str] = []
    for to in recipients:
        text = (
            f"Bonjour,\n\n{principal.label} vous adresse le document « {doc.filename} » "
            "par messagerie sécurisée de santé (Consilium).\n\n"
            + (f"Message : {message}\n\n" if message else "")
            + "Ce message contient des données de santé à caractère personnel.\n"
        )
        try:
            await notifier.send_email(
                Email(
                    to=to,
                    subject=f"[Consilium] {doc.filename}",
                    text=text,
                    attachments=attachments,
                    headers=headers,
                ),
                mss=True,
            )
            outcome, error = "success", ""
            sent.append(to)
        except DeliveryError as e:
            outcome, error = "failure", str(e)
        await audit.record_now(
            db,
            "dossier.send",
            actor=principal,
            object_type="dossier",
            object_id=dossier_id,
            outcome=outcome,
            channel="mss",
            recipient=to,
            document_id=str(doc.id),
            filename=doc.filename,
            sha256=doc.sha256,
            error=error,
        )
    return sent


async def _xdm_of(
    db: Database,
    principal: Principal,
    dossier_id: uuid.UUID,
    pdf: bytes,
    recipients: list[str],
) -> xdm.XdmArchive:
    """The report as an IHE XDM archive: the patient's traits (INS only if qualified) and the
    sender as author."""
    async with db.read() as session:
        d = await session.get(Dossier, dossier_id)
        assert d is not None
        p = await session.get(Patient, d.patient_id)
        assert p is not None
        me = await session.get(User, principal.subject_id) if principal.is_user else None
    return xdm.build_archive(
        title=f"Compte rendu de téléexpertise {d.number}",
        number=d.number,
        created=utcnow(),
        patient=xdm.PatientTraits(
            birth_name=p.birth_name,
            first_names=p.first_names or p.first_name,
            sex=p.sex,
            birth_date=p.birth_date,
            ins=p.ins,
            ins_oid=p.ins_oid,
            ins_status=p.ins_status,
        ),
        author=xdm.Author(
            rpps=me.rpps if me else None,
            family=me.last_name if me else principal.label,
            given=me.first_name if me else "",
            establishment=me.establishment if me else "",
        ),
        pdf=pdf,
        recipients=recipients,
    )


async def send_vault(
    db: Database,
    settings: Settings,
    notifier: Notifier,
    principal: Principal,
    dossier_id: uuid.UUID,
    document_id: uuid.UUID,
    email: str,
    phone: str,
    *,
    ttl: timedelta = VAULT_TTL,
) -> VaultDeposit:
    """Deposit a PDF in the vault: link by e-mail, code by SMS."""
    doc = await _document_for_sending(db, principal, dossier_id, document_id)
    token = secrets.token_urlsafe(32)
    code = f"{secrets.randbelow(10**6):06d}"
    deposit = VaultDeposit(
        id=uuid.uuid4(),
        dossier_id=dossier_id,
        document_id=doc.id,
        token_hash=_keyed(settings, "vault-token", token),
        code_hash=_keyed(settings, "vault-code", token + code),
        recipient_email=email,
        recipient_phone=phone,
        created_by_id=principal.subject_id,
        created_at=utcnow(),
        expires_at=utcnow() + ttl,
    )
    async with db.write() as uow:
        uow.session.add(deposit)
        audit.record(
            uow.session,
            "dossier.send",
            actor=principal,
            object_type="dossier",
            object_id=dossier_id,
            channel="vault",
            recipient=email,
            phone=_mask(phone),
            document_id=str(doc.id),
            filename=doc.filename,
            sha256=doc.sha256,
            deposit_id=str(deposit.id),
            expires_at=deposit.expires_at.isoformat(),
        )
    link = f"{settings.public_url}/vault/{token}"
    until = paris_datetime(deposit.expires_at)
    await notifier.send_email(
        Email(
            to=email,
            subject="[Consilium] Un document médical est à votre disposition",
            text=(
                f"Bonjour,\n\n{principal.label} a déposé le document « {doc.filename} » "
                "dans le coffre-fort numérique Consilium.\n\n"
                f"Pour le télécharger, ouvrez ce lien (valable jusqu'au {until}) :\n{link}\n\n"
                "Un code à 6 chiffres vous est envoyé séparément par SMS : il vous sera "
                "demandé sur la page.\n"
            ),
        )
    )
    await notifier.send_sms(
        phone, f"Consilium : votre code d'accès au document déposé par {principal.label} : {code}"
    )
    return deposit


async def find_deposit(db: Database, settings: Settings, token: str) -> VaultDeposit:
    async with db.read() as session:
        dep = (
            await session.execute(
                select(VaultDeposit).where(
                    VaultDeposit.token_hash == _keyed(settings, "vault-token", token)
                )
            )
        ).scalar_one_or_none()
    if dep is None:
        raise NotFound("Lien inconnu.", code="vault_not_found")
    if dep.expires_at < utcnow():
        raise Gone("Ce lien a expiré : demandez un nouvel envoi.", code="vault_expired")
    if dep.attempts >= VAULT_MAX_ATTEMPTS:
        raise Gone(
            "Trop de codes erronés : ce lien est bloqué. Demandez un nouvel envoi.",
            code="vault_locked",
        )
    return dep


async def find_deposit_document(
    db: Database, settings: Settings, token: str
) -> tuple[VaultDeposit, Document | None]:
    """A valid deposit and its document (name and size for the download page)."""
    dep = await find_deposit(db, settings, token)
    async with db.read() as session:
        doc = await session.get(Document, dep.document_id)
    return dep, doc


async def open_deposit(
    db: Database, settings: Settings, token: str, code: str, ip: str = ""
) -> tuple[VaultDeposit, Document]:
    """Check the code; on success count the download and return the document."""
    dep = await find_deposit(db, settings, token)
    good = hmac.compare_digest(dep.code_hash, _keyed(settings, "vault-code", token + code.strip()))
    async with db.write() as uow:
        row = await uow.session.get(VaultDeposit, dep.id)
        assert row is not None
        if not good:
            row.attempts += 1
            left = VAULT_MAX_ATTEMPTS - row.attempts
        else:
            row.downloads += 1
            row.last_download_at = utcnow()
            left = VAULT_MAX_ATTEMPTS - row.attempts
        audit.record(
            uow.session,
            "dossier.vault_download" if good else "dossier.vault_code",
            object_type="dossier",
            object_id=dep.dossier_id,
            outcome="success" if good else "failure",
            ip=ip,
            actor_label=dep.recipient_email,
            deposit_id=str(dep.id),
            document_id=str(dep.document_id),
        )
        doc = await uow.session.get(Document, dep.document_id)
    if not good:
        if left <= 0:
            raise Gone(
                "Trop de codes erronés : ce lien est bloqué. Demandez un nouvel envoi.",
                code="vault_locked",
            )
        raise Forbidden(
            f"Code incorrect. Il vous reste {left} essai(s).",
            code="vault_bad_code",
            attempts_left=left,
        )
    if doc is None:
        raise Gone("Ce document n'est plus disponible.", code="vault_document_gone")
    return row, doc
