"""Simulcast without a network: SDP handling, layer routing, layer choice and seamless
switches on synthetic VP8 packets (the Chromium end-to-end test is in
test_browser_interop.py)."""

from __future__ import annotations

import itertools
import struct
from typing import Any

import pytest

from rtc import sdp
from rtc.aiortc_internals import RtpPacket
from rtc.downtrack import DownTrack
from rtc.keyframes import vp8_keyframe_size
from rtc.simulcast import SimulcastForwarder
from tests.rtc.clients import Client, Harness, wait_decoded, wait_for

RIDS = ["q", "h", "f"]
SIZES = [(320, 180), (640, 360), (1280, 720)]

OFFER = """v=0\r
o=- 1 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
a=group:BUNDLE 0\r
m=video 9 UDP/TLS/RTP/SAVPF 96\r
c=IN IP4 0.0.0.0\r
a=mid:0\r
a=sendonly\r
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r
a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r
a=rtpmap:96 VP8/90000\r
a=rid:q send\r
a=rid:h send\r
a=rid:f send\r
a=simulcast:send q;h;f\r
"""


class Writer:
    def __init__(self) -> None:
        self.packets: list[bytes] = []
        self.rtp = self.packets.append
        self.rtcp = self._rtcp
        self.rtcp_sent: list[bytes] = []

    def _rtcp(self, data: bytes) -> None:
        self.rtcp_sent.append(data)


def keyframe(size: tuple[int, int]) -> bytes:
    return b"\x10\x00\x00\x00\x9d\x01\x2a" + struct.pack("<HH", *size) + bytes(200)


def test_offer_layers_are_read_and_bad_ones_refused() -> None:
    accepted, refused = sdp.simulcast_offer(OFFER, 3, 16)
    assert accepted == {"0": ["q", "h", "f"]} and refused == {}
    undeclared = OFFER.replace("a=rid:f send\r\n", "")
    assert sdp.simulcast_offer(undeclared, 3, 16) == (
        {},
        {"0": sdp.simulcast_offer(undeclared, 3, 16)[1]["0"]},
    )
    assert "not declared" in sdp.simulcast_offer(undeclared, 3, 16)[1]["0"]
    no_ext = OFFER.replace("a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n", "")
    assert "extension" in sdp.simulcast_offer(no_ext, 3, 16)[1]["0"]
    too_many = OFFER.replace("q;h;f", "q;h;f;x").replace(
        "a=rid:f send", "a=rid:f send\r\na=rid:x send"
    )
    assert "at most" in sdp.simulcast_offer(too_many, 3, 16)[1]["0"]
    bad = OFFER.replace("q;h;f", "q;h;f!")
    assert sdp.simulcast_offer(bad, 3, 16)[0] == {}
    paused = OFFER.replace("q;h;f", "~q;h;f")
    assert sdp.simulcast_offer(paused, 3, 16)[0] == {"0": ["q", "h", "f"]}
    without = OFFER.replace("a=simulcast:send q;h;f\r\n", "")
    assert sdp.simulcast_offer(without, 3, 16) == ({}, {})


def test_answer_gets_the_receive_lines() -> None:
    answer = OFFER.replace("a=sendonly", "a=recvonly")
    answer = "\r\n".join(
        line for line in answer.split("\r\n") if not line.startswith(("a=rid", "a=simulcast"))
    )
    text = sdp.add_simulcast(answer, {"0": ["q", "h", "f"]})
    assert "a=rid:q recv\r\na=rid:h recv\r\na=rid:f recv\r\na=simulcast:recv q;h;f\r\n" in text
    assert sdp.add_simulcast(text, {"0": ["q", "h", "f"]}).count("a=simulcast") == 1
    assert "a=simulcast" not in sdp.add_simulcast(
        answer.replace("m=video 9", "m=video 0"), {"0": ["q"]}
    )


def test_vp8_keyframe_size() -> None:
    assert vp8_keyframe_size(keyframe((1280, 720))) == (1280, 720)
    assert vp8_keyframe_size(b"\x10\x01" + bytes(20)) is None
    assert vp8_keyframe_size(b"") is None


