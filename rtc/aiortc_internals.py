"""Every use of aiortc/aioice internals by the SFU, in one place.

aiortc's public API decodes every received track (a decoder thread per receiver) and encodes
every sent track (an encoder per sender). The SFU goes underneath:

* a receiver's `receive()` is replaced, so no decoder thread starts; instead our own RTP sink
  is registered in the DTLS transport's RTP router, where aiortc would register the receiver;
* a sender's `send()` is replaced, so no encoder task starts; instead our own RTCP handler is
  registered under the sender's SSRC and RTP goes out through :class:`TransportWriter`;
* :class:`TransportWriter` protects with the transport's SRTP session and writes to the
  nominated ICE pair's socket synchronously (aiortc's path is three awaits deep).

tests/rtc/test_aiortc_internals.py asserts that every attribute used here still exists:
run it after any aiortc or aioice upgrade.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import random
import secrets
import socket
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import aioice
import aioice.ice
import aioice.stun
from aiortc import (
    RTCDtlsTransport,
    RTCIceTransport,
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc.codecs import h264 as _h264
from aiortc.codecs import vpx as _vpx
from aiortc.exceptions import InvalidStateError
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters, RTCRtpSendParameters
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unpack_remb_fci,
)
from aiortc.sdp import SessionDescription, candidate_from_sdp
from pylibsrtp import SRTP_MAX_TRAILER_LEN
from pylibsrtp._binding import ffi as _srtp_ffi
from pylibsrtp._binding import lib as _srtp_lib

logger = logging.getLogger(__name__)

__all__ = [
    "RTCP_PSFB_APP",
    "RTCP_PSFB_FIR",
    "RTCP_PSFB_PLI",
    "RTCP_RTPFB_NACK",
    "AnyRtcpPacket",
    "IceRestart",
    "RtcpByePacket",
    "RtcpPsfbPacket",
    "RtcpReceiverInfo",
    "RtcpRrPacket",
    "RtcpRtpfbPacket",
    "RtcpSdesPacket",
    "RtcpSenderInfo",
    "RtcpSourceInfo",
    "RtcpSrPacket",
    "RtpPacket",
    "SessionDescription",
    "StreamStatistics",
    "TransportWriter",
    "candidate_from_sdp",
    "depayload",
    "enlarge_socket_buffers",
    "guard_ice_connection",
    "ice_connections",
    "ice_restart_supported",
    "ice_transport",
    "intercept_receiver",
    "intercept_sender",
    "negotiated_codecs",
    "pack_remb_fci",
    "receive_rid_extensions",
    "refused_by_guard",
    "remote_ice_ufrag",
    "restrict_host_addresses",
    "restrict_udp_ports",
    "route_unknown_ssrc_by_mid",
    "rtcp_ssrc",
    "selected_pair",
    "sender_ssrc",
    "set_negotiated_codecs",
    "tap_rtcp",
    "unpack_remb_fci",
]


class RtpSink(Protocol):
    """What aiortc's RTP router calls for a receiving m-line (duck-types RTCRtpReceiver)."""

    async def _handle_rtp_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None: ...

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None: ...

    def _handle_disconnect(self) -> None: ...


class RtcpSource(Protocol):
    """What aiortc's RTP router calls for a sending m-line (duck-types RTCRtpSender)."""

    _ssrc: int

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None: ...


# --- receiving side -------------------------------------------------------------------------


