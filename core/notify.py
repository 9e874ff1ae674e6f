"""Notifications by e-mail (SMTP, aiosmtplib), MSSanté (SMTP through the operator's relay)
and SMS (an HTTP gateway), behind one small interface.

Every message is recorded in the ``notifications`` table. With no transport configured (the
embedded default) the message stays there with status ``outbox`` and development mode shows
it at ``/dev/outbox``: nothing is lost and nothing leaves the machine.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import aiosmtplib
from sqlalchemy import String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from core.config import Settings
from core.db import Base, Database, IdMixin, UTCDateTime, utcnow

if TYPE_CHECKING:
    from core.accounts import User

log = logging.getLogger(__name__)


class Recipient(Protocol):
    """Who can be notified: an account's addresses and its notification preferences."""

    @property
    def email(self) -> str: ...
    @property
    def mobile(self) -> str | None: ...
    @property
    def preferences(self) -> dict[str, Any] | None: ...


class NotificationKind(enum.StrEnum):
    """What a user can be told about, each with its own channel (``User.preferences``)."""

    expertise_request = "expertise_request"  # a dossier awaits my expertise
    expertise_report = "expertise_report"  # the expert answered; the report is available
    closure_request = "closure_request"  # the other side asks to close a dossier
    room_invitation = "room_invitation"  # invited to a room or an e-Staff meeting
    chat_message = "chat_message"  # a direct message arrived while I was away


NOTIFICATION_CHANNELS = ("email", "sms", "both", "none")
DEFAULT_CHANNEL = "email"


def notification_channels(user: Recipient) -> dict[str, str]:
    """The channel of every notification kind for this user: ``email``, ``sms``, ``both``
    or ``none``. ``preferences["notify"]`` is a dict by kind (a single string applies to
    every kind)."""
    chosen = (user.preferences or {}).get("notify", {})
    if isinstance(chosen, str):
        chosen = {k.value: chosen for k in NotificationKind}
    out = {}
    for k in NotificationKind:
        channel = str(chosen.get(k.value, DEFAULT_CHANNEL))
        out[k.value] = channel if channel in NOTIFICATION_CHANNELS else DEFAULT_CHANNEL
    return out


def notification_channel(user: Recipient, kind: NotificationKind | str) -> str:
    """Where to tell ``user`` about ``kind``: ``email``, ``sms``, ``both`` or ``none``;
    SMS falls back to e-mail when the account has no mobile number."""
    channel = notification_channels(user).get(str(kind), DEFAULT_CHANNEL)
    if channel in ("sms", "both") and not user.mobile:
        return "email"
    return channel


class Notification(IdMixin, Base):
    __tablename__ = "notifications"

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    channel: Mapped[str] = mapped_column(String(10))  # email | mss | sms
    recipient: Mapped[str] = mapped_column(String(254), index=True)
    subject: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text)
    attachments: Mapped[str] = mapped_column(Text, default="")  # names, comma separated
    status: Mapped[str] = mapped_column(String(10))  # sent | outbox | failed
    error: Mapped[str] = mapped_column(Text, default="")


@dataclass
class Attachment:
    filename: str
    content: bytes
    mime_type: str = "application/octet-stream"


@dataclass
class Email:
    to: str
    subject: str
    text: str
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    # Extra header fields (MSSanté's X-MSS-* headers).
    headers: dict[str, str] = field(default_factory=dict)


class DeliveryError(Exception):
    """The transport refused or could not be reached; the message is recorded as failed."""


