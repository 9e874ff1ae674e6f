"""Tables of the téléexpertise dossier: patients, care offers, request types, dossiers (with
their numbers and read grants), form parts, read receipts, documents, resumable uploads,
signature pictures, vault deposits and retention notices.

The dossier's history is not a table of its own: every read and write of a dossier writes a
``core.audit`` row with ``object_type="dossier"`` and ``object_id=str(dossier.id)``, and
``GET /api/v1/dossiers/{id}/history`` reads them back.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, IdMixin, TimestampMixin, UTCDateTime, utcnow

# The number counter table is defined with its allocator; re-exported so every table is here.
from dossier.workflow.numbering import DossierNumberCounter as DossierNumberCounter
from dossier.workflow.numbering import column_default


def _enum(cls: type[enum.Enum], length: int = 30) -> Enum:
    return Enum(cls, native_enum=False, length=length, values_callable=_values)


def _values(cls: type[enum.Enum]) -> list[str]:
    return [str(m.value) for m in cls]


# -- patients ---------------------------------------------------------------------------


class Sex(enum.StrEnum):
    """As in the INS referential: F, M, or I (indéterminé)."""

    female = "F"
    male = "M"
    unknown = "I"


class InsStatus(enum.StrEnum):
    """Identity status of the national identitovigilance reference (RNIV)."""

    provisional = "provisional"  # Identité provisoire
    recovered = "recovered"  # Identité récupérée (INSi call, no document checked)
    validated = "validated"  # Identité validée (document checked, no INSi call)
    qualified = "qualified"  # Identité qualifiée

    @property
    def label(self) -> str:
        return INS_STATUS_LABELS[self]


INS_STATUS_LABELS = {
    InsStatus.provisional: "Identité provisoire",
    InsStatus.recovered: "Identité récupérée",
    InsStatus.validated: "Identité validée",
    InsStatus.qualified: "Identité qualifiée",
}


class Patient(IdMixin, TimestampMixin, Base):
    __tablename__ = "patients"

    birth_name: Mapped[str] = mapped_column(String(100))  # Nom de naissance
    used_name: Mapped[str] = mapped_column(String(100), default="")  # Nom utilisé
    first_name: Mapped[str] = mapped_column(String(100))  # 1er prénom de naissance
    first_names: Mapped[str] = mapped_column(String(300), default="")  # Liste des prénoms
    used_first_name: Mapped[str] = mapped_column(String(100), default="")  # Prénom utilisé
    sex: Mapped[Sex] = mapped_column(_enum(Sex, 1))
    birth_date: Mapped[date] = mapped_column(Date, index=True)
    birth_country: Mapped[str] = mapped_column(String(100), default="FRANCE")
    birth_commune: Mapped[str] = mapped_column(String(100), default="")
    birth_postcode: Mapped[str] = mapped_column(String(10), default="")
    birth_insee_code: Mapped[str] = mapped_column(String(5), default="")  # Code INSEE commune
    # [{"type": "home", "country": "FRANCE", "city", "postcode", "street", "line1",
    #   "comment", "valid_from"}]
    addresses: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # [{"kind": "mobile" | "phone" | "email", "value": "..."}]
    contacts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    ipp: Mapped[str | None] = mapped_column(String(40), index=True)  # establishment's number
    ins: Mapped[str | None] = mapped_column(String(15), unique=True)  # matricule INS (NIR/NIA)
    ins_status: Mapped[InsStatus] = mapped_column(
        _enum(InsStatus, 20), default=InsStatus.provisional
    )
    # Who assigned the matricule (dossier.identity.ins.InsOid): NIR, NIA, test or demo NIR.
    ins_oid: Mapped[str | None] = mapped_column(String(40))
    # The evidence the status rests on (RNIV): the high-trust document checked, and when the
    # INSi teleservice returned this INS. Changed only by dossier.identity.status.
    identity_document: Mapped[str] = mapped_column(String(30), default="")
    insi_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True))
    # Accent- and case-free "birth used first firsts" used to pre-filter searches.
    search_text: Mapped[str] = mapped_column(String(600), default="", index=True)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    establishment: Mapped[str] = mapped_column(String(200), default="")  # creator's scope

    # The search's candidates (dossier.identity.patients.search): a GIN trigram index on
    # PostgreSQL (pg_trgm, see migration dossier_0006), a plain one on SQLite.
    __table_args__ = (
        Index(
            "ix_patients_search_text_trgm",
            "search_text",
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        ),
    )

    @property
    def display_name(self) -> str:
        """BIRTH (USED) First, as the seed's identity lists show it."""
        name = self.birth_name.upper()
        if self.used_name and self.used_name.upper() != name:
            name += f" ({self.used_name.upper()})"
        return f"{name} {self.used_first_name or self.first_name}"


