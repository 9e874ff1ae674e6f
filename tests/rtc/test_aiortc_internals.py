"""Guard: everything rtc/aiortc_internals.py relies on still exists in aiortc and aioice.

If this fails after an upgrade, read the new aiortc source before touching the pin.
"""

from __future__ import annotations

import inspect

import aioice.ice
import aiortc
from aiortc import rtcpeerconnection, rtcrtpreceiver, rtcrtpsender
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtp import RtpPacket

from rtc import aiortc_internals


def params(func: object) -> list[str]:
    return list(inspect.signature(func).parameters)  # type: ignore[arg-type]


def test_aiortc_version_is_the_one_we_read() -> None:
    assert aiortc.__version__.startswith("1.16."), aiortc.__version__


def test_receiver_and_sender_hooks_exist() -> None:
    assert params(aiortc.RTCRtpReceiver.receive) == ["self", "parameters"]
    assert params(aiortc.RTCRtpReceiver.stop) == ["self"]
    assert params(aiortc.RTCRtpSender.send) == ["self", "parameters"]
    assert params(aiortc.RTCRtpSender.stop) == ["self"]
    # what the router calls on whatever is registered in place of receivers and senders
    assert params(rtcrtpreceiver.RTCRtpReceiver._handle_rtp_packet) == [
        "self",
        "packet",
        "arrival_time_ms",
    ]
    assert params(rtcrtpreceiver.RTCRtpReceiver._handle_rtcp_packet) == ["self", "packet"]
    assert params(rtcrtpreceiver.RTCRtpReceiver._handle_disconnect) == ["self"]
    assert params(rtcrtpsender.RTCRtpSender._handle_rtcp_packet) == ["self", "packet"]
    # the peer connection drives them through send()/receive() in __connect
    source = inspect.getsource(rtcpeerconnection.RTCPeerConnection)
    assert "await transceiver.sender.send(self.__localRtp(transceiver))" in source
    assert "await transceiver.receiver.receive(" in source
    assert "transceiver._codecs = common" in source


def test_dtls_transport_internals_exist() -> None:
    assert params(RTCDtlsTransport._register_rtp_receiver) == ["self", "receiver", "parameters"]
    assert params(RTCDtlsTransport._register_rtp_sender) == ["self", "sender", "parameters"]
    assert params(RTCDtlsTransport._unregister_rtp_receiver) == ["self", "receiver"]
    assert params(RTCDtlsTransport._unregister_rtp_sender) == ["self", "sender"]
    assert params(RTCDtlsTransport._handle_rtp_data) == ["self", "data", "arrival_time_ms"]
    # tap_rtcp: clear-text RTCP datagrams go through this one coroutine, called on the instance
    assert params(RTCDtlsTransport._handle_rtcp_data) == ["self", "data"]
    assert "await self._handle_rtcp_data(data)" in inspect.getsource(RTCDtlsTransport._recv_next)
    init = inspect.getsource(RTCDtlsTransport.__init__)
    assert "self._tx_srtp" in init and "self._rx_srtp" in init
    assert "self._rtp_router = RtpRouter()" in init
    assert "self._rtp_header_extensions_map" in init
    assert params(RtpRouter.route_rtp) == ["self", "packet"]
    # the input path that fast_rtp_input short-cuts: socket -> STUN parse -> queue
    assert params(aioice.ice.StunProtocol.datagram_received) == ["self", "data", "addr"]
    assert "self._queue.put_nowait" in inspect.getsource(aioice.ice.Connection.data_received)
    assert "ssrc_table" in inspect.getsource(RtpRouter.__init__)
    # the router routes RTCP to senders by SSRC and to receivers by SSRC
    route = inspect.getsource(RtpRouter.route_rtcp)
    assert "self.senders.get(packet.media_ssrc)" in route
    assert "unpack_remb_fci" in route


def test_ice_internals_exist() -> None:
    assert "_connection" in inspect.getsource(RTCIceTransport.__init__)
    connection_init = inspect.getsource(aioice.ice.Connection.__init__)
    assert "self._nominated" in connection_init
    pair_init = inspect.getsource(aioice.ice.CandidatePair.__init__)
    assert "self.protocol" in pair_init and "remote_candidate" in pair_init
    assert hasattr(aioice.ice.CandidatePair, "remote_addr")
    assert params(aioice.ice.get_host_addresses) == ["use_ipv4", "use_ipv6"]
    assert "get_host_addresses(" in inspect.getsource(aioice.ice.Connection.gather_candidates)


def test_the_connect_task_we_wrap_exists() -> None:
    # rtc.aiortc_internals.quiet_connect_after_close wraps it; it tells a closing connection
    # by the private future close() sets
    from aiortc import RTCPeerConnection

    assert hasattr(RTCPeerConnection, "_RTCPeerConnection__connect")
    assert "self.__isClosed = asyncio.Future()" in inspect.getsource(RTCPeerConnection.close)
    assert "self.__connect()" in inspect.getsource(RTCPeerConnection.setRemoteDescription)