class Notifier:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db

    async def send_email(self, msg: Email, *, mss: bool = False) -> Notification:
        """Send an e-mail (``mss=True``: through the MSSanté relay) and record it."""
        s = self.settings
        host = (s.mss_smtp_host or s.smtp_host) if mss else s.smtp_host
        port = (s.mss_smtp_port if s.mss_smtp_host else s.smtp_port) if mss else s.smtp_port
        sender = (s.mss_from or s.mail_from) if mss else s.mail_from
        channel = "mss" if mss else "email"
        if not host:
            return await self._record(channel, msg.to, msg.subject, msg.text, msg, "outbox")
        em = EmailMessage()
        em["From"] = sender
        em["To"] = msg.to
        em["Subject"] = msg.subject
        em["Message-ID"] = make_msgid(domain="consilium.localhost")
        for name, value in msg.headers.items():
            em[name] = value
        em.set_content(msg.text)
        if msg.html:
            em.add_alternative(msg.html, subtype="html")
        for a in msg.attachments:
            maintype, _, subtype = a.mime_type.partition("/")
            em.add_attachment(a.content, maintype=maintype, subtype=subtype, filename=a.filename)
        try:
            await aiosmtplib.send(
                em,
                hostname=host,
                port=port,
                username=s.smtp_username or None,
                password=s.smtp_password or None,
                start_tls=s.smtp_starttls,
                use_tls=s.smtp_tls,
                timeout=30,
            )
        except (aiosmtplib.SMTPException, OSError) as e:
            await self._record(channel, msg.to, msg.subject, msg.text, msg, "failed", str(e))
            raise DeliveryError(f"e-mail to {msg.to} failed: {e}") from e
        return await self._record(channel, msg.to, msg.subject, msg.text, msg, "sent")

    async def send_sms(self, to: str, text: str) -> Notification:
        """Send an SMS through the configured HTTP gateway and record it.

        The gateway receives ``POST {"to", "text", "sender"}`` with a bearer token, the common
        shape of French SMS providers' APIs; an adapter per provider goes here.
        """
        s = self.settings
        if not s.sms_gateway_url:
            return await self._record("sms", to, "", text, None, "outbox")
        headers = {"Authorization": f"Bearer {s.sms_gateway_token}"} if s.sms_gateway_token else {}
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http,
                http.post(
                    s.sms_gateway_url,
                    json={"to": to, "text": text, "sender": s.sms_sender},
                    headers=headers,
                ) as resp,
            ):
                if resp.status >= 300:
                    raise DeliveryError(f"SMS gateway answered {resp.status}")
        except (aiohttp.ClientError, TimeoutError, DeliveryError) as e:
            await self._record("sms", to, "", text, None, "failed", str(e))
            raise DeliveryError(f"SMS to {to} failed: {e}") from e
        return await self._record("sms", to, "", text, None, "sent")

    async def notify_user(
        self, user: User, kind: NotificationKind | str, *, subject: str, text: str
    ) -> Notification | None:
        """Tell a user about something on the channel(s) they chose for this kind of news
        (``User.preferences``): e-mail, SMS (subject and text, shortened), both, or nothing.
        Returns the last message sent (None when the user wants none). With ``both``, a
        failure of one channel does not stop the other; DeliveryError only if both fail."""
        channel = notification_channel(user, kind)
        sent: Notification | None = None
        failure: DeliveryError | None = None
        if channel in ("email", "both"):
            try:
                sent = await self.send_email(Email(to=user.email, subject=subject, text=text))
            except DeliveryError as e:
                failure = e
        if channel in ("sms", "both") and user.mobile:
            try:
                sent = await self.send_sms(user.mobile, f"{subject}\n{text}"[:600])
            except DeliveryError as e:
                failure = e
        if sent is None and failure is not None:
            raise failure
        return sent

    async def _record(
        self,
        channel: str,
        to: str,
        subject: str,
        body: str,
        msg: Email | None,
        status: str,
        error: str = "",
    ) -> Notification:
        row = Notification(
            channel=channel,
            recipient=to,
            subject=subject,
            body=body,
            attachments=",".join(a.filename for a in msg.attachments) if msg else "",
            status=status,
            error=error,
        )
        async with self.db.write() as uow:
            uow.session.add(row)
        if status == "outbox":
            log.info("notification kept in outbox", extra={"channel": channel, "to": to})
        return row

    async def outbox(self, limit: int = 100) -> list[Notification]:
        async with self.db.read() as session:
            rows = await session.execute(
                select(Notification).order_by(Notification.created_at.desc()).limit(limit)
            )
            return list(rows.scalars())

    async def last_to(self, recipient: str) -> Notification | None:
        async with self.db.read() as session:
            rows = await session.execute(
                select(Notification)
                .where(Notification.recipient == recipient)
                .order_by(Notification.created_at.desc())
                .limit(1)
            )
            return rows.scalar_one_or_none()