class IdentityStatusChange(IdMixin, Base):
    """One change of an identity's status (RNIV): who, when, why, on what evidence. The
    first row of an identity is its creation (``from_status`` null)."""

    __tablename__ = "identity_status_changes"

    patient_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("patients.id", ondelete="CASCADE"), index=True
    )
    from_status: Mapped[InsStatus | None] = mapped_column(_enum(InsStatus, 20))
    to_status: Mapped[InsStatus] = mapped_column(_enum(InsStatus, 20))
    changed_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    changed_by_label: Mapped[str] = mapped_column(String(200), default="")
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True), default=utcnow)
    reason: Mapped[str] = mapped_column(String(500), default="")
    # {"insi": bool, "document": "passport" | …} as declared with the change
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# -- care-offer directory ---------------------------------------------------------------


class CareOffer(IdMixin, TimestampMixin, Base):
    """An "offre de soin": a service a requester can address a dossier to."""

    __tablename__ = "care_offers"

    name: Mapped[str] = mapped_column(String(200))
    specialty: Mapped[str] = mapped_column(String(100), index=True)
    establishment: Mapped[str] = mapped_column(String(200), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    postcode: Mapped[str] = mapped_column(String(10), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    mss_address: Mapped[str | None] = mapped_column(String(254))  # the team's MSSanté box
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class CareOfferMember(IdMixin, Base):
    """A practitioner (or a team's secretary) who answers a care offer."""

    __tablename__ = "care_offer_members"
    __table_args__ = (UniqueConstraint("care_offer_id", "user_id"),)

    care_offer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("care_offers.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(20), default="expert")  # expert | secretary


# -- request types and forms -------------------------------------------------------------


class RequestType(IdMixin, TimestampMixin, Base):
    """A "type de demande": a form template with a requester part and an expert part.

    ``template`` is data: ``{"requester": [field, ...], "expert": [field, ...]}`` where a
    field is ``{"name", "label", "type": text|textarea|date|number|select|checkbox,
    "required": bool, "options": [...] (select), "help": str}``.
    """

    __tablename__ = "request_types"

    code: Mapped[str] = mapped_column(String(60), unique=True)  # e.g. "tx_simple"
    label: Mapped[str] = mapped_column(String(200))
    specialty: Mapped[str] = mapped_column(String(100), default="")
    template: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class FormSide(enum.StrEnum):
    requester = "requester"
    expert = "expert"


class FormStatus(enum.StrEnum):
    draft = "draft"
    signed = "signed"


# -- dossiers ---------------------------------------------------------------------------


class DossierState(enum.StrEnum):
    draft = "draft"
    awaiting_expertise = "awaiting_expertise"
    expertised = "expertised"
    closure_requested = "closure_requested"
    closed = "closed"

    @property
    def label(self) -> str:
        return STATE_LABELS[self]


STATE_LABELS = {
    DossierState.draft: "Demande d'avis initiale",
    DossierState.awaiting_expertise: "Avis en attente d'expertise",
    DossierState.expertised: "Dossier expertisé",
    DossierState.closure_requested: "Demande clôture",
    DossierState.closed: "Dossier clôturé",
}


class Dossier(IdMixin, TimestampMixin, Base):
    __tablename__ = "dossiers"
    __table_args__ = (Index("ix_dossiers_state_modified", "state", "modified_at"),)

    # "TE-2026-000123": what people say on the phone and type (dossier/workflow/numbering.py).
    number: Mapped[str] = mapped_column(String(20), unique=True, index=True, default=column_default)

    patient_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("patients.id", ondelete="RESTRICT"), index=True
    )
    # The practitioner asking for the opinion; created_by differs when a secretary prepared
    # the dossier "en délégation de" the requester.
    requester_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    created_by_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    state: Mapped[DossierState] = mapped_column(_enum(DossierState, 30), default=DossierState.draft)
    # State to return to when a closure request is withdrawn.
    state_before_closure: Mapped[DossierState | None] = mapped_column(_enum(DossierState, 30))
    consent: Mapped[bool | None] = mapped_column(Boolean)  # None: not answered yet
    consent_comment: Mapped[str] = mapped_column(Text, default="")
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    urgent: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    request_type_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("request_types.id", ondelete="RESTRICT")
    )
    # The expert who signed the expert part (or took the dossier).
    expert_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expertised_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closure_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closure_requested_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)