def intercept_receiver(
    receiver: RTCRtpReceiver,
    on_receive: Callable[[RTCRtpReceiveParameters, RTCDtlsTransport], RtpSink],
) -> None:
    """Make `receiver` hand its RTP to a sink of ours instead of decoding it.

    aiortc calls `receiver.receive(parameters)` once DTLS is connected (again after each
    negotiation); the first call registers the sink built by `on_receive` in the transport's
    router. No decoder thread and no RTCP task of aiortc ever start for this receiver.
    """
    state: dict[str, Any] = {}

    async def receive(parameters: RTCRtpReceiveParameters) -> None:
        if "sink" in state:
            return
        transport = receiver.transport
        sink = on_receive(parameters, transport)
        transport._register_rtp_receiver(sink, parameters)
        # aiortc routes only the primary SSRC; let retransmissions (RTX) reach the sink too
        for encoding in parameters.encodings:
            if encoding.rtx is not None:
                transport._rtp_router.ssrc_table[encoding.rtx.ssrc] = sink
        state["sink"] = sink
        state["transport"] = transport

    async def stop() -> None:
        sink = state.pop("sink", None)
        if sink is not None:
            state["transport"]._unregister_rtp_receiver(sink)

    setattr(receiver, "receive", receive)  # noqa: B010 - instance override on purpose
    setattr(receiver, "stop", stop)  # noqa: B010


def rtcp_ssrc(transceiver: RTCRtpTransceiver) -> int:
    """The SSRC aiortc uses as sender of RTCP feedback for this transceiver's receiver."""
    return int(transceiver.sender._ssrc)


# --- sending side ---------------------------------------------------------------------------


def intercept_sender(
    sender: RTCRtpSender,
    on_send: Callable[[RTCRtpSendParameters, RTCDtlsTransport], RtcpSource],
) -> None:
    """Make `sender` send nothing by itself: RTP is written by our down-track.

    aiortc calls `sender.send(parameters)` after each negotiation where the m-line sends;
    `on_send` is called every time (parameters may change: payload type, extensions) and
    returns the object that receives RTCP for the sender's SSRC, registered once.
    """
    state: dict[str, Any] = {}

    async def send(parameters: RTCRtpSendParameters) -> None:
        transport = sender.transport
        handler = on_send(parameters, transport)
        if state.get("handler") is not handler or state.get("transport") is not transport:
            transport._register_rtp_sender(handler, parameters)
            state["handler"] = handler
            state["transport"] = transport

    async def stop() -> None:
        handler = state.pop("handler", None)
        if handler is not None:
            state["transport"]._unregister_rtp_sender(handler)

    setattr(sender, "send", send)  # noqa: B010
    setattr(sender, "stop", stop)  # noqa: B010


def sender_ssrc(sender: RTCRtpSender) -> int:
    """The SSRC aiortc announces in SDP for this sender."""
    return int(sender._ssrc)


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """Codecs negotiated for a transceiver (set by setRemoteDescription), RTX included."""
    return list(transceiver._codecs)


def set_negotiated_codecs(
    transceiver: RTCRtpTransceiver, codecs: Sequence[RTCRtpCodecParameters]
) -> None:
    """Narrow what the next answer accepts for this m-line (after setRemoteDescription)."""
    transceiver._codecs = list(codecs)


