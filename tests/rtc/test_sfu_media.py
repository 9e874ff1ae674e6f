"""Real media through the SFU: aiortc peers on 127.0.0.1, decoded on the receiving side."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from rtc import aiortc_internals
from tests.rtc.clients import CounterVideoTrack, Harness, wait_decoded, wait_for

pytestmark = pytest.mark.media


def assert_in_order(counters: list[int], minimum: int) -> None:
    assert len(counters) >= minimum, f"only {len(counters)} frames decoded"
    assert all(b > a for a, b in itertools.pairwise(counters)), counters


async def test_three_participants_see_each_others_counters_advance(harness: Harness) -> None:
    clients = [await harness.add(name) for name in ("alice", "bob", "carol")]
    for client in clients:
        await client.publish()
        await harness.settle()
    await wait_decoded([(c, o.id) for c in clients for o in clients if o is not c], 15)
    for client in clients:
        for other in clients:
            if other is client:
                continue
            received = client.received_from(other.id)
            assert_in_order(received.counters, 15)
            # the counters are the publisher's own: real forwarding, not frames made up by us
            assert received.counters[-1] <= other.tracks["camera"].counter  # type: ignore[attr-defined]


async def test_server_creates_no_encoder_and_no_decoder(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    import inspect

    import aiortc.rtcrtpreceiver
    import aiortc.rtcrtpsender

    encoders_for: list[object] = []
    receivers_started: list[object] = []
    original_get_encoder = aiortc.rtcrtpsender.get_encoder
    original_receive = aiortc.rtcrtpreceiver.RTCRtpReceiver.receive

    def counting_get_encoder(codec: object) -> object:
        frame = inspect.currentframe()
        caller = frame.f_back if frame is not None else None
        encoders_for.append(caller.f_locals.get("self") if caller is not None else None)
        return original_get_encoder(codec)  # type: ignore[arg-type]

    async def counting_receive(self: object, parameters: object) -> None:
        receivers_started.append(self)
        await original_receive(self, parameters)  # type: ignore[arg-type]

    monkeypatch.setattr(aiortc.rtcrtpsender, "get_encoder", counting_get_encoder)
    monkeypatch.setattr(aiortc.rtcrtpreceiver.RTCRtpReceiver, "receive", counting_receive)

    clients = [await harness.add(name) for name in ("alice", "bob", "carol")]
    for client in clients:
        await client.publish()
        await harness.settle()
    await asyncio.sleep(2)

    server_senders = set()
    server_receivers = set()
    for client in clients:
        pc = harness.sfu.peer(client.id).pc
        server_senders.update(id(s) for s in pc.getSenders())
        server_receivers.update(id(r) for r in pc.getReceivers())
    client_senders = {id(s) for c in clients for s in c.pc.getSenders()}
    # the clients did encode (the patch works) ...
    assert {id(s) for s in encoders_for} & client_senders
    # ... the server, which forwards 12 tracks, did not, and started no decoding receiver
    assert not {id(s) for s in encoders_for} & server_senders
    assert not {id(r) for r in receivers_started} & server_receivers
    assert len(server_senders) >= 12
    # and its packets took the short input path (socket callback straight to the forwarder)
    for client in clients:
        transport = harness.sfu.peer(client.id).pc.getTransceivers()[0].receiver.transport
        assert aiortc_internals.uses_fast_rtp_input(transport)
    for client in clients:
        for other in clients:
            if other is not client:
                assert len(client.received_from(other.id).counters) >= 10


async def test_h264_is_forwarded_without_transcoding(harness: Harness) -> None:
    alice = await harness.add("alice")
    bob = await harness.add("bob")
    await alice.publish(codec="H264", audio=False)
    await harness.settle()
    await bob.publish(codec="VP8", audio=False)
    await harness.settle()
    await wait_decoded([(bob, "alice"), (alice, "bob")], 10)
    tracks = {t["participant_id"]: t["codec"] for t in harness.sfu.tracks("room-1")}
    assert tracks == {"alice": "H264", "bob": "VP8"}
    assert_in_order(bob.received_from("alice").counters, 10)
    assert_in_order(alice.received_from("bob").counters, 10)


async def test_late_joiner_gets_a_keyframe_made_for_it(harness: Harness) -> None:
    alice = await harness.add("alice")
    await alice.publish()
    bob = await harness.add("bob")
    await harness.settle()
    await wait_decoded([(bob, "alice")], 30)  # the stream is well under way
    camera = alice.tracks["camera"]
    assert isinstance(camera, CounterVideoTrack)
    produced_before_carol = camera.counter
    carol = await harness.add("carol")
    await harness.settle()
    # aiortc's VP8 encoder makes keyframes only on request: a frame carol can decode that
    # was made after she joined proves the PLI sent for her, however long it took
    received = carol.received_from("alice")
    await wait_for(lambda: len(received.counters) >= 5, 20)
    assert received.counters[0] >= produced_before_carol
    # bob, who was there before, keeps decoding through carol's join
    from_alice = bob.received_from("alice")
    await wait_for(lambda: len(from_alice.counters) > 40, 20)


async def test_screen_share_appears_to_others_and_disappears_when_stopped(
    harness: Harness,
) -> None:
    alice = await harness.add("alice")
    bob = await harness.add("bob")
    carol = await harness.add("carol")
    await alice.publish(audio=False)
    await harness.settle()
    await alice.publish(camera=False, audio=False, screen=True)
    await harness.settle()  # an aiortc client cannot roll back: no offer while one is pending
    await carol.publish(camera=False, audio=False, screen=True)  # two sharers at once
    await harness.settle()
    await asyncio.sleep(2)
    screens = [p for e, p in harness.room_events if e == "rtc:screen"]
    assert {(p["participant_id"], p["active"]) for p in screens} == {
        ("alice", True),
        ("carol", True),
    }
    assert_in_order(bob.received_from("alice", "screen").counters, 8)
    assert_in_order(bob.received_from("carol", "screen").counters, 8)
    assert_in_order(bob.received_from("alice", "camera").counters, 8)

    screen_mid = bob.mids_for("alice", "screen")[-1]
    await alice.stop_publishing("screen")
    await harness.settle()
    await asyncio.sleep(0.5)
    assert ("alice", False) in {
        (p["participant_id"], p["active"]) for e, p in harness.room_events if e == "rtc:screen"
    }
    assert not bob.mids_for("alice", "screen")  # the server's latest offer no longer has it
    before = await bob.packets_received(screen_mid)
    await asyncio.sleep(1)
    assert await bob.packets_received(screen_mid) == before
    assert not [
        t
        for t in harness.sfu.tracks("room-1")
        if t["track_id"].startswith("alice:") and t["source"] == "screen"
    ]
    camera = bob.received_from("alice", "camera")
    count = len(camera.counters)
    await asyncio.sleep(1)
    assert len(camera.counters) > count  # the camera goes on


async def test_forced_mute_stops_audio_packets_to_everyone(harness: Harness) -> None:
    alice = await harness.add("alice")
    bob = await harness.add("bob")
    carol = await harness.add("carol")
    await alice.publish(camera=False)
    await harness.settle()
    await asyncio.sleep(1)
    mids = {c.id: c.mids_for("alice", "audio")[-1] for c in (bob, carol)}
    await harness.sfu.force_mute("alice")
    await asyncio.sleep(0.2)
    counts = {c.id: await c.packets_received(mids[c.id]) for c in (bob, carol)}
    assert all(n > 20 for n in counts.values()), counts
    await asyncio.sleep(1)
    for c in (bob, carol):
        assert await c.packets_received(mids[c.id]) == counts[c.id]
    await harness.sfu.force_mute("alice", muted=False)
    await asyncio.sleep(1)
    for c in (bob, carol):
        assert await c.packets_received(mids[c.id]) > counts[c.id] + 20


async def test_removal_closes_the_peer_connection(harness: Harness) -> None:
    alice = await harness.add("alice")
    bob = await harness.add("bob")
    await alice.publish()
    await bob.publish()
    await harness.settle()
    await asyncio.sleep(1)
    server_pc = harness.sfu.peer("alice").pc
    await harness.sfu.remove("alice")
    assert server_pc.connectionState == "closed"
    await harness.settle()
    assert all(t["participant_id"] != "alice" for t in harness.sfu.tracks("room-1"))
    assert not harness.sfu.peer("bob").subscriptions
    await wait_for(lambda: alice.pc.connectionState in ("closed", "failed"), 10)
    from rtc.errors import RtcError

    with pytest.raises(RtcError) as error:
        await harness.sfu.add_candidate("alice", None)
    assert error.value.code == "unknown_participant"


async def test_paused_video_gets_no_packets_and_resume_brings_a_keyframe(
    harness: Harness,
) -> None:
    alice = await harness.add("alice")
    bob = await harness.add("bob")
    await alice.publish(audio=False)
    await harness.settle()
    await asyncio.sleep(1.5)
    mid = bob.mids_for("alice", "camera")[-1]
    track_id = bob.labels[mid]["track_id"]
    received = bob.received_from("alice")
    await harness.sfu.pause("bob", track_id)
    await asyncio.sleep(0.3)
    packets = await bob.packets_received(mid)
    decoded = len(received.counters)
    await asyncio.sleep(1.5)
    assert await bob.packets_received(mid) == packets
    assert len(received.counters) == decoded
    plis = harness.sfu.stats("room-1")["participants"]["alice"]["published"][0]["plis_sent"]
    await harness.sfu.resume("bob", track_id)
    await wait_for(lambda: len(received.counters) > decoded + 3, 2)
    stats = harness.sfu.stats("room-1")["participants"]["alice"]["published"][0]
    assert stats["plis_sent"] > plis  # resume asked alice for a keyframe
    # decoding resumed past the gap: the frames after the pause come from a new keyframe
    # (aiortc's jitter buffer releases the last frame before the pause only when the next
    # packet arrives, hence the window)
    window = received.counters[decoded - 1 : decoded + 3]
    assert max(b - a for a, b in itertools.pairwise(window)) > 15, window
    assert_in_order(received.counters, decoded + 3)


async def test_snapshot_is_a_jpeg_at_the_publisher_resolution(harness: Harness) -> None:
    from io import BytesIO

    from PIL import Image

    from tests.rtc.clients import HEIGHT, WIDTH, decode_bars

    alice = await harness.add("alice")
    await harness.add("bob")
    await alice.publish(audio=False)
    await harness.settle()
    await asyncio.sleep(1)
    snap = await harness.sfu.snapshot("alice", "camera", requested_by="bob")
    assert snap.jpeg[:3] == b"\xff\xd8\xff"
    assert (snap.width, snap.height) == (WIDTH, HEIGHT)
    image = Image.open(BytesIO(snap.jpeg)).convert("L")
    assert image.size == (WIDTH, HEIGHT)
    import numpy as np

    decoded = decode_bars(np.asarray(image))
    assert decoded is not None and 0 < decoded[0] <= alice.tracks["camera"].counter  # type: ignore[attr-defined]
    assert snap.participant_id == "alice" and snap.taken_by == "bob" and snap.source == "camera"


async def test_speaker_remb_and_stats_reach_the_room(harness: Harness) -> None:
    alice = await harness.add("alice")
    bob = await harness.add("bob")
    carol = await harness.add("carol")
    # quiet: about -66 dBov, well under the speaking threshold (-43 dBov at 0.01 was above it,
    # so alice won whenever her audio started a second before bob's)
    await alice.publish(camera=True, amplitude=0.0005)
    await harness.settle()
    await bob.publish(camera=False, amplitude=0.5)  # loud
    await harness.settle()
    await carol.publish(camera=False, audio=False)
    await harness.settle()
    await wait_for(lambda: any(e == "rtc:speaker" for e, _ in harness.room_events), 30)
    speakers = [p["participant_id"] for e, p in harness.room_events if e == "rtc:speaker"]
    assert speakers[0] == "bob", speakers

    # REMB from the subscribers' estimators, aggregated for alice's camera
    peer = harness.sfu.peer("alice")
    camera = next(f for f in peer.published.values() if f.kind == "video")
    await wait_for(lambda: camera.remb is not None and camera.remb.last_sent is not None, 30)
    assert camera.remb is not None and camera.remb.last_sent is not None
    assert 100_000 <= camera.remb.last_sent <= harness.sfu.config.max_camera_bitrate

    stats = [p for e, p in harness.room_events if e == "rtc:stats"]
    assert stats, "no periodic rtc:stats"
    last = stats[-1]["participants"]
    published = {f["source"]: f for f in last["alice"]["published"]}
    assert published["camera"]["packets"] > 0 and published["camera"]["bitrate"] > 0
    subscribed = last["carol"]["subscribed"]
    assert {s["track_id"] for s in subscribed} >= {camera.track_id}
    assert any(s["rtt_ms"] is not None for s in subscribed)


async def test_an_ended_track_frees_its_m_line_for_the_next_one(harness: Harness) -> None:
    alice = await harness.add("alice")
    bob = await harness.add("bob")
    carol = await harness.add("carol")
    await alice.publish(camera=False, audio=False, screen=True)
    await harness.settle()
    await asyncio.sleep(1)
    old_mid = bob.mids_for("alice", "screen")[-1]
    assert len(bob.received_from("alice", "screen").counters) > 5
    await alice.stop_publishing("screen")
    await harness.settle()
    counters = bob.video[old_mid].counters
    seen = len(counters)
    await carol.publish(camera=False, audio=False, screen=True)
    await harness.settle()
    assert bob.mids_for("carol", "screen") == [old_mid]  # same m-line, new source
    await asyncio.sleep(1.5)
    new = counters[seen:]
    if new and new[0] > counters[seen - 1]:
        new = new[1:]  # alice's last frame, released by aiortc's jitter buffer only now
    assert_in_order(new, 10)
    # carol's counter started at 0 after alice's had run for a while: a different source
    assert new[0] < counters[seen - 1]
    assert new[-1] <= carol.tracks["screen"].counter  # type: ignore[attr-defined]


async def test_a_reused_m_line_gets_nothing_until_the_subscriber_accepts_it(
    harness: Harness,
) -> None:
    """Bob's m-line that carried Alice's screen is inactive; Carol's share takes it. Until Bob
    answers the offer that says so, nothing of Carol's goes out on it: packets sent under
    the previous source's sequence and timestamp offsets, mid-frame, to an m-line Bob's
    browser still has inactive, made Chromium drop that stream for good once it was active
    again (seen in the room's rejoin test)."""
    alice = await harness.add("alice")
    bob = await harness.add("bob")
    carol = await harness.add("carol")
    await alice.publish(camera=False, audio=False, screen=True)
    await harness.settle()
    await wait_for(lambda: len(bob.received_from("alice", "screen").counters) > 5, 5)
    old_mid = bob.mids_for("alice", "screen")[-1]
    await alice.stop_publishing("screen")
    await harness.settle()
    slot = next(s for s in harness.sfu.peer("bob").slots if s.transceiver.mid == old_mid)
    sent = slot.downtrack.stats.packets

    held: list[tuple[str, dict[str, object]]] = []
    answer = bob.on_event
    bob.on_event = lambda event, payload: (  # type: ignore[method-assign]
        held.append((event, payload)) if event == "rtc:renegotiate" else answer(event, payload)
    )
    await carol.publish(camera=False, audio=False, screen=True)
    await wait_for(lambda: held, 5)
    assert await harness.sfu.pull_offer("bob") is not None  # pulled, not answered yet
    forwarder = slot.downtrack.forwarder
    assert forwarder is not None and forwarder.publisher_id == "carol"
    await wait_for(lambda: forwarder.stats.packets > 30, 5)  # Carol's share is flowing
    assert slot.downtrack.stats.packets == sent
    assert slot.downtrack not in forwarder._active

    bob.on_event = answer  # type: ignore[method-assign]
    bob.want_offer()  # pulls the same offer again, and answers it this time
    await harness.settle()
    assert bob.mids_for("carol", "screen") == [old_mid]
    counters = bob.video[old_mid].counters
    seen = len(counters)
    await wait_for(lambda: len(counters) > seen + 10, 5)
    assert slot.downtrack.stats.packets > sent


async def test_nacks_are_answered_on_the_lossy_hop(harness: Harness) -> None:
    alice = await harness.add("alice")
    bob = await harness.add("bob")
    await alice.publish(audio=False)
    await harness.settle()
    await asyncio.sleep(0.5)
    track_id = bob.labels[bob.mids_for("alice", "camera")[-1]]["track_id"]
    downtrack = harness.sfu.peer("bob").subscriptions[track_id].downtrack
    writer = downtrack.writer
    assert writer is not None and writer.rtp is not None
    send = writer.rtp
    sent = [0]

    def lossy(data: bytes) -> None:  # the server → bob hop loses one packet in 15
        sent[0] += 1
        if sent[0] % 15:
            send(data)

    lossy_writer = type("Lossy", (), {"rtp": staticmethod(lossy), "rtcp": writer.rtcp})()
    downtrack.writer = lossy_writer  # type: ignore[assignment]
    received = bob.received_from("alice")
    before = len(received.counters)
    await asyncio.sleep(3)
    assert sent[0] > 30
    assert downtrack.stats.nacks > 0 and downtrack.stats.retransmitted > 0
    # bob recovered the lost packets: frames keep coming, in order, without a keyframe request
    assert_in_order(received.counters[before:], 30)
    publisher = harness.sfu.stats("room-1")["participants"]["alice"]["published"][0]
    assert publisher["packets_lost"] == 0  # the loss was on the other hop