class GrantKind(enum.StrEnum):
    by_number = "by_number"  # "consulté par n° de dossier" (seed 002 § 2.2)
    rcp = "rcp"  # invited to an RCP (e-Staff) whose agenda holds the dossier


class DossierGrant(IdMixin, Base):
    """Read access to one dossier given to one account outside the dossier's sides.

    A practitioner who typed the dossier's number and the patient's birth date reads that
    dossier (and its documents), nothing else of the patient, and writes nothing.
    """

    __tablename__ = "dossier_grants"
    __table_args__ = (UniqueConstraint("dossier_id", "user_id", "kind"),)

    dossier_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("dossiers.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[GrantKind] = mapped_column(_enum(GrantKind, 20), default=GrantKind.by_number)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DossierRecipient(IdMixin, Base):
    """A care offer the dossier is addressed to ("destinataires")."""

    __tablename__ = "dossier_recipients"
    __table_args__ = (UniqueConstraint("dossier_id", "care_offer_id"),)

    dossier_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("dossiers.id", ondelete="CASCADE"), index=True
    )
    care_offer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("care_offers.id", ondelete="RESTRICT"), index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)


class FormPart(IdMixin, TimestampMixin, Base):
    """One side of a dossier's form. Once signed it never changes again."""

    __tablename__ = "form_parts"
    __table_args__ = (UniqueConstraint("dossier_id", "side"),)

    dossier_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("dossiers.id", ondelete="CASCADE"), index=True
    )
    side: Mapped[FormSide] = mapped_column(_enum(FormSide, 20))
    # The fields of this side, copied from the request type when it was chosen, so that a
    # later change of the template never alters what was signed.
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[FormStatus] = mapped_column(_enum(FormStatus, 20), default=FormStatus.draft)
    saved_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    saved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    signed_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReadReceipt(IdMixin, Base):
    """The first time a recipient opened a dossier ("Dossier lu par Dr X le …")."""

    __tablename__ = "read_receipts"
    __table_args__ = (UniqueConstraint("dossier_id", "user_id"),)

    dossier_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("dossiers.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    first_read_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# -- documents ---------------------------------------------------------------------------


class Document(IdMixin, Base):
    __tablename__ = "documents"

    dossier_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("dossiers.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(20), index=True)  # filetypes.CATEGORIES
    content_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(64))
    preview_key: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(20), default="upload")
    author_id: Mapped[uuid.UUID | None] = mapped_column(index=True)  # user or guest id
    author_kind: Mapped[str] = mapped_column(String(10), default="user")
    author_label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # A stamped copy points at the document it was made from; versions count from 1.
    previous_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("documents.id", ondelete="SET NULL")
    )
    version: Mapped[int] = mapped_column(Integer, default=1)
    # DICOM metadata, stamp parameters, signature facts…
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # DICOM whose patient does not match the dossier's: kept aside until someone confirms.
    identity_mismatch: Mapped[bool] = mapped_column(Boolean, default=False)
    identity_warning: Mapped[str] = mapped_column(Text, default="")
    identity_confirmed_by_id: Mapped[uuid.UUID | None] = mapped_column()
    identity_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def pending_identity_check(self) -> bool:
        return self.identity_mismatch and self.identity_confirmed_at is None