class TransportWriter:
    """Synchronous SRTP and SRTCP output on a connected DTLS transport.

    aiortc's `RTCDtlsTransport._send_rtp` awaits the ICE connection, which awaits the STUN
    protocol, which calls `sendto`. Here the SRTP session and the nominated pair's socket are
    looked up once; each packet costs one `protect` and one `sendto`.
    """

    __slots__ = ("_dtls", "_socket", "dropped", "rtcp", "rtp")

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self._dtls = dtls
        self._socket: socket.socket | None = None
        self.rtp: Callable[[bytes], None] | None = None
        self.rtcp: Callable[[bytes], None] | None = None
        #: packets the kernel refused (socket buffer full): dropped, as late media is useless
        self.dropped = 0

    def bind(self) -> bool:
        """Resolve the SRTP session and socket; False while the transport is not connected."""
        dtls = self._dtls
        if dtls.state != "connected" or dtls._tx_srtp is None:
            return False
        pair = selected_pair(dtls.transport._connection)
        if pair is None:
            return False
        transport = pair.protocol.transport
        enlarge_socket_buffers(transport)
        addr = pair.remote_addr
        # our own handle on the ICE socket: a plain non-blocking sendto, no asyncio buffering
        self._socket = sock = socket.socket(
            fileno=os.dup(transport.get_extra_info("socket").fileno())
        )
        sock.setblocking(False)
        sendto = sock.sendto
        protect = _fast_protect(dtls._tx_srtp)
        protect_rtcp = dtls._tx_srtp.protect_rtcp

        def write_rtp(data: bytes) -> None:
            protected = protect(data)
            if protected is None:  # SRTP refused it (e.g. replay window): drop
                self.dropped += 1
                return
            try:
                sendto(protected, addr)
            except (BlockingIOError, InterruptedError):
                self.dropped += 1

        def write_rtcp(data: bytes) -> None:
            try:
                sendto(protect_rtcp(data), addr)
            except (BlockingIOError, InterruptedError):
                self.dropped += 1

        self.rtp = write_rtp
        self.rtcp = write_rtcp
        return True

    @property
    def dtls(self) -> RTCDtlsTransport:
        return self._dtls

    def unbind(self) -> None:
        self.rtp = None
        self.rtcp = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def fast_rtp_input(dtls: RTCDtlsTransport) -> bool:
    """Deliver SRTP arriving on the nominated ICE pair straight to the registered RTP sinks.

    aiortc's input path tries to parse each datagram as STUN (an exception per RTP packet),
    queues it, wakes the DTLS task, then unprotects, parses and routes it. Here RTP is
    unprotected, parsed and routed in the socket callback and handed to the sink's
    synchronous `on_rtp(packet, arrival_ms)`; STUN, DTLS and SRTCP keep aiortc's path.
    Sinks without `on_rtp` get nothing (the SFU registers no decoding receiver anyway).
    """
    pair = selected_pair(dtls.transport._connection)
    if pair is None or dtls._rx_srtp is None:
        return False
    protocol = pair.protocol
    if getattr(protocol, "_consilium_fast_input", False):
        return True
    original = protocol.datagram_received
    unprotect = _fast_unprotect(dtls._rx_srtp)
    extensions_map = dtls._rtp_header_extensions_map
    route = dtls._rtp_router.route_rtp
    parse = RtpPacket.parse
    now = time.time
    failures = [0]

    def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
        if len(data) > 12 and 127 < data[0] < 192 and not 191 < data[1] < 209:
            clear = unprotect(data)
            if clear is None:  # not authentic, replayed, too long: dropped
                return
            try:
                packet = parse(clear, extensions_map)
            except (ValueError, struct.error):  # a malformed extension too
                return
            on_rtp = getattr(route(packet), "on_rtp", None)
            if on_rtp is not None:
                try:
                    on_rtp(packet, int(now() * 1000))
                except Exception:  # one bad packet must not take the socket down
                    failures[0] += 1
                    if failures[0] in (1, 10, 100, 1000):
                        logger.exception("forwarding failed (%d times)", failures[0])
        else:
            original(data, addr)

    setattr(protocol, "datagram_received", datagram_received)  # noqa: B010
    setattr(protocol, "_consilium_fast_input", True)  # noqa: B010
    return True


def tap_rtcp(dtls: RTCDtlsTransport, tap: Callable[[bytes], None]) -> None:
    """Show every clear-text RTCP datagram of this transport to `tap` before aiortc parses it.

    aiortc's RTCP parser reads transport-cc feedback (RTPFB FMT 15) as if it were a NACK and
    keeps nothing of it: the raw datagram is the only place its content exists. One tap per
    transport (a second call replaces the first).
    """
    original = getattr(dtls, "_consilium_rtcp_original", None)
    if original is None:
        original = dtls._handle_rtcp_data
        setattr(dtls, "_consilium_rtcp_original", original)  # noqa: B010

    async def handle_rtcp_data(data: bytes) -> None:
        try:
            tap(data)
        except Exception:  # feedback must never stop RTCP routing
            logger.exception("RTCP tap failed")
        await original(data)

    setattr(dtls, "_handle_rtcp_data", handle_rtcp_data)  # noqa: B010


def uses_fast_rtp_input(dtls: RTCDtlsTransport) -> bool:
    """Whether `fast_rtp_input` is in place on this transport's socket (for tests)."""
    pair = selected_pair(dtls.transport._connection)
    return pair is not None and bool(getattr(pair.protocol, "_consilium_fast_input", False))


