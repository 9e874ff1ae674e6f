"""Consilium `dossier` package: asynchronous téléexpertise (see docs/dossier.md)."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register the dossier routes and the notifications of its life."""
    from dossier import lookup, notifications, rooms_link, routes
    from dossier.routes_documents import setup_documents

    routes.setup(app)
    lookup.setup(app)
    notifications.setup(app)
    setup_documents(app)
    rooms_link.setup(app)