class UserSignature(Base):
    """The picture of a user's handwritten signature (seed 000, 3.2: "Charger une signature")."""

    __tablename__ = "user_signatures"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    blob_key: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Upload(IdMixin, Base):
    """A resumable upload in progress; its bytes are in the staging area under ``id.hex``."""

    __tablename__ = "document_uploads"

    dossier_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("dossiers.id", ondelete="CASCADE"), index=True
    )
    owner_id: Mapped[uuid.UUID] = mapped_column(index=True)  # user or guest id
    filename: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), default="")  # announced by the client
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    # Set when a tus client's last chunk completed it: the row then stays until it expires,
    # so that a client whose last answer was lost learns the document from HEAD instead of
    # sending the file again.
    document_id: Mapped[uuid.UUID | None] = mapped_column(default=None)


class VaultDeposit(IdMixin, Base):
    """One document deposited for one recipient in the vault."""

    __tablename__ = "vault_deposits"

    dossier_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("dossiers.id", ondelete="CASCADE"), index=True
    )
    document_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    recipient_email: Mapped[str] = mapped_column(String(254))
    recipient_phone: Mapped[str] = mapped_column(String(30))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    downloads: Mapped[int] = mapped_column(Integer, default=0)
    last_download_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RetentionNotice(Base):
    """The reminder sent for a closed dossier (once)."""

    __tablename__ = "retention_notices"

    dossier_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    reminded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    purge_after: Mapped[datetime] = mapped_column(UTCDateTime())
    recipients: Mapped[str] = mapped_column(String(600), default="")


class ReportFiling(IdMixin, Base):
    """A signed report to file back into the establishment's record (DPI) over FHIR: the
    transactional outbox row written with the ``report.signed`` event, then claimed, sent
    and retried with back-off by ``ops.fhir.push`` until the peer accepts it."""

    __tablename__ = "report_filings"

    dossier_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("dossiers.id", ondelete="CASCADE"), index=True
    )
    # One filing per report version: the peer deduplicates on the same identifier too.
    document_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), unique=True
    )
    target: Mapped[str] = mapped_column(String(500))  # the FHIR base URL it goes to
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)  # filed|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    filed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    remote_id: Mapped[str] = mapped_column(String(200), default="")  # the peer's resource id


# -- téléconsultations planned on a dossier (seed 001) -------------------------------------


class TeleconsultationStep(enum.StrEnum):
    """Where a planned téléconsultation stands; the activity view shows and filters on it."""

    planned = "planned"
    done = "done"
    report_signed = "report_signed"
    cancelled = "cancelled"

    @property
    def label(self) -> str:
        return TELECONSULTATION_STEP_LABELS[self]


TELECONSULTATION_STEP_LABELS = {
    TeleconsultationStep.planned: "Téléconsultation planifiée",
    TeleconsultationStep.done: "Téléconsultation réalisée",
    TeleconsultationStep.report_signed: "Compte-rendu signé",
    TeleconsultationStep.cancelled: "Téléconsultation annulée",
}


