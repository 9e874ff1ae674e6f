"""Where the dossier's signed reports stand in the establishment's record (DPI): the
filings written with each ``report.signed`` when a FHIR push endpoint is configured and
worked through by ``ops.fhir.push``. Read here for the dossier page (« Compte-rendu déposé
dans le DPI le … ») and the API; the reading is audited like any dossier read."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from core import audit
from core.db import Database
from core.principal import Principal
from dossier.models import ReportFiling
from dossier.permissions import Action, require


async def filings_of(
    db: Database, principal: Principal, dossier_id: uuid.UUID
) -> list[ReportFiling]:
    """The dossier's report filings, newest first (404 if the dossier is not visible)."""
    async with db.write() as uow:
        await require(uow.session, db, principal, dossier_id, Action.read)
        rows = list(
            (
                await uow.session.execute(
                    select(ReportFiling)
                    .where(ReportFiling.dossier_id == dossier_id)
                    .order_by(ReportFiling.created_at.desc())
                )
            ).scalars()
        )
        audit.record(
            uow.session,
            "dossier.read",
            actor=principal,
            object_type="dossier",
            object_id=dossier_id,
            part="report_filings",
        )
    return rows