def _fast_protect(session: Any) -> Callable[[bytes], bytes | None]:
    """pylibsrtp's `Session.protect` without its per-call allocation and checks.

    Same C call on the session's own buffer (pylibsrtp reuses it too); a fifth of the
    forwarding CPU went to the wrapper. Single-threaded use only, as with pylibsrtp.
    """
    return _fast_srtp(session, _srtp_lib.srtp_protect, SRTP_MAX_TRAILER_LEN)


def _fast_unprotect(session: Any) -> Callable[[bytes], bytes | None]:
    """pylibsrtp's `Session.unprotect` the same way: None for a packet libsrtp refuses
    (authentication, replay), where pylibsrtp raises."""
    return _fast_srtp(session, _srtp_lib.srtp_unprotect, 0)


def _fast_srtp(session: Any, func: Any, trailer: int) -> Callable[[bytes], bytes | None]:
    cdata = session._cdata
    buffer = session._buffer
    srtp = session._srtp[0]
    length = _srtp_ffi.new("int *")
    limit = len(cdata) - trailer

    def process(data: bytes) -> bytes | None:
        n = len(data)
        if n > limit:
            return None
        buffer[0:n] = data
        length[0] = n
        if func(srtp, cdata, length):
            return None  # libsrtp refused it (replay window, authentication, ...)
        return buffer[0 : length[0]]

    return process


def enlarge_socket_buffers(transport: Any, size: int = 1 << 20) -> None:
    """Room for bursts (a keyframe to many subscribers) when the process is briefly busy."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):
            if sock.getsockopt(socket.SOL_SOCKET, option) < size:
                sock.setsockopt(socket.SOL_SOCKET, option, size)


# --- codecs ---------------------------------------------------------------------------------


def depayload(codec_name: str, payload: bytes) -> bytes:
    """Bytes of the encoded frame carried by one RTP payload (VP8 or H.264)."""
    if codec_name == "VP8":
        return _vpx.vp8_depayload(payload)
    if codec_name == "H264":
        return _h264.h264_depayload(payload)
    return payload


# --- ICE ------------------------------------------------------------------------------------

_original_get_host_addresses = aioice.ice.get_host_addresses


def restrict_host_addresses(allowed: Sequence[str] | None) -> None:
    """Make every ICE agent of this process gather only on `allowed` addresses.

    aioice lists the machine's interfaces and leaves 127.0.0.1 out; with `allowed` set, the
    host candidates are exactly the allowed addresses that are plain IPs (networks in CIDR
    form select among the machine's addresses and loopback). `None` restores aioice's listing.
    Process-wide, since aioice reads a module-level function.
    """
    if not allowed:
        aioice.ice.get_host_addresses = _original_get_host_addresses
        return
    networks = [ipaddress.ip_network(a, strict=False) for a in allowed]
    explicit = [a for a in allowed if "/" not in a]
    for loopback in ("127.0.0.1", "::1"):  # aioice never lists loopback itself
        ip = ipaddress.ip_address(loopback)
        if loopback not in explicit and any(ip in n for n in networks):
            explicit.append(loopback)

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        found = list(explicit)
        for addr in _original_get_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6):
            ip = ipaddress.ip_address(addr)
            if addr not in found and any(ip in n for n in networks):
                found.append(addr)
        result = []
        for addr in found:
            version = ipaddress.ip_address(addr).version
            if (version == 4 and use_ipv4) or (version == 6 and use_ipv6):
                result.append(addr)
        return result

    aioice.ice.get_host_addresses = get_host_addresses


class _PortRangeLoop:
    """The running loop as aioice's host-candidate gathering sees it: a socket asked on port
    0 (any) is bound on a free port of the range instead; everything else is the loop's."""

    def __init__(self, loop: asyncio.AbstractEventLoop, ports: tuple[int, int]) -> None:
        self._loop, self._ports = loop, ports

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)

    async def create_datagram_endpoint(
        self, protocol_factory: Callable[[], Any], local_addr: Any = None, **kw: Any
    ) -> Any:
        if local_addr is None or local_addr[1] != 0:
            return await self._loop.create_datagram_endpoint(
                protocol_factory, local_addr=local_addr, **kw
            )
        low, high = self._ports
        span = high - low + 1
        first = random.randrange(span)  # spread, so a busy range is not scanned from its start
        for k in range(span):
            port = low + (first + k) % span
            try:
                return await self._loop.create_datagram_endpoint(
                    protocol_factory, local_addr=(local_addr[0], port), **kw
                )
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    raise
        raise OSError(errno.EADDRINUSE, f"no free UDP port in {low}-{high} on {local_addr[0]}")