class Teleconsultation(IdMixin, TimestampMixin, Base):
    """A téléconsultation planned on a dossier: when, how long, who takes part, in which
    room. The room is the rooms package's (``room_id`` is a plain column, as
    ``Room.dossier_id`` is); the patient's and relatives' links are its invitations."""

    __tablename__ = "teleconsultations"

    dossier_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("dossiers.id", ondelete="CASCADE"), index=True
    )
    room_id: Mapped[uuid.UUID] = mapped_column(index=True)
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    duration_minutes: Mapped[int] = mapped_column(Integer, default=30)
    step: Mapped[TeleconsultationStep] = mapped_column(
        _enum(TeleconsultationStep, 20), default=TeleconsultationStep.planned, index=True
    )
    planned_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # Professionals taking part (practitioners and the nursing home's nurse): user ids.
    practitioner_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    nurse_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # People without an account (patient, relative): [{"name", "email", "mobile",
    # "relation": "patient"|"relative", "invitation_id"}]
    guests: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The .ics SEQUENCE: raised by each reschedule and by the cancellation.
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_reason: Mapped[str] = mapped_column(String(500), default="")
    # The consultation report (issue 16 item 4), as signed: {"reason", "findings",
    # "conclusion", "prescription_document_id", "gp_name", "gp_mss"}; the signed PDF is a
    # document of the dossier. ``report_sent``: [{"channel", "to", "at"}].
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    report_document_id: Mapped[uuid.UUID | None] = mapped_column()
    report_signed_by_id: Mapped[uuid.UUID | None] = mapped_column()
    report_signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    report_sent: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)


class TeleconsultationReminder(IdMixin, Base):
    """A reminder due at a time (the day before, 15 minutes before): a durable row, so a
    restart or another node loses none and none goes twice (``sent_at`` is claimed)."""

    __tablename__ = "teleconsultation_reminders"
    __table_args__ = (UniqueConstraint("teleconsultation_id", "kind"),)

    teleconsultation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("teleconsultations.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(20))  # day_before | quarter_hour
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# -- results seen, habilitations ----------------------------------------------------------


class DocumentView(Base):
    """One user has seen one result (a report or an exam): opened it, or « Marquer comme
    vu ». The home page lists the recent results of my dossiers that have no row here
    (seed 002 § 3.1.1). Written only by :mod:`dossier.documents.seen`."""

    __tablename__ = "document_views"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    document_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    how: Mapped[str] = mapped_column(String(10), default="opened")  # opened | marked


class Habilitation(enum.StrEnum):
    """Rights given to a user by an administrator, beyond what a dossier grants."""

    dicom_download = "dicom_download"  # « télécharger la série au format DICOM » (§ 3.1.3)


class UserHabilitation(Base):
    """An habilitation held by a user (granted by an administrator, audited)."""

    __tablename__ = "user_habilitations"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[Habilitation] = mapped_column(_enum(Habilitation, 30), primary_key=True)
    granted_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DicomInboxStudy(IdMixin, Base):
    """An exam received by the DICOM node that matched no dossier (or several): it waits in
    the reconciliation list until the secretariat attaches it to a dossier or rejects it.
    Its instances are files under ``<data_dir>/dicom-inbox/<folder>/``."""

    __tablename__ = "dicom_inbox_studies"

    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    folder: Mapped[str] = mapped_column(String(100))
    patient_name: Mapped[str] = mapped_column(String(200), default="")
    patient_id: Mapped[str] = mapped_column(String(64), default="")
    patient_birth_date: Mapped[str] = mapped_column(String(10), default="")
    modality: Mapped[str] = mapped_column(String(16), default="")
    study_date: Mapped[str] = mapped_column(String(10), default="")
    description: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str] = mapped_column(
        String(40)
    )  # no_matching_dossier | several_matching_dossiers
    candidates: Mapped[list[str]] = mapped_column(JSON, default=list)
    instances: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    # pending → attached | rejected
    dossier_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    resolved_by_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    comment: Mapped[str] = mapped_column(String(500), default="")


