"""Consilium `rtc` package (see ARCHITECTURE.md): the SFU.

Public surface for the signalling layer: :class:`rtc.sfu.Sfu`, :class:`rtc.config.RtcConfig`,
:class:`rtc.errors.RtcError`. See docs/rtc.md.
"""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this package's routes and handlers: one `Sfu` per process, the `rtc:*`
    Socket.IO events and `GET /rooms/{room_id}/stats` (see rtc/signalling.py)."""
    from rtc import signalling

    signalling.setup(app)