class _AsyncioForAioice:
    """``asyncio`` as the module ``aioice.ice`` sees it: its running loop binds host
    candidates in the port range; every other name is asyncio's own."""

    def __init__(self, ports: tuple[int, int]) -> None:
        self._ports = ports

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    def get_running_loop(self) -> Any:
        return _PortRangeLoop(asyncio.get_running_loop(), self._ports)


def restrict_udp_ports(ports: tuple[int, int] | None) -> None:
    """Make every ICE agent of this process bind its host sockets (and so its host and
    server-reflexive candidates) on UDP ports of ``ports`` (inclusive); None restores any
    free port. aioice 0.13 has no port-range option: its gathering binds ``(address, 0)``
    through the running loop, which this swaps in ``aioice.ice``'s view of asyncio only.
    TURN allocations keep an ephemeral local port (they are outgoing). Process-wide."""
    aioice.ice.asyncio = asyncio if ports is None else _AsyncioForAioice(ports)  # type: ignore[assignment]


def ice_connections(pc: Any) -> list[aioice.ice.Connection]:
    """The aioice agents of a peer connection's transports (one with max-bundle)."""
    found: dict[int, aioice.ice.Connection] = {}
    for transceiver in pc.getTransceivers():
        for dtls in (transceiver.sender.transport, transceiver.receiver.transport):
            connection = getattr(getattr(dtls, "transport", None), "_connection", None)
            if connection is not None:
                found[id(connection)] = connection
    return list(found.values())


def guard_ice_connection(connection: aioice.ice.Connection, allows: Callable[[str], bool]) -> None:
    """Make one aioice agent ignore remote addresses `allows` refuses (idempotent).

    * a STUN binding request from a refused address gets no answer and creates no
      peer-reflexive candidate nor pair (aioice's `request_received` → `check_incoming`);
    * a remote candidate reached at a refused address (an mDNS name once resolved, or any
      candidate that got past signalling) is not paired (`_add_remote_candidate`).
    `connection._consilium_refused` counts the refused requests (for tests and stats).
    """
    if getattr(connection, "_consilium_guarded", False):
        return
    request_received = connection.request_received
    add_remote_candidate = connection._add_remote_candidate

    def guarded_request(message: Any, addr: tuple[Any, ...], protocol: Any) -> None:
        if not allows(str(addr[0])):
            connection._consilium_refused += 1  # type: ignore[attr-defined]
            return
        request_received(message, addr, protocol)

    def guarded_candidate(remote_candidate: Any, network_host: str) -> None:
        if not allows(str(network_host)):
            connection._consilium_refused += 1  # type: ignore[attr-defined]
            return
        add_remote_candidate(remote_candidate, network_host)

    setattr(connection, "request_received", guarded_request)  # noqa: B010
    setattr(connection, "_add_remote_candidate", guarded_candidate)  # noqa: B010
    setattr(connection, "_consilium_refused", 0)  # noqa: B010
    setattr(connection, "_consilium_guarded", True)  # noqa: B010


def refused_by_guard(pc: Any) -> int:
    """Remote addresses the guard refused on this peer connection so far."""
    return sum(getattr(c, "_consilium_refused", 0) for c in ice_connections(pc))


