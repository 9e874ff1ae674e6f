"""Notifications of the dossier's life: experts when a dossier awaits them, the requester
when the opinion is signed. They listen to ``dossier.updated`` on the bus, so they go out
only after the change committed, and a failed delivery never undoes it.

Messages carry no patient data: plain e-mail and SMS are not secure health channels. They
say that something awaits, name the dossier by its number (``TE-2026-000123``, which means
nothing without an account that may open it) and link to the dossier, which opens after
signing in.
Each user gets them on the channel chosen for that kind (``Notifier.notify_user``).
"""

from __future__ import annotations

import logging
import uuid

from aiohttp import web
from sqlalchemy import select

from core.accounts import User
from core.context import BUS, DB, NOTIFIER, SETTINGS
from core.events import Event
from core.notify import DeliveryError, NotificationKind
from dossier.models import CareOfferMember, Dossier, DossierRecipient

log = logging.getLogger(__name__)


def setup(app: web.Application) -> None:
    async def on_update(event: Event) -> None:
        change = event.payload.get("change")
        if change not in ("submitted", "expertised"):
            return
        db, notifier, settings = app[DB], app[NOTIFIER], app[SETTINGS]
        dossier_id = uuid.UUID(event.payload["dossier_id"])
        async with db.read() as s:
            d = await s.get(Dossier, dossier_id)
            if d is None:
                return
            if change == "submitted":
                ids = list(
                    (
                        await s.execute(
                            select(CareOfferMember.user_id)
                            .join(
                                DossierRecipient,
                                DossierRecipient.care_offer_id == CareOfferMember.care_offer_id,
                            )
                            .where(
                                DossierRecipient.dossier_id == d.id,
                                CareOfferMember.role == "expert",
                            )
                        )
                    ).scalars()
                )
                urgent = "URGENT — " if d.urgent else ""
                subject = f"{urgent}Le dossier n° {d.number} attend votre avis"
                text = "Le dossier de téléexpertise n° {number} vous a été adressé par {by}."
            else:
                ids = [d.requester_id]
                subject = f"L'avis d'expertise du dossier n° {d.number} a été signé"
                text = "L'expert a signé son avis sur votre demande n° {number} ({by})."
            users = (
                (await s.execute(select(User).where(User.id.in_(set(ids)), User.active.is_(True))))
                .scalars()
                .all()
            )
        link = f"{settings.public_url}/dossiers/{d.id}"
        body = text.format(by=event.payload.get("by", ""), number=d.number) + (
            f"\n\nOuvrir le dossier : {link}\n\nCe message ne contient aucune donnée de santé."
        )
        kind = (
            NotificationKind.expertise_request
            if change == "submitted"
            else NotificationKind.expertise_report
        )
        for u in users:
            try:
                await notifier.notify_user(u, kind, subject=subject, text=body)
            except DeliveryError:
                log.warning("dossier notification to %s failed", u.id)

    app[BUS].subscribe("dossier.updated", on_update)
