"""Consilium `dossier` package (see ARCHITECTURE.md)."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this package's routes and handlers."""
    from dossier.routes_documents import setup_documents

    setup_documents(app)
