"""Unit tests of the SFU's small parts: keyframes, REMB, speaker, TURN, down-track rewriting."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import struct

from rtc.aiortc_internals import RtpPacket
from rtc.config import RtcConfig
from rtc.downtrack import DownTrack
from rtc.forwarder import Forwarder
from rtc.ice import AddressPolicy, client_ice_servers, turn_credentials
from rtc.keyframes import KeyframeRequester, is_h264_keyframe_start, is_vp8_keyframe_start
from rtc.speaker import SpeakerDetector


def test_turn_credentials_follow_the_coturn_rest_scheme() -> None:
    username, credential = turn_credentials("s3cret", "participant-42", 3600, now=1_700_000_000)
    assert username == "1700003600:participant-42"
    expected = base64.b64encode(
        hmac.new(b"s3cret", username.encode(), hashlib.sha1).digest()
    ).decode()
    assert credential == expected
    config = RtcConfig(
        stun_urls=("stun:turn.example.org:3478",),
        turn_urls=("turn:turn.example.org:3478?transport=udp",),
        turn_secret="s3cret",
        turn_ttl=600,
    )
    servers = client_ice_servers(config, "p1")
    assert servers[0] == {"urls": ["stun:turn.example.org:3478"]}
    expiry, user = servers[1]["username"].split(":")
    assert user == "p1" and int(expiry) > 0
    assert client_ice_servers(RtcConfig(), "p1") == []


def test_address_policy_keeps_loopback_candidates_only() -> None:
    policy = AddressPolicy(("127.0.0.1",))
    assert policy.allows("127.0.0.1") and not policy.allows("10.0.0.5")
    assert not policy.allows("x.local")
    sdp = (
        "v=0\r\na=candidate:1 1 udp 1 10.0.0.5 9 typ host\r\n"
        "a=candidate:2 1 udp 1 127.0.0.1 9 typ host\r\n"
    )
    assert policy.filter_sdp(sdp) == "v=0\r\na=candidate:2 1 udp 1 127.0.0.1 9 typ host\r\n"
    open_policy = AddressPolicy(())  # public addresses only (see tests/rtc/test_candidates.py)
    assert open_policy.allows("198.18.0.1") is False and open_policy.allows("4f1c.local") is False
    assert open_policy.allows("8.8.8.8")
    assert not open_policy.allows("attacker.example.com")  # no DNS lookups on our loop


def test_vp8_and_h264_keyframe_detection() -> None:
    # descriptor X|S, I with 15-bit picture id, then a VP8 frame tag with P=0 (key) or 1
    assert is_vp8_keyframe_start(bytes([0x90, 0x80, 0x80, 0x01, 0x10]))
    assert not is_vp8_keyframe_start(bytes([0x90, 0x80, 0x80, 0x01, 0x11]))
    assert not is_vp8_keyframe_start(bytes([0x80, 0x80, 0x80, 0x01, 0x10]))  # not a start
    assert is_vp8_keyframe_start(bytes([0x10, 0x10]))
    assert is_h264_keyframe_start(bytes([0x67, 0x42]))  # SPS
    assert is_h264_keyframe_start(bytes([0x78, 0x00, 0x02, 0x67, 0x42]))  # STAP-A with SPS
    assert is_h264_keyframe_start(bytes([0x7C, 0x85]))  # FU-A start of IDR
    assert not is_h264_keyframe_start(bytes([0x7C, 0x05]))  # FU-A middle
    assert not is_h264_keyframe_start(bytes([0x41, 0x00]))  # non-IDR slice


async def test_keyframe_requests_are_coalesced_and_rate_limited() -> None:
    sent: list[float] = []
    loop = asyncio.get_running_loop()
    requester = KeyframeRequester(lambda: sent.append(loop.time()), min_interval=0.2)
    for _ in range(10):
        requester.request()
    assert len(sent) == 1  # first goes now, the rest wait for one delayed PLI
    await asyncio.sleep(0.3)
    assert len(sent) == 2
    requester.request()
    requester.keyframe_seen()  # a keyframe arrives before the delayed PLI is due
    await asyncio.sleep(0.3)
    assert len(sent) == 2
    assert requester.requests == 11
    requester.close()


def test_speaker_detection_is_debounced() -> None:
    now = [0.0]
    detector = SpeakerDetector(threshold=60, hold=1.0, clock=lambda: now[0])
    assert detector.update({"a": 30, "b": 50}) is None  # once is not enough
    assert detector.update({"a": 30, "b": 50}) == "a"
    now[0] = 0.5
    detector.update({"a": 40, "b": 20})
    assert detector.update({"a": 40, "b": 20}) is None  # a holds the floor for 1 s
    now[0] = 1.2
    assert detector.update({"a": 40, "b": 20}) == "b"
    assert detector.update({"a": 100, "b": 100}) is None  # silence changes nothing
    assert detector.forget("b") and detector.current is None


class _Capture:
    """Stands in for the transport writer: collects the RTP the down-track writes."""

    def __init__(self) -> None:
        self.packets: list[bytes] = []
        self.rtp = self.packets.append
        self.rtcp = self.packets.append


def _forwarder() -> Forwarder:
    return Forwarder(
        publisher_id="p",
        track_id="p:0",
        mid="0",
        kind="video",
        source="camera",
        codec_name="VP8",
        codec_parameters={},
        clock_rate=90000,
        keyframe_min_interval=0.3,
        remb=None,
    )


async def test_downtrack_rewrites_ssrc_sequence_and_payload_type_across_a_pause() -> None:
    forwarder = _forwarder()
    downtrack = DownTrack("s", "video", ssrc=0xABCDEF01)
    downtrack.configure(payload_type=120, codec_name="VP8", clock_rate=90000, ext_id=0)
    capture = _Capture()
    downtrack.bind(forwarder)
    downtrack.set_ready(capture)  # type: ignore[arg-type]
    key, delta = b"\x10\x10key", b"\x10\x11delta"

    upstream = _Capture()
    forwarder.attach_publisher(upstream, 1, 96, 97, 0x1234)  # type: ignore[arg-type]

    async def feed(seq: int, ts: int, payload: bytes, marker: int = 1) -> None:
        packet = RtpPacket(
            payload_type=96,
            marker=marker,
            sequence_number=seq,
            timestamp=ts,
            ssrc=0x1234,
            payload=payload,
        )
        await forwarder._handle_rtp_packet(packet, arrival_time_ms=0)

    await feed(1000, 5000, delta)  # no keyframe yet: nothing sent
    assert capture.packets == []
    await feed(1001, 8000, key)
    await feed(1002, 11000, delta)
    headers = [struct.unpack("!BBHII", p[:12]) for p in capture.packets]
    assert [h[4] for h in headers] == [0xABCDEF01] * 2
    assert [h[1] & 0x7F for h in headers] == [120, 120]
    assert (headers[1][2] - headers[0][2]) & 0xFFFF == 1
    assert headers[1][3] - headers[0][3] == 3000  # timestamps keep their spacing
    downtrack.set_paused(True)
    await feed(1003, 14000, delta)  # finishes the frame in flight (marker) then stops
    await feed(1004, 17000, delta)
    assert len(capture.packets) == 3
    downtrack.set_paused(False)
    await feed(1005, 20000, delta)  # waits for a keyframe
    await feed(1006, 23000, key)
    assert len(capture.packets) == 4
    last = struct.unpack("!BBHII", capture.packets[-1][:12])
    assert (last[2] - headers[0][2]) & 0xFFFF == 3  # no hole in the sequence numbers
    # NACKs are answered from the history with the same numbering, within the current epoch
    count = len(capture.packets)
    downtrack.retransmit([(headers[0][2] + 2) & 0xFFFF])  # before the pause: not resent
    assert len(capture.packets) == count
    downtrack.retransmit([(headers[0][2] + 3) & 0xFFFF])
    again = struct.unpack("!BBHII", capture.packets[-1][:12])
    assert again[2] == (headers[0][2] + 3) & 0xFFFF and capture.packets[-1].endswith(key)
    assert downtrack.stats.retransmitted == 1
    forwarder.close()


def _sdp(media: str) -> str:
    return (
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n" + media + "c=IN IP4 0.0.0.0\r\n"
        "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\n"
        "a=fingerprint:sha-256 AA:BB\r\na=setup:actpass\r\n"
    )


def test_server_offers_keep_the_clients_header_extension_ids() -> None:
    from rtc.sdp import ExtmapRegistry, parse

    registry = ExtmapRegistry()
    chrome_offer = _sdp(
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
        "a=extmap:2/sendrecv http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n"
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
        "a=rtpmap:111 opus/48000/2\r\n"
    )
    registry.learn(parse(chrome_offer))
    aiortc_offer = parse(
        _sdp(
            "m=video 9 UDP/TLS/RTP/SAVPF 97\r\n"
            "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
            "a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n"
            "a=extmap:5 urn:example:new\r\n"
            "a=extmap:1 urn:example:other\r\n"
            "a=rtpmap:97 VP8/90000\r\n"
        )
    )
    registry.rewrite(aiortc_offer)
    assert [(e.id, e.uri) for e in aiortc_offer.media[0].rtp.headerExtensions] == [
        (4, "urn:ietf:params:rtp-hdrext:sdes:mid"),
        (2, "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
        (5, "urn:example:new"),  # its own id is free: kept
        (3, "urn:example:other"),  # 1 means audio level here: first free id
    ]
    assert "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid" in str(aiortc_offer)