def receive_rid_extensions() -> None:
    """Let aiortc accept the RID header extensions (simulcast) on video m-lines. Idempotent.

    aiortc answers and offers only the extensions of its table `codecs.HEADER_EXTENSIONS`
    (mid, abs-send-time for video); its packet parser already reads `sdes:rtp-stream-id` and
    `sdes:repaired-rtp-stream-id` once they are negotiated. Process-wide.
    """
    from aiortc.codecs import HEADER_EXTENSIONS
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters

    video = HEADER_EXTENSIONS["video"]
    known = {e.uri for e in video}
    for ext_id, uri in (
        (10, "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"),
        (11, "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"),
    ):
        if uri not in known:
            video.append(RTCRtpHeaderExtensionParameters(id=ext_id, uri=uri))


def route_unknown_ssrc_by_mid() -> None:
    """Route a packet of an SSRC nobody announced by its MID header extension. Idempotent.

    aiortc's `RtpRouter.route_rtp` knows the SSRCs of the remote description and otherwise
    guesses from the payload type, which fails as soon as two m-lines share one (a camera
    and a screen share both on VP8 96). Simulcast layers are never announced by SSRC: their
    first packets carry the MID (and the RID), so the SSRC is learnt from the MID here, the
    way BUNDLE (RFC 9143 §9.2) says. Process-wide; the original routing is tried first.
    """
    from aiortc.rtcdtlstransport import RtpRouter

    original = RtpRouter.route_rtp
    if getattr(original, "_consilium_mid", False):
        return

    def route_rtp(self: Any, packet: RtpPacket) -> Any:
        if packet.ssrc not in self.ssrc_table:
            mid = packet.extensions.mid
            receiver = self.mid_table.get(mid) if mid is not None else None
            if receiver is not None:
                self.ssrc_table[packet.ssrc] = receiver
                return receiver
        return original(self, packet)

    route_rtp._consilium_mid = True  # type: ignore[attr-defined]
    RtpRouter.route_rtp = route_rtp  # type: ignore[method-assign]


def quiet_connect_after_close() -> None:
    """Silence aiortc's connect task when the connection closes under it.

    `RTCPeerConnection.__connect` runs as a task nobody awaits, after each description
    applied; it checks for a close only when it starts. A participant removed while it runs
    (leaving during a negotiation) makes the next `RTCIceTransport.start()` raise
    `InvalidStateError("RTCIceTransport is closed")`, logged as "Task exception was never
    retrieved". Only that case is silenced: the same error on an open connection still
    raises. Idempotent.
    """
    original = RTCPeerConnection._RTCPeerConnection__connect  # type: ignore[attr-defined]
    if getattr(original, "_consilium_quiet", False):
        return

    async def connect(self: RTCPeerConnection) -> None:
        try:
            await original(self)
        except InvalidStateError:
            if getattr(self, "_RTCPeerConnection__isClosed", None) is None:
                raise

    connect._consilium_quiet = True  # type: ignore[attr-defined]
    RTCPeerConnection._RTCPeerConnection__connect = connect  # type: ignore[attr-defined]


# --- ICE restart ----------------------------------------------------------------------------

#: the aioice and aiortc versions whose private ICE state :class:`IceRestart` resets
ICE_RESTART_VERSIONS = {"aioice": "0.13.", "aiortc": "1.16."}

_ICE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _ice_string(length: int) -> str:
    return "".join(secrets.choice(_ICE_CHARS) for _ in range(length))


def ice_restart_supported() -> bool:
    """Whether the installed aioice/aiortc are the versions :class:`IceRestart` was written
    against (it resets their private state: an upgrade must be read first)."""
    import aiortc

    return aioice.__version__.startswith(ICE_RESTART_VERSIONS["aioice"]) and str(
        aiortc.__version__
    ).startswith(ICE_RESTART_VERSIONS["aiortc"])


def ice_transport(pc: Any) -> RTCIceTransport | None:
    """The ICE transport of a max-bundle peer connection (None before the first m-line)."""
    for transceiver in pc.getTransceivers():
        transport = getattr(transceiver.receiver.transport, "transport", None)
        if transport is not None:
            return transport
    return None


def remote_ice_ufrag(pc: Any) -> str | None:
    """The ufrag the ICE agent checks the peer's requests against (None: not known yet)."""
    transport = ice_transport(pc)
    if transport is None:
        return None
    return transport._connection.remote_username


