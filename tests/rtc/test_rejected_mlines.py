"""Rejected m-lines (issue 11): a client that stops a transceiver offers (or answers) that
m-section with port 0, `a=inactive`, without its transport lines and out of the BUNDLE group,
as browsers do after `transceiver.stop()`. aiortc clients cannot stop a transceiver, so the
test client writes that form into the description it sends."""

from __future__ import annotations

import pytest
from aiortc import RTCSessionDescription

from rtc.sdp import parse
from tests.rtc.clients import Client, Harness, wait_decoded, wait_for

pytestmark = pytest.mark.media

#: what a browser keeps in a rejected m-section
KEPT = ("c=", "a=mid:", "a=rtpmap:", "a=fmtp:", "a=rtcp-fb:", "a=rtcp-mux")


def rejecting(text: str, mids: set[str]) -> str:
    """`text` with these m-sections rejected the way Chromium writes them."""
    head, *sections = text.split("\r\nm=")
    out = []
    for section in sections:
        lines = [line for line in ("m=" + section).split("\r\n") if line]
        if any(line == f"a=mid:{mid}" for line in lines for mid in mids):
            kind, _port, *rest = lines[0].split(" ")
            lines = [" ".join([kind, "0", *rest])]
            lines += [line for line in lines_of(section) if line.startswith(KEPT)]
            lines.append("a=inactive")
        out.append("\r\n".join(lines))
    head_lines = []
    for line in head.split("\r\n"):
        if line.startswith("a=group:BUNDLE"):
            line = " ".join(w for w in line.split(" ") if w not in mids)
        head_lines.append(line)
    return "\r\n".join(head_lines) + "\r\n" + "\r\n".join(out) + "\r\n"


def lines_of(section: str) -> list[str]:
    return ("m=" + section).split("\r\n")[1:]


async def offer_rejecting(client: Client, mids: set[str]) -> dict[str, object]:
    """The client's offer with these m-lines rejected (its own PC keeps them inactive)."""
    async with client.lock:
        await client.pc.setLocalDescription(await client.pc.createOffer())
        sources = {t.mid: s for s, t in client.published.items() if t.mid is not None}
        answer = await client.sfu.handle_offer(
            client.id, rejecting(client.pc.localDescription.sdp, mids), sources=sources
        )
        await client.pc.setRemoteDescription(
            RTCSessionDescription(sdp=answer["sdp"], type="answer")
        )
    if answer.get("renegotiate"):
        client.want_offer()
    return answer


def section(text: str, mid: str) -> tuple[int, str, bool]:
    """(port, direction, in BUNDLE) of one m-section of a description."""
    description = parse(text)
    media = next(m for m in description.media if m.rtp.muxId == mid)
    bundle = next((g.items for g in description.group if g.semantic == "BUNDLE"), [])
    return media.port, media.direction, mid in bundle


async def test_a_rejected_published_m_line_stops_its_track_and_the_rest_goes_on(
    harness: Harness,
) -> None:
    alice = await harness.add("alice")
    bob = await harness.add("bob")
    await alice.publish(screen=True)
    await bob.publish(audio=False)
    await harness.settle()
    await wait_decoded([(bob, "alice"), (alice, "bob")], 5)
    await wait_for(lambda: bob.decoded("alice", "screen") >= 5, 30)
    screen_mid = alice.published["screen"].mid
    assert screen_mid is not None

    alice.published.pop("screen")
    answer = await offer_rejecting(alice, {screen_mid})
    # the answer rejects it too, in the form browsers accept
    assert section(str(answer["sdp"]), screen_mid) == (0, "inactive", False)
    assert all(
        section(str(answer["sdp"]), t.mid)[0] != 0 and section(str(answer["sdp"]), t.mid)[2]
        for t in alice.published.values()
        if t.mid is not None
    )
    sources = {(t["participant_id"], t["source"]) for t in harness.sfu.tracks("room-1")}
    assert ("alice", "screen") not in sources and ("alice", "camera") in sources
    await harness.settle()
    # the rest keeps flowing both ways, and bob's later offers still apply
    before = bob.decoded("alice"), alice.decoded("bob")
    await wait_for(lambda: (bob.decoded("alice"), alice.decoded("bob")) > before, 30)
    await wait_decoded([(bob, "alice"), (alice, "bob")], max(before) + 10)
    assert bob.decoded("alice") >= before[0] + 10 and alice.decoded("bob") >= before[1] + 10
    # later negotiations keep it rejected (server offers included)
    await bob.publish(camera=False, audio=True)
    await harness.settle()
    assert alice.errors == [] and bob.errors == []
    assert harness.sfu.peer("alice").pc.signalingState == "stable"


async def test_a_rejected_server_m_line_moves_the_track_to_a_new_one(harness: Harness) -> None:
    alice = await harness.add("alice")
    bob = await harness.add("bob")
    await alice.publish()  # camera and microphone: bob keeps one m-line
    await harness.settle()
    await wait_decoded([(bob, "alice")], 5)
    old_mid = bob.mids_for("alice", "camera")[-1]

    answer = await offer_rejecting(bob, {old_mid})
    assert section(str(answer["sdp"]), old_mid) == (0, "inactive", False)
    assert answer["renegotiate"] is True  # alice's camera needs a new m-line
    await harness.settle()
    new_mid = bob.mids_for("alice", "camera")[-1]
    assert new_mid != old_mid
    await wait_for(lambda: new_mid in bob.video and len(bob.video[new_mid].counters) >= 5, 30)
    # the server's own offer (as bob got it) kept the rejected m-line rejected
    offer = bob.pc.remoteDescription.sdp
    assert section(offer, old_mid) == (0, "inactive", False)
    assert bob.errors == [] and alice.errors == []
