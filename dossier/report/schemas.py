"""Response models of the report routes."""

from __future__ import annotations

from pydantic import BaseModel


class VerificationOut(BaseModel):
    signed: bool
    intact: bool
    trusted: bool
    covers_whole_file: bool
    ok: bool
    signer: str
    signed_at: str | None
