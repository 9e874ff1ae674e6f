"""Consilium `dossier` package: asynchronous téléexpertise (see docs/dossier.md).

Subpackages by concept, each with its actions, its schemas and a ``routes.py`` that declares
its HTTP routes at import: ``identity`` (patients, INS, matching, lookup by number),
``careoffers`` (the directory), ``workflow`` (dossiers, states, forms, numbers),
``documents`` (uploads, previews, DICOM, stamping, export), ``report`` (PDF and its
signature), ``sending`` (MSSanté and vault), ``mssdirectory`` (the MSSanté addresses
imported from the Annuaire Santé, searched by the send dialog), ``teleconsult`` (planned
téléconsultations), ``rcp`` (e-Staff meetings: agenda, live current dossier, signed « fiche
RCP »). Shared by all: ``models``
(every table), ``permissions`` (who may do what to a dossier), ``schemas`` and ``web``
(HTTP plumbing).
"""

from __future__ import annotations

from aiohttp import web

from core.context import DB, SETTINGS
from core.storage import of as storage_of
from dossier import notifications, retention, rooms_link
from dossier.careoffers import routes as careoffers_routes
from dossier.documents import dicom_node, pacs, results_routes
from dossier.documents import routes as documents_routes
from dossier.documents.store import register_storage
from dossier.identity import routes as identity_routes
from dossier.mssdirectory import routes as mss_directory_routes
from dossier.rcp import live as rcp_live
from dossier.rcp import routes as rcp_routes
from dossier.report import routes as report_routes
from dossier.sending import routes as sending_routes
from dossier.teleconsult import actions as teleconsult_actions
from dossier.teleconsult import routes as teleconsult_routes
from dossier.workflow import routes as workflow_routes


def setup(app: web.Application) -> None:
    """Register the dossier routes, the notifications of its life and its background work.

    The order of the route tables is the order aiohttp matches paths in: keep it.
    """
    identity_routes.routes.register(app)
    careoffers_routes.routes.register(app)
    workflow_routes.routes.register(app)
    notifications.setup(app)
    register_storage(app[DB].engine, storage_of(app))
    documents_routes.routes.register(app)
    results_routes.routes.register(app)
    pacs.setup(app)
    report_routes.routes.register(app)
    sending_routes.routes.register(app)
    mss_directory_routes.routes.register(app)
    teleconsult_routes.routes.register(app)
    rcp_routes.routes.register(app)
    retention.start(app)
    teleconsult_actions.start_reminders(app)
    settings = app[SETTINGS]
    # The DICOM node starts when the deployment gives it a port (seed 003's gateway).
    # One C-STORE listener per machine: with serve --workers N, worker 1 holds the port.
    if settings.dicom_port and settings.worker_index <= 1:
        dicom_node.start(app, settings.host, settings.dicom_port)
    rooms_link.setup(app)
    rcp_live.setup(app)
