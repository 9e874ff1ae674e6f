"""Bad signalling input: clear RtcError, no crash, the other participants keep their media."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCRtpSender

from rtc.errors import RtcError
from tests.rtc.clients import CounterVideoTrack, Harness, ToneAudioTrack, wait_for

pytestmark = pytest.mark.media


async def _media_flows(harness: Harness, receiver: str, publisher: str) -> None:
    received = harness.clients[receiver].received_from(publisher)
    before = len(received.counters)
    await asyncio.sleep(1)
    assert len(received.counters) > before + 5


async def test_bad_input_is_refused_without_affecting_others(harness: Harness) -> None:
    alice = await harness.add("alice")
    bob = await harness.add("bob")
    mallory = await harness.add("mallory")
    await alice.publish(audio=False)
    await harness.settle()
    await asyncio.sleep(1)

    cases = [
        ("garbage", "bad_sdp"),
        ("", "bad_sdp"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "bad_sdp"),
        ("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n", "bad_sdp"),
    ]
    for sdp, code in cases:
        with pytest.raises(RtcError) as error:
            await harness.sfu.handle_offer("mallory", sdp)
        assert error.value.code == code, (sdp, error.value)

    # an offer whose audio is only PCMU and video only VP9-less garbage: nothing we forward
    pcmu = mallory.pc.addTransceiver(ToneAudioTrack(), direction="sendonly")
    pcmu.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.name == "PCMU"]
    )
    offer = await mallory.pc.createOffer()
    await mallory.pc.setLocalDescription(offer)
    with pytest.raises(RtcError) as error:
        await harness.sfu.handle_offer("mallory", mallory.pc.localDescription.sdp)
    assert error.value.code == "no_supported_codec"

    # candidates: unknown connection, malformed, outside the allowed networks
    with pytest.raises(RtcError) as error:
        await harness.sfu.add_candidate(
            "nobody", {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}
        )
    assert error.value.code == "unknown_participant"
    with pytest.raises(RtcError) as error:
        await harness.sfu.add_candidate(
            "mallory", {"candidate": "candidate:nonsense", "sdpMid": "0"}
        )
    assert error.value.code == "bad_candidate"
    for line in (
        "candidate:1 1 udp 2130706431 192.0.2.7 50000 typ host",  # loopback-only server
        "candidate:1 1 udp 2130706431 abc.local 50000 typ host",  # mDNS: resolved on the LAN
    ):
        with pytest.raises(RtcError) as error:
            await harness.sfu.add_candidate("bob", {"candidate": line, "sdpMid": "0"})
        assert error.value.code == "candidate_not_allowed"

    # an answer nobody asked for
    with pytest.raises(RtcError) as error:
        await harness.sfu.handle_answer("bob", bob.pc.localDescription.sdp)
    assert error.value.code in ("wrong_state", "bad_sdp")
    with pytest.raises(RtcError) as error:
        await harness.sfu.pause("bob", "alice:nope")
    assert error.value.code == "unknown_track"
    with pytest.raises(RtcError) as error:
        await harness.sfu.join("room-1", "bob", "Bob again")
    assert error.value.code == "already_joined"

    await _media_flows(harness, "bob", "alice")


async def test_renegotiation_storm_is_rate_limited(harness: Harness) -> None:
    alice = await harness.add("alice")
    await harness.add("bob")
    storm = await harness.add("storm")
    await alice.publish(audio=False)
    await harness.settle()
    storm.pc.addTransceiver(CounterVideoTrack(), direction="sendonly")
    limited = 0
    offer = await storm.pc.createOffer()
    await storm.pc.setLocalDescription(offer)
    sdp = storm.pc.localDescription.sdp
    for _ in range(60):
        try:
            await harness.sfu.handle_offer("storm", sdp)
        except RtcError as exc:
            assert exc.code in ("rate_limited", "wrong_state", "bad_sdp"), exc
            limited += exc.code == "rate_limited"
    assert limited >= 30
    await harness.settle()
    await asyncio.sleep(0.5)
    await _media_flows(harness, "bob", "alice")
    stats = harness.sfu.stats("room-1")["participants"]
    assert stats["bob"]["state"] == "connected"


async def test_too_many_published_tracks_are_refused(harness: Harness) -> None:
    greedy = await harness.add("greedy")
    for _ in range(5):
        greedy.pc.addTransceiver(CounterVideoTrack(), direction="sendonly")
    await greedy.pc.setLocalDescription(await greedy.pc.createOffer())
    with pytest.raises(RtcError) as error:
        await harness.sfu.handle_offer("greedy", greedy.pc.localDescription.sdp)
    assert error.value.code == "too_many_tracks"
    with pytest.raises(RtcError) as error:
        await harness.sfu.handle_offer("greedy", "v=0\r\n" + "a=x\r\n" * 20000)
    assert error.value.code == "bad_sdp"
    assert harness.sfu.tracks("room-1") == []


async def test_an_offer_before_answering_the_pulled_offer_is_wrong_state_not_bad_sdp(
    harness: Harness,
) -> None:
    """A client that breaks the order: it pulled the server's offer (whose m-lines take the
    same mids as its own new one) and offers before answering it. The server never offers
    unasked, so a client that follows the order cannot get here; this one gets
    `wrong_state`, not `bad_sdp`, and the offer it owes an answer stays pullable."""
    alice = await harness.add("alice")
    bob = await harness.add("bob")
    await harness.settle()
    async with bob.lock:  # bob does not answer the server's offer yet
        await alice.publish()
        server_bob = harness.sfu.peer("bob")
        await wait_for(lambda: server_bob.renegotiate, 5)
        assert server_bob.pc.signalingState == "stable"  # told, not offered
        assert await harness.sfu.pull_offer("bob") is not None
        bob.pc.addTransceiver(CounterVideoTrack(), direction="sendonly")
        offer = await bob.pc.createOffer()
        await bob.pc.setLocalDescription(offer)
        with pytest.raises(RtcError) as error:
            await harness.sfu.handle_offer("bob", bob.pc.localDescription.sdp, "offer")
        assert error.value.code == "wrong_state", error.value
    # the pulled offer is still there, the same, for the answer bob owes
    again = await harness.sfu.pull_offer("bob")
    assert again is not None and again["sdp"] == server_bob.pc.localDescription.sdp