class Publisher:
    """Three layers of synthetic VP8: one frame = 3 packets per layer, keyframes on request."""

    def __init__(self, forwarder: SimulcastForwarder, layers: list[int]) -> None:
        self.forwarder = forwarder
        self.layers = layers
        self.seq = [100, 20000, 40000]
        self.ts0 = [1000, 500000, 9000000]  # each layer its own timestamp origin
        self.frame = 0
        self.want_key = {i: True for i in layers}

    def send_frame(self) -> None:
        for i in self.layers:
            key = self.want_key[i]
            self.want_key[i] = False
            for n in range(3):
                packet = RtpPacket(
                    payload_type=96,
                    marker=int(n == 2),
                    sequence_number=self.seq[i] & 0xFFFF,
                    timestamp=(self.ts0[i] + self.frame * 3000) & 0xFFFFFFFF,
                    ssrc=1000 + i,
                    payload=(keyframe(SIZES[i]) if key and n == 0 else b"\x00\x01" + bytes(200)),
                )
                packet.extensions.rtp_stream_id = RIDS[i]
                self.seq[i] += 1
                self.forwarder.on_rtp(packet, 0)
        self.frame += 1

    def keyframes_on_pli(self, upstream: Writer) -> None:
        for data in upstream.rtcp_sent:
            if len(data) >= 12 and data[1] == 206 and data[0] & 0x1F == 1:
                ssrc = struct.unpack("!I", data[8:12])[0]
                if ssrc - 1000 in self.want_key:
                    self.want_key[ssrc - 1000] = True
        upstream.rtcp_sent.clear()


def make(layers: list[int]) -> tuple[SimulcastForwarder, Publisher, Writer, DownTrack, Writer]:
    forwarder = SimulcastForwarder(
        rids=RIDS,
        simulcast_bitrate=2_500_000,
        publisher_id="p",
        track_id="p:0",
        mid="0",
        kind="video",
        source="camera",
        codec_name="VP8",
        codec_parameters={},
        clock_rate=90000,
        keyframe_min_interval=0.0,
        remb=None,
    )
    upstream = Writer()
    forwarder.attach_publisher(upstream, 1, 96, 97, 0)  # type: ignore[arg-type]
    publisher = Publisher(forwarder, layers)
    downtrack = DownTrack("s", "video", 5000)
    downtrack.configure(96, "VP8", 90000, 0)
    out = Writer()
    publisher.send_frame()  # the layers are seen (learnt by RID) before the subscriber
    downtrack.bind(forwarder)
    downtrack.set_ready(out)  # type: ignore[arg-type]
    return forwarder, publisher, upstream, downtrack, out


def run(publisher: Publisher, upstream: Writer, frames: int) -> None:
    for _ in range(frames):
        publisher.keyframes_on_pli(upstream)
        publisher.send_frame()


def continuous(out: Writer) -> tuple[bool, bool]:
    seqs = [struct.unpack("!H", p[2:4])[0] for p in out.packets]
    stamps = [struct.unpack("!I", p[4:8])[0] for p in out.packets]
    seq_ok = all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    ts_ok = all(0 <= (b - a) & 0xFFFFFFFF < 90000 for a, b in itertools.pairwise(stamps))
    return seq_ok, ts_ok


async def test_switches_happen_at_keyframes_and_stay_seamless() -> None:
    forwarder, publisher, upstream, downtrack, out = make([0, 1, 2])
    run(publisher, upstream, 5)
    assert downtrack.layer == "f" and out.packets
    assert forwarder.layers[2].resolution == (1280, 720)
    # a thumbnail: the low layer, from its next keyframe on (asked for by PLI on its SSRC)
    downtrack.set_view(300, 170)
    assert downtrack.target == "q" and downtrack.layer == "f"
    run(publisher, upstream, 3)
    assert downtrack.layer == "q" and downtrack.layer_switches == 1
    # enlarged: back to the top layer
    downtrack.set_view(1280, 720)
    run(publisher, upstream, 3)
    assert downtrack.layer == "f" and downtrack.layer_switches == 2
    # bandwidth budget
    downtrack.set_max_layer(1)
    run(publisher, upstream, 3)
    assert downtrack.layer == "h"
    assert continuous(out) == (True, True)
    report = forwarder.report()
    assert [layer["rid"] for layer in report["layers"]] == RIDS
    assert report["layers"][0]["width"] == 320 and report["packets"] > 0
    # dynacast: q always, and what somebody wants
    assert forwarder.consumed == ["q", "h"]


async def test_a_layer_that_never_arrives_is_not_waited_for() -> None:
    _forwarder, publisher, upstream, downtrack, out = make([0, 1])
    run(publisher, upstream, 5)
    assert downtrack.target == "f" and downtrack.layer == "h"
    assert out.packets and continuous(out) == (True, True)


