"""Consilium `rtc` package (see ARCHITECTURE.md): the SFU.

Public surface for the signalling layer: :class:`rtc.sfu.Sfu`, :class:`rtc.config.RtcConfig`,
:class:`rtc.errors.RtcError`. See docs/rtc.md.
"""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this package's routes and handlers.

    The SFU has no routes of its own: the Socket.IO layer (rooms/) owns an `Sfu` and translates
    `rtc:*` events into its methods.
    """
