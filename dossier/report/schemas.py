"""Response models of the report routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class VerificationOut(BaseModel):
    signed: bool
    intact: bool
    trusted: bool
    covers_whole_file: bool
    ok: bool
    signer: str
    signed_at: str | None


class ReportFilingOut(BaseModel):
    """A signed report's filing into the establishment's record (DPI) over FHIR."""

    document_id: uuid.UUID
    status: Literal["pending", "filed", "failed"]
    attempts: int
    created_at: datetime
    filed_at: datetime | None
    next_attempt_at: datetime | None  # while pending
    last_attempt_at: datetime | None
    last_error: str
    remote_id: str  # the DocumentReference's id in the DPI, once filed