def test_the_address_guard_hooks_exist() -> None:
    # rtc.ice.guard replaces these two on each agent: checks from unknown addresses reach
    # check_incoming (peer-reflexive candidates) only through request_received, and every
    # remote candidate (signalled, trickled, resolved mDNS) is paired through
    # _add_remote_candidate
    assert params(aioice.ice.Connection.request_received) == ["self", "message", "addr", "protocol"]
    assert params(aioice.ice.Connection._add_remote_candidate) == [
        "self",
        "remote_candidate",
        "network_host",
    ]
    protocol_source = inspect.getsource(aioice.ice.StunProtocol.datagram_received)
    assert "self.receiver.request_received(" in protocol_source
    assert "prflx" in inspect.getsource(aioice.ice.Connection.check_incoming)
    assert "self._add_remote_candidate(" in inspect.getsource(
        aioice.ice.Connection.add_remote_candidate
    )
    assert "_protocols" in inspect.getsource(aioice.ice.Connection.__init__)


def test_transceiver_and_sender_private_attributes() -> None:
    assert "self._ssrc = random32()" in inspect.getsource(aiortc.RTCRtpSender.__init__)
    transceiver_init = inspect.getsource(aiortc.RTCRtpTransceiver.__init__)
    assert "self._codecs" in transceiver_init


def test_rtp_packet_fields_used_on_the_hot_path() -> None:
    packet = RtpPacket(payload_type=96, sequence_number=1, timestamp=2, ssrc=3, payload=b"x")
    for name in ("payload_type", "sequence_number", "timestamp", "ssrc", "marker", "payload"):
        assert hasattr(packet, name)
    assert hasattr(packet.extensions, "audio_level")


def test_depayloaders_and_rtcp_classes_are_reachable() -> None:
    assert aiortc_internals.depayload("VP8", b"\x10\x00abc") == b"\x00abc"
    assert aiortc_internals.depayload("H264", b"\x65abc").endswith(b"\x65abc")
    assert bytes(aiortc_internals.RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=2))
    fci = aiortc_internals.pack_remb_fci(500_000, [7])
    assert aiortc_internals.unpack_remb_fci(fci) == (500_000, [7])


def test_restrict_host_addresses_gathers_loopback_only() -> None:
    try:
        aiortc_internals.restrict_host_addresses(["127.0.0.1"])
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]
        aiortc_internals.restrict_host_addresses(["127.0.0.0/8"])
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
    finally:
        aiortc_internals.restrict_host_addresses(["127.0.0.1"])


async def test_udp_port_range_binds_host_candidates_in_the_range() -> None:
    """aioice gathers host candidates by binding (address, 0) on asyncio's running loop, as
    restrict_udp_ports assumes; with a range every host candidate gets a port of it, and two
    agents never share one."""
    import inspect
    import socket

    source = inspect.getsource(aioice.ice.Connection.get_component_candidates)
    assert "asyncio.get_running_loop()" in source
    assert "local_addr=(address, 0)" in source
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        low = probe.getsockname()[1]  # a port free a moment ago, and its neighbours
    low = min(max(low, 1024), 65535 - 8)
    agents = []
    try:
        aiortc_internals.restrict_host_addresses(["127.0.0.1"])
        aiortc_internals.restrict_udp_ports((low, low + 7))
        ports = set()
        for _ in range(3):
            agent = aioice.ice.Connection(ice_controlling=True, use_ipv6=False)
            agents.append(agent)
            await agent.gather_candidates()
            for c in agent.local_candidates:
                assert low <= c.port <= low + 7, (c.port, low)
                ports.add(c.port)
        assert len(ports) == 3
    finally:
        aiortc_internals.restrict_udp_ports(None)
        for agent in agents:
            await agent.close()
    assert aioice.ice.asyncio is __import__("asyncio")


def test_fast_protect_matches_pylibsrtp() -> None:
    import os
    import struct

    from pylibsrtp import Policy, Session

    key = os.urandom(44)

    def session() -> Session:
        policy = Policy(
            key=key,
            ssrc_type=Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
        )
        policy.allow_repeat_tx = True
        return Session(policy)

    reference, ours = session(), session()
    protect = aiortc_internals._fast_protect(ours)
    for seq in range(3):
        packet = struct.pack("!BBHII", 0x80, 96, seq, 1000, 42) + os.urandom(1100)
        assert protect(packet) == reference.protect(packet)
    # what _fast_protect reads from pylibsrtp
    for name in ("_cdata", "_buffer", "_srtp"):
        assert hasattr(ours, name)