def selected_pair(connection: aioice.ice.Connection) -> Any:
    """The candidate pair carrying data: the nominated one, or during an ICE restart the
    previous one until a new pair is nominated."""
    pair = connection._nominated.get(1)
    if pair is None:
        restart = getattr(connection, "_consilium_restart", None)
        if restart is not None:
            pair = restart.previous
    return pair


class IceRestart:
    """ICE restart on the same `RTCIceTransport`, under the same DTLS and SRTP session.

    aiortc starts its ICE transport once (`RTCIceTransport.start` returns at once after the
    first call) and aioice's `Connection.connect` runs once. A restart keeps the aioice
    `Connection` object (the DTLS transport reads and writes through it) and resets what
    ICE negotiates inside it:

    1. :meth:`prepare` (before the description that carries the new credentials is made or
       applied): checks and consent stop; the nominated pair becomes `previous`, which still
       carries media (and answers the peer's consent checks under the old credentials) until
       a new pair is nominated; new local ufrag/pwd; remote candidates and the check list
       are emptied; candidates are gathered again on new sockets (the old ones stay open
       until the switch). aiortc writes the new credentials and candidates into the next
       description it makes (`getLocalParameters`, `getLocalCandidates`).
    2. :meth:`start` (once the peer's new credentials are known and its candidates added):
       `connect()` runs again. When a pair is nominated, `on_selected` is called (the SFU
       rebinds its fast paths to the new socket) and the old sockets close. A restart that
       fails or times out closes the connection (as a failed consent check does): the
       transport goes `failed`.

    DTLS reads with `RTCIceTransport._recv` and writes with `_send`, which aiortc binds to
    the connection's `recv`/`send`; those refuse to work while no pair is nominated, so they
    are replaced by versions that use :func:`selected_pair`. A new restart while one is
    still connecting supersedes it.
    """

    def __init__(
        self,
        transport: RTCIceTransport,
        on_selected: Callable[[], None] | None = None,
        timeout: float = 30.0,
    ) -> None:
        if not ice_restart_supported():
            raise RuntimeError("ICE restart was written for aioice 0.13 / aiortc 1.16")
        self.transport = transport
        self.connection: aioice.ice.Connection = transport._connection
        self.on_selected = on_selected
        self.timeout = timeout
        #: the pair that carried media before the restart, until a new one is nominated
        self.previous: Any = None
        self._previous_local: tuple[str, str] | None = None
        self._retired: list[Any] = []
        self._task: asyncio.Task[bool] | None = None
        #: completed restarts, and the seconds the last one took from prepare to nomination
        self.count = 0
        self.last_duration: float | None = None
        self._prepared_at = 0.0
        self._install()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def local_parameters(self) -> tuple[str, str]:
        return self.connection.local_username, self.connection.local_password

    def _install(self) -> None:
        connection = self.connection
        if getattr(connection, "_consilium_restart", None) is not None:
            raise RuntimeError("an IceRestart is already installed on this connection")
        setattr(connection, "_consilium_restart", self)  # noqa: B010
        queue = connection._queue

        async def send(data: bytes) -> None:
            pair = selected_pair(connection)
            if pair is None:
                raise ConnectionError("Cannot send data, not connected")
            if pair.protocol.transport.is_closing():
                return  # the previous path's socket is gone: dropped until a pair is nominated
            await pair.protocol.send_data(data, pair.remote_addr)

        async def recv() -> bytes:
            if selected_pair(connection) is None:
                raise ConnectionError("Cannot receive data, not connected")
            result = await queue.get()
            if result is None:
                raise ConnectionError("Connection lost while receiving data")
            return result[0]

        self.transport._send = send
        self.transport._recv = recv

        request_received = connection.request_received

        def answer_previous(message: Any, addr: tuple[Any, ...], protocol: Any) -> None:
            """Consent checks on the previous pair, under the previous credentials."""
            previous, local = self.previous, self._previous_local
            if (
                previous is not None
                and local is not None
                and (addr[0], addr[1]) == (previous.remote_addr)
            ):
                username = str(message.attributes.get("USERNAME", ""))
                if username.partition(":")[0] == local[0]:
                    if message.check_message_integrity(local[1].encode("utf8")):
                        response = aioice.stun.Message(
                            message_method=aioice.stun.Method.BINDING,
                            message_class=aioice.stun.Class.RESPONSE,
                            transaction_id=message.transaction_id,
                        )
                        response.attributes["XOR-MAPPED-ADDRESS"] = (addr[0], addr[1])
                        response.add_message_integrity(local[1].encode("utf8"))
                        protocol.send_stun(response, (addr[0], addr[1]))
                    return
            request_received(message, addr, protocol)

        setattr(connection, "request_received", answer_previous)  # noqa: B010

    async def prepare(self) -> tuple[str, str]:
        """Stop the current ICE negotiation, take new local credentials, gather again.

        Returns the new (ufrag, pwd). Media keeps flowing on the previous pair meanwhile.
        """
        connection = self.connection
        if connection._closing or self.transport.state == "closed":
            raise ConnectionError("the ICE connection is closed")
        if connection._components != {1}:
            raise ConnectionError("ICE restart needs one component (rtcp-mux)")
        await self._stop_task()
        consent = connection._query_consent_task
        connection._query_consent_task = None
        checks = [p.task for p in connection._check_list if p.task is not None]
        for task in [consent, *checks]:
            if task is not None and not task.done():
                task.cancel()
        pending = [t for t in [consent, *checks] if t is not None]
        if pending:
            await asyncio.wait(pending)
        nominated = connection._nominated.get(1)
        if nominated is not None:
            # a restart of a restart keeps the pair that last carried media
            self.previous = nominated
            self._previous_local = (connection.local_username, connection.local_password)
        connection._nominated.clear()
        connection._nominating.clear()
        self._retired.extend(connection._protocols)
        connection._protocols = []
        connection._check_list = []
        connection._check_list_done = False
        connection._check_list_state = asyncio.Queue()
        connection._early_checks.clear()
        connection._early_checks_done = False
        connection._remote_candidates = []
        connection._remote_candidates_end = False
        connection.remote_username = None
        connection.remote_password = None
        self.transport.iceGatherer._remote_candidates_end = False
        connection._local_username = _ice_string(8)
        connection._local_password = _ice_string(24)
        addresses: list[str] = []
        if connection._transport_policy == aioice.ice.TransportPolicy.ALL:
            addresses = aioice.ice.get_host_addresses(
                use_ipv4=connection._use_ipv4, use_ipv6=connection._use_ipv6
            )
        connection._local_candidates = await connection.get_component_candidates(
            component=1, addresses=addresses
        )
        self._prepared_at = time.monotonic()
        return self.local_parameters

    def start(self, username: str, password: str, ice_lite: bool = False) -> asyncio.Task[bool]:
        """Check and nominate a new pair with the peer's new credentials (after its
        candidates from the description were added; trickled ones may follow)."""
        connection = self.connection
        connection.remote_username = username
        connection.remote_password = password
        connection.remote_is_lite = ice_lite
        self._task = asyncio.create_task(self._connect())
        return self._task

    async def _connect(self) -> bool:
        connection = self.connection
        try:
            await asyncio.wait_for(connection.connect(), self.timeout)
        except (TimeoutError, ConnectionError):
            logger.info("ICE restart failed: closing the ICE connection")
            await connection.close()
            await self._close_retired()
            return False
        self.last_duration = time.monotonic() - self._prepared_at
        self.count += 1
        self.previous = None
        self._previous_local = None
        await self._close_retired()
        if self.on_selected is not None:
            self.on_selected()
        return True

    async def _close_retired(self) -> None:
        keep = {id(p.protocol) for p in self.connection._nominated.values()}
        retired, self._retired = self._retired, []
        for protocol in retired:
            if id(protocol) in keep:
                self.connection._protocols.append(protocol)
                continue
            with contextlib.suppress(Exception):
                await protocol.close()

    async def _stop_task(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        await self._stop_task()
        await self._close_retired()
