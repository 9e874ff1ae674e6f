"""Chat: durable room messages, direct messages, history, typing and read markers, carried
by the rooms' live connection. See docs/chat.md."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register the chat's Socket.IO events on the rooms' live layer and the REST routes of
    the "Messages" page (``/api/v1/chat/…``)."""
    from chat import api, live
    from rooms.live import Live

    live.register(Live.of(app))
    api.setup(app)