async def test_packets_of_unknown_rids_are_dropped() -> None:
    forwarder, _publisher, _upstream, _downtrack, _out = make([0])
    packet = RtpPacket(payload_type=96, sequence_number=1, timestamp=1, ssrc=77, payload=b"x")
    packet.extensions.rtp_stream_id = "zz"
    forwarder.on_rtp(packet, 0)
    packet2 = RtpPacket(payload_type=96, sequence_number=1, timestamp=1, ssrc=78, payload=b"x")
    forwarder.on_rtp(packet2, 0)
    assert forwarder.unrouted == 2  # no RID while a layer lives: not taken as a lone stream
    assert not forwarder.single_stream


# --- aiortc peers through the real Sfu: simulcast lines it cannot honour ---------------------


class SimulcastLinesClient(Client):
    """An aiortc participant whose offers carry simulcast lines (aiortc sends one stream
    without RID whatever its SDP says): `lines` are added to its video m-section."""

    def __init__(self, sfu: Any, room_id: str, participant_id: str) -> None:
        super().__init__(sfu, room_id, participant_id)
        self.lines: list[str] = []
        self.answers: list[str] = []
        self.offers: list[str] = []

    async def _send_pull(self) -> dict[str, Any] | None:
        offer = await super()._send_pull()
        if offer is not None:
            self.offers.append(offer["sdp"])
        return offer

    async def _send_offer(self, sdp_text: str, sources: dict[str, str]) -> dict[str, Any]:
        out = []
        for section in sdp_text.split("\r\nm=")[:1]:
            out.append(section)
        for section in sdp_text.split("\r\nm=")[1:]:
            if section.startswith("video"):
                section = section.rstrip("\r\n") + "\r\n" + "\r\n".join(self.lines)
            out.append(section)
        text = "\r\nm=".join(out)
        if not text.endswith("\r\n"):
            text += "\r\n"
        ack = await super()._send_offer(text, sources)
        self.answers.append(ack["sdp"])
        return ack


async def _publish_with(harness: Harness, lines: list[str]) -> SimulcastLinesClient:
    alice = SimulcastLinesClient(harness.sfu, "room-1", "alice")
    alice.lines = lines
    harness.clients["alice"] = alice
    await alice.join()
    await alice.publish()
    return alice


@pytest.mark.media
async def test_offer_with_an_undeclared_rid_gets_one_layer(harness: Harness) -> None:
    alice = await _publish_with(harness, ["a=rid:q send", "a=simulcast:send q;h"])
    bob = await harness.add("bob")
    await wait_decoded([(bob, "alice")], 10)
    assert bob.decoded("alice") >= 10
    assert "a=simulcast" not in alice.answers[-1]
    peer = harness.sfu.peer("alice")
    camera = next(f for f in peer.published.values() if f.kind == "video")
    assert not isinstance(camera, SimulcastForwarder)
    assert "not declared" in next(iter(peer.publisher.simulcast_refused.values()))
    assert alice.errors == [] and bob.errors == []


@pytest.mark.media
async def test_simulcast_offered_but_one_stream_without_rid_goes_on_as_one_layer(
    harness: Harness,
) -> None:
    """aiortc says it sends q and h but sends one stream without RID (as a client that
    answered without simulcast would): after a few packets it is forwarded as the lowest
    layer, the viewer decodes it, the statistics say so; nothing breaks."""
    alice = await _publish_with(harness, ["a=rid:q send", "a=rid:h send", "a=simulcast:send q;h"])
    bob = await harness.add("bob")
    assert "a=simulcast:recv q;h" in alice.answers[-1]
    peer = harness.sfu.peer("alice")
    camera = next(f for f in peer.published.values() if f.kind == "video")
    assert isinstance(camera, SimulcastForwarder)
    await wait_decoded([(bob, "alice")], 10)
    assert bob.decoded("alice") >= 10
    assert camera.single_stream and camera.unrouted >= 1
    await harness.settle(30)
    stats = harness.sfu.stats("room-1")["participants"]
    entry = next(f for f in stats["alice"]["published"] if f.get("simulcast"))
    assert entry["single_stream"] and entry["layers"][0]["packets"] > 0
    subscribed = next(s for s in stats["bob"]["subscribed"] if s["track_id"] == camera.track_id)
    assert subscribed["layer"] == "q" and subscribed["packets"] > 0
    assert harness.sfu.peer("alice").pc.connectionState == "connected"
    # the server's later offers keep the lines (or a browser would drop to one layer)
    carol = await harness.add("carol")
    await carol.publish()
    await wait_for(lambda: alice.offers, 30)
    await harness.settle(30)
    assert alice.offers and all("a=simulcast:recv q;h" in offer for offer in alice.offers)
    assert carol.errors == [] and alice.errors == [] and bob.errors == []