class MssDirectoryEntry(IdMixin, Base):
    """A mailbox of the MSSanté directory, imported from the Annuaire Santé's public extract
    (``consilium mss-directory import``, :mod:`dossier.mssdirectory.importer`). The
    ``*_folded`` columns hold the accent-free lower-case text the search compares."""

    __tablename__ = "mss_directory"

    address: Mapped[str] = mapped_column(String(254), unique=True)
    box_type: Mapped[str] = mapped_column(String(8), default="")  # PER | ORG | APP
    rpps: Mapped[str] = mapped_column(String(11), default="", index=True)
    national_id: Mapped[str] = mapped_column(String(20), default="")  # 8+RPPS, 0+ADELI…
    last_name: Mapped[str] = mapped_column(String(100), default="")
    first_name: Mapped[str] = mapped_column(String(100), default="")
    profession: Mapped[str] = mapped_column(String(100), default="")
    specialty: Mapped[str] = mapped_column(String(150), default="")
    organization: Mapped[str] = mapped_column(String(200), default="")
    commune: Mapped[str] = mapped_column(String(100), default="")
    postcode: Mapped[str] = mapped_column(String(10), default="")
    name_folded: Mapped[str] = mapped_column(String(210), default="")
    specialty_folded: Mapped[str] = mapped_column(String(260), default="")
    commune_folded: Mapped[str] = mapped_column(String(100), default="")
    search_folded: Mapped[str] = mapped_column(String(800), default="")
    import_id: Mapped[uuid.UUID] = mapped_column(index=True)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# -- RCP (réunion de concertation pluridisciplinaire), e-Staff meetings -------------------


class RcpStatus(enum.StrEnum):
    planned = "planned"
    cancelled = "cancelled"

    @property
    def label(self) -> str:
        return {"planned": "RCP planifiée", "cancelled": "RCP annulée"}[self.value]


class RcpMeeting(IdMixin, TimestampMixin, Base):
    """An e-Staff meeting: when, who leads it, who is invited, its room (an ``estaff`` room
    of the rooms package, ``room_id`` a plain column) and the agenda item shown to all now."""

    __tablename__ = "rcp_meetings"

    title: Mapped[str] = mapped_column(String(200))
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    duration_minutes: Mapped[int] = mapped_column(Integer, default=60)
    lead_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    planned_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    room_id: Mapped[uuid.UUID] = mapped_column(index=True, unique=True)
    # The invited professionals (user ids, the lead excluded).
    invitee_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[RcpStatus] = mapped_column(_enum(RcpStatus, 20), default=RcpStatus.planned)
    current_item_id: Mapped[uuid.UUID | None] = mapped_column()
    # The .ics SEQUENCE: raised by each reschedule and by the cancellation.
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_reason: Mapped[str] = mapped_column(String(500), default="")


class RcpItemStatus(enum.StrEnum):
    pending = "pending"  # on the agenda
    signed = "signed"  # « fiche RCP » signed and filed into the dossier

    @property
    def label(self) -> str:
        return {"pending": "À discuter", "signed": "Fiche RCP signée"}[self.value]


class RcpItem(IdMixin, Base):
    """One dossier on an RCP's agenda with its « Question posée », and the decision taken
    (« fiche RCP »): the proposal, the participants present, the signed PDF filed."""

    __tablename__ = "rcp_items"
    __table_args__ = (UniqueConstraint("meeting_id", "dossier_id"),)

    meeting_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("rcp_meetings.id", ondelete="CASCADE"), index=True
    )
    dossier_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("dossiers.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    question: Mapped[str] = mapped_column(Text, default="")
    proposal: Mapped[str] = mapped_column(Text, default="")
    # Names of the participants present, taken from the room's presence, editable.
    present: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[RcpItemStatus] = mapped_column(
        _enum(RcpItemStatus, 20), default=RcpItemStatus.pending
    )
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    signed_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    document_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("documents.id", ondelete="SET NULL")
    )