def test_fast_unprotect_matches_pylibsrtp_and_drops_what_it_refuses() -> None:
    import os
    import struct

    from pylibsrtp import Policy, Session

    key = os.urandom(44)

    def session(direction: int) -> Session:
        return Session(
            Policy(key=key, ssrc_type=direction, srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_256_GCM)
        )

    sender = session(Policy.SSRC_ANY_OUTBOUND)
    reference, ours = session(Policy.SSRC_ANY_INBOUND), session(Policy.SSRC_ANY_INBOUND)
    unprotect = aiortc_internals._fast_unprotect(ours)
    for seq in range(3):
        packet = struct.pack("!BBHII", 0x80, 96, seq, 1000, 42) + os.urandom(1100)
        protected = sender.protect(packet)
        assert unprotect(protected) == reference.unprotect(protected) == packet
        assert unprotect(protected) is None  # a replay
    tampered = bytearray(sender.protect(struct.pack("!BBHII", 0x80, 96, 9, 1000, 42) + b"x" * 50))
    tampered[-1] ^= 1
    assert unprotect(bytes(tampered)) is None  # not authentic


def test_simulcast_hooks_exist() -> None:
    """RID extensions in aiortc's table and parser; the router we extend by MID."""
    from aiortc.codecs import HEADER_EXTENSIONS
    from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap

    assert isinstance(HEADER_EXTENSIONS["video"], list)
    assert {"rtp_stream_id", "repaired_rtp_stream_id", "mid"} <= set(
        HeaderExtensions.__dataclass_fields__
    )
    assert "rtp-stream-id" in inspect.getsource(HeaderExtensionsMap.configure)
    assert params(RtpRouter.route_rtp) == ["self", "packet"]
    router = RtpRouter()
    assert router.mid_table == {} and router.ssrc_table == {}
    # idempotent, and what it adds is answered: the RID URIs are in the table
    aiortc_internals.receive_rid_extensions()
    aiortc_internals.receive_rid_extensions()
    uris = [e.uri for e in HEADER_EXTENSIONS["video"]]
    assert uris.count("urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id") == 1
    aiortc_internals.route_unknown_ssrc_by_mid()
    aiortc_internals.route_unknown_ssrc_by_mid()
    assert getattr(RtpRouter.route_rtp, "_consilium_mid", False)


def test_ice_restart_internals_exist() -> None:
    """What `IceRestart` resets inside aioice's Connection and relies on in aiortc."""
    assert aiortc_internals.ice_restart_supported()
    init = inspect.getsource(aioice.ice.Connection.__init__)
    for name in (
        "self._check_list",
        "self._check_list_done",
        "self._check_list_state",
        "self._components",
        "self._early_checks",
        "self._early_checks_done",
        "self._local_candidates",
        "self._local_password",
        "self._local_username",
        "self._nominated",
        "self._nominating",
        "self._protocols",
        "self._query_consent_task",
        "self._queue",
        "self._remote_candidates",
        "self._remote_candidates_end",
        "self._transport_policy",
        "self._use_ipv4",
        "self._use_ipv6",
    ):
        assert name in init, name
    assert params(aioice.ice.Connection.get_component_candidates) == [
        "self",
        "component",
        "addresses",
        "timeout",
    ]
    connect = inspect.getsource(aioice.ice.Connection.connect)
    assert "self._early_checks_done = True" in connect
    assert "self._query_consent_task = asyncio.create_task" in connect
    assert "for remote_candidate in self._remote_candidates" in connect
    # nomination writes the pair into _nominated; completion counts _nominated
    assert "self._nominated[pair.component] = pair" in inspect.getsource(
        aioice.ice.Connection.check_complete
    )
    assert "len(self._nominated) == len(self._components)" in inspect.getsource(
        aioice.ice.Connection._check_list_maybe_complete
    )
    assert "self.receiver.request_received(message, addr, self)" in inspect.getsource(
        aioice.ice.StunProtocol.datagram_received
    )
    # DTLS reads and writes through the ICE transport's _recv/_send, bound at construction
    ice_init = inspect.getsource(RTCIceTransport.__init__)
    assert "self._recv = self._connection.recv" in ice_init
    assert "self._send = self._connection.send" in ice_init
    dtls = inspect.getsource(RTCDtlsTransport)
    assert "await self.transport._recv()" in dtls and "await self.transport._send(" in dtls
    # start() runs once; remote candidates are refused after end-of-candidates
    assert "if self.__start is not None" in inspect.getsource(RTCIceTransport.start)
    assert "_remote_candidates_end" in inspect.getsource(RTCIceTransport.addRemoteCandidate)
    # descriptions take the credentials and candidates from the connection
    describe = inspect.getsource(rtcpeerconnection.add_transport_description)
    assert "iceGatherer.getLocalParameters()" in describe
    assert "iceGatherer.getLocalCandidates()" in describe
