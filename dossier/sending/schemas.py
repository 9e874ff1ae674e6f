"""Request and response models of the sending and vault routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, Field, field_validator

MAX_VAULT_RECIPIENTS = 5


class VaultRecipient(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    phone: str = Field(min_length=6, max_length=30)

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        try:
            return validate_email(v, check_deliverability=False).normalized
        except EmailNotValidError as e:
            raise ValueError(str(e)) from None


class SendIn(BaseModel):
    document_id: uuid.UUID
    channel: Literal["mss", "vault"]
    mss_recipients: list[str] = Field(default_factory=list, max_length=20)
    # Each vault recipient gets an e-mail and an SMS: a few per send (MAX_VAULT_RECIPIENTS).
    vault_recipients: list[VaultRecipient] = Field(
        default_factory=list, max_length=MAX_VAULT_RECIPIENTS
    )
    message: str = Field("", max_length=2000)


class SendOut(BaseModel):
    channel: str
    sent_to: list[str]
    expires_at: datetime | None = None


class VaultCodeIn(BaseModel):
    code: str = Field(min_length=6, max_length=6, pattern=r"^\d{6}$")
