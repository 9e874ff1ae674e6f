"""Rooms: the primary object. REST API, invitations and lobby, and the live Socket.IO layer
(presence, moderation) that chat and the SFU ride on. See docs/rooms.md."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register the rooms REST routes, the join page and the Socket.IO server."""
    from rooms import api, attachments, attachments_api, live, lobby, moderation, participants

    lv = live.setup(app)
    participants.register(lv)
    lobby.register(lv)
    moderation.register(lv)
    api.setup(app)
    attachments.setup(app)
    attachments_api.setup(app)
