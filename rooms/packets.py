"""Packets python-socketio cannot decode: an answer for the client, one quiet log line.

Left alone, a malformed Socket.IO packet raises inside python-socketio
(``AsyncServer._handle_eio_message``: bad JSON, an id too long, an unknown packet type, an
event that is not a list) and engine.io logs a traceback per packet without answering; a
malformed engine.io frame (empty, not starting with a packet type) raises in engine.io's
websocket loop (``AsyncSocket._websocket_handler``) and ends in a traceback too.

:class:`GuardedServer` catches both where they fail:

- a Socket.IO packet with an ack id gets that ack with ``{"ok": false, "error": {"code":
  "bad_request", ...}}`` and the connection stays open;
- anything else undecodable gets ``CONNECT_ERROR {"message": "bad_request"}`` and the
  connection is closed (what the reference Socket.IO server does on a parse error);
- a long-polling ``POST`` whose body is not an engine.io payload (not UTF-8, an unknown
  packet type, bad base64) gets ``400`` problem+json and its session is closed, where
  engine.io would log a traceback and answer 200;
- the log gets one warning line, without a traceback, at most every
  :data:`LOG_EVERY_SECONDS` (with the number of packets not logged meanwhile).
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

import socketio
from aiohttp import web
from engineio import packet as eio_packet
from engineio import payload as eio_payload
from engineio.async_drivers import aiohttp as eio_aiohttp
from engineio.async_drivers.aiohttp import WebSocket
from socketio import packet as sio_packet

from core.errors import BadRequest

log = logging.getLogger(__name__)

LOG_EVERY_SECONDS = 60.0
BAD_REQUEST = {"code": "bad_request", "message": "The packet could not be decoded"}
# What a packet that failed to decode raises inside python-socketio (JSON errors are
# ValueErrors; an event that is not a list fails on ``data[0]``).
DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError)
# EVENT or BINARY_EVENT, attachments, namespace, then the ack id (digits not followed by more).
_ACK_ID = re.compile(r"([25])(?:\d{1,10}-)?(?:(/[^,]*),)?(\d{1,15})(?!\d)")


class QuietLog:
    """One warning line at most every ``every`` seconds; the others are counted."""

    def __init__(self, every: float = LOG_EVERY_SECONDS) -> None:
        self.every = every
        self._last = -float("inf")
        self._skipped = 0

    def warn(self, what: str, sid: str, error: BaseException | None) -> None:
        now = time.monotonic()
        if now - self._last < self.every:
            self._skipped += 1
            return
        why = f"{type(error).__name__}: {str(error)[:120]}" if error is not None else ""
        more = f" ({self._skipped} more since the last line)" if self._skipped else ""
        log.warning("undecodable %s from %s refused %s%s", what, sid, why, more)
        self._last, self._skipped = now, 0


QUIET = QuietLog()


def ack_target(data: Any) -> tuple[str, int] | None:
    """(namespace, ack id) of a Socket.IO event packet that failed to decode, when its
    header can still be read."""
    if not isinstance(data, str):
        return None
    m = _ACK_ID.match(data)
    if m is None:
        return None
    namespace = (m.group(2) or "/").split("?", 1)[0]
    return namespace, int(m.group(3))


def connect_error() -> str:
    """A Socket.IO ``CONNECT_ERROR`` for the default namespace, as an engine.io message."""
    return "44" + json.dumps({"message": "bad_request", "data": BAD_REQUEST})


class GuardedWebSocket(WebSocket):
    """engine.io's aiohttp websocket, refusing frames engine.io cannot decode: the client gets
    ``CONNECT_ERROR`` and the connection ends as if closed by the client (no traceback)."""

    async def wait(self) -> Any:
        data = await super().wait()
        try:
            eio_packet.Packet(encoded_packet=data)
        except DECODE_ERRORS as e:
            QUIET.warn("engine.io frame", "a websocket", e)
            try:
                await self.send(connect_error())
            except Exception:  # the client may be gone already
                log.debug("could not answer an undecodable frame", exc_info=True)
            return None  # engine.io reads None as "closed by the client"
        return data


_BODY = web.RequestKey("consilium_polling_body", bytes)


class _ReadOnce:
    """A request body read ahead of engine.io, handed to it as its ``wsgi.input``."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def read(self, n: int = -1) -> bytes:
        return self.body


def translate_request(request: web.Request) -> dict[str, Any]:
    """engine.io's aiohttp environ, reading a body the guard already read."""
    environ: dict[str, Any] = eio_aiohttp.translate_request(request)
    body = request.get(_BODY)
    if body is not None:
        environ["wsgi.input"] = _ReadOnce(body)
    return environ


class GuardedServer(socketio.AsyncServer):
    """``socketio.AsyncServer`` answering the packets it cannot decode (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Per server: the driver table is a module-level dict shared by every server.
        self.eio._async = {
            **self.eio._async,
            "websocket": GuardedWebSocket,
            "translate_request": translate_request,
        }

    async def handle_request(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.query.get("transport") == "polling":
            await self._check_polling_body(request)
        response: web.StreamResponse = await super().handle_request(request)
        return response

    async def _check_polling_body(self, request: web.Request) -> None:
        """Decode a long-polling payload before engine.io does (it would log a traceback per
        malformed body): 400 problem+json, one quiet log line, the session closed."""
        length = request.content_length
        if length is None or length > self.eio.max_http_buffer_size:
            return  # engine.io refuses it itself (400), without a traceback
        body = await request.read()
        request[_BODY] = body
        try:
            eio_payload.Payload(encoded_payload=body.decode("utf-8"))
        except DECODE_ERRORS as e:
            sid = request.query.get("sid", "")
            QUIET.warn("engine.io payload", sid[:40] or "a polling client", e)
            if sid in self.eio.sockets:
                # Not awaited: closing a polling session waits for its next GET.
                self.start_background_task(self.eio.disconnect, sid)
            raise BadRequest(
                "The long-polling body is not an engine.io payload", code="bad_request"
            ) from None

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except DECODE_ERRORS as e:
            self._binary_packet.pop(eio_sid, None)
            await self._refuse(eio_sid, data, e)

    async def _refuse(self, eio_sid: str, data: Any, error: BaseException) -> None:
        QUIET.warn("Socket.IO packet", eio_sid, error)
        target = ack_target(data)
        if target is not None and self.manager.sid_from_eio_sid(eio_sid, target[0]):
            namespace, ack_id = target
            ack = {"ok": False, "error": BAD_REQUEST}
            await self._send_packet(
                eio_sid,
                self.packet_class(sio_packet.ACK, namespace=namespace, id=ack_id, data=[ack]),
            )
            return
        await self._send_packet(
            eio_sid,
            self.packet_class(
                sio_packet.CONNECT_ERROR,
                namespace="/",
                data={"message": "bad_request", "data": BAD_REQUEST},
            ),
        )
        # Not awaited here: closing waits until the queued packets were sent, which with the
        # polling transport happens on the client's next GET, after this POST is answered.
        self.start_background_task(self.eio.disconnect, eio_sid)
