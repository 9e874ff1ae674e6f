"""ICE restart on the same peer connection: a client whose network changed comes back.

The server keeps the participant's `RTCPeerConnection`, its DTLS and SRTP session and its
published and subscribed tracks; only ICE starts over (new credentials, new sockets, new
checks). Times are printed (`-s`), never asserted.
"""

from __future__ import annotations

import re
import time

import pytest

from rtc import aiortc_internals
from rtc.errors import RtcError
from tests.rtc.clients import Client, Harness, wait_for

pytestmark = pytest.mark.media


async def _call(harness: Harness) -> tuple[Client, Client]:
    alice = await harness.add("alice")
    bob = await harness.add("bob")
    await alice.publish(audio=False)
    await bob.publish(audio=False)
    await harness.settle()
    await wait_for(lambda: bob.decoded("alice") >= 5 and alice.decoded("bob") >= 5, 30)
    return alice, bob


def _sent_after(received: list[int], first_counter: int) -> bool:
    return any(c >= first_counter for c in received)


async def test_a_client_whose_network_changed_gets_its_media_back_on_the_same_connection(
    harness: Harness,
) -> None:
    alice, bob = await _call(harness)
    server_bob = harness.sfu.peer("bob")
    connection_id = server_bob.connection_id
    transport = aiortc_internals.ice_transport(server_bob.pc)
    assert transport is not None
    old_port = aiortc_internals.selected_pair(transport._connection).remote_addr[1]
    old_server_ufrag = transport.iceGatherer.getLocalParameters().usernameFragment

    # bob's network goes away: his old socket closes; he restarts ICE on new sockets
    started = time.monotonic()
    bob_counter = bob.tracks["camera"].counter  # type: ignore[attr-defined]
    alice_counter = alice.tracks["camera"].counter  # type: ignore[attr-defined]
    task = await bob.restart_ice(lose_old_path=True)
    assert await task, "the client's restarted ICE did not nominate a pair"
    ice_done = time.monotonic() - started
    await wait_for(lambda: _sent_after(alice.decoded_counters("bob"), bob_counter), 60)
    up_back = time.monotonic() - started
    await wait_for(lambda: _sent_after(bob.decoded_counters("alice"), alice_counter), 60)
    down_back = time.monotonic() - started

    # the same server connection, a new path, new server credentials
    assert harness.sfu.peer("bob") is server_bob
    assert server_bob.connection_id == connection_id
    assert server_bob.pc.connectionState == "connected"
    restart = server_bob.ice_restart
    assert restart is not None and restart.count == 1
    assert aiortc_internals.ice_transport(server_bob.pc) is transport
    new_port = aiortc_internals.selected_pair(transport._connection).remote_addr[1]
    assert new_port != old_port
    assert transport.iceGatherer.getLocalParameters().usernameFragment != old_server_ufrag
    # the fast paths moved to the new socket
    writer = next(iter(server_bob._writers.values()))
    assert aiortc_internals.uses_fast_rtp_input(writer.dtls)
    assert "ice_restart_unsupported" not in bob.errors and not bob.errors
    print(
        f"\nICE restart (aiortc client, old socket closed, new local port): "
        f"pair nominated {ice_done * 1000:.0f} ms, bob's video decoded by alice again "
        f"{up_back * 1000:.0f} ms, alice's video decoded by bob again {down_back * 1000:.0f} ms"
    )

    # and again: a second restart on the same connection
    again = time.monotonic()
    bob_counter = bob.tracks["camera"].counter  # type: ignore[attr-defined]
    assert await (await bob.restart_ice(lose_old_path=True))
    await wait_for(lambda: _sent_after(alice.decoded_counters("bob"), bob_counter), 60)
    print(f"second ICE restart: bob's video back {1000 * (time.monotonic() - again):.0f} ms")
    assert restart.count == 2


async def test_a_restart_while_the_old_path_works_keeps_the_media_flowing(
    harness: Harness,
) -> None:
    """`restartIce()` on a healthy connection (a browser does it after a network change it
    only suspects): the old pair carries the media until the new one is nominated."""
    alice, bob = await _call(harness)
    task = await bob.restart_ice(lose_old_path=False)
    assert await task
    seen = len(bob.decoded_counters("alice"))
    await wait_for(lambda: len(bob.decoded_counters("alice")) >= seen + 10, 60)
    counter = bob.tracks["camera"].counter  # type: ignore[attr-defined]
    await wait_for(lambda: _sent_after(alice.decoded_counters("bob"), counter), 60)
    assert harness.sfu.peer("bob").pc.connectionState == "connected"


def _restart_sdp(sdp: str, ufrag: str = "rstrt1", pwd: str = "restartrestartrestart12") -> str:
    sdp = re.sub(r"a=ice-ufrag:\S+", f"a=ice-ufrag:{ufrag}", sdp)
    return re.sub(r"a=ice-pwd:\S+", f"a=ice-pwd:{pwd}", sdp)


async def test_bad_ice_restart_offers_get_error_acks_and_the_media_goes_on(
    harness: Harness,
) -> None:
    _, bob = await _call(harness)
    offer = await bob.pc.createOffer()

    # no candidate, and end-of-candidates: nothing to check against
    bare = "\r\n".join(
        line for line in _restart_sdp(offer.sdp).split("\r\n") if not line.startswith("a=candidate")
    )
    assert "a=end-of-candidates" in bare
    # ufrag too short, pwd too short (RFC 8839: 4 and 22 ice-chars)
    cases = [
        (bare, "bad_sdp"),
        (_restart_sdp(offer.sdp, ufrag="ab"), "bad_sdp"),
        (_restart_sdp(offer.sdp, pwd="short"), "bad_sdp"),
        (_restart_sdp(offer.sdp, ufrag="has space"), "bad_sdp"),
    ]
    # only candidates the server may not send to (dropped): as good as none
    refused = re.sub(r"(a=candidate:\S+ \d \S+ \d+ )127\.0\.0\.1", r"\g<1>192.0.2.1", offer.sdp)
    cases.append((_restart_sdp(refused), "bad_sdp"))
    for sdp, code in cases:
        with pytest.raises(RtcError) as error:
            await harness.sfu.handle_offer("bob", sdp, "offer")
        assert error.value.code == code, (error.value, sdp)
    server_bob = harness.sfu.peer("bob")
    assert server_bob.ice_restart is None  # nothing was touched
    assert server_bob.pc.signalingState == "stable"

    # a restart offer during another negotiation (a pulled offer waits for its answer)
    async with bob.lock:
        carol = await harness.add("carol")
        await carol.publish(audio=False)
        await wait_for(lambda: server_bob.renegotiate, 10)
        assert await harness.sfu.pull_offer("bob") is not None
        with pytest.raises(RtcError) as error:
            await harness.sfu.handle_offer("bob", _restart_sdp(offer.sdp), "offer")
        assert error.value.code == "wrong_state"
        assert server_bob.ice_restart is None
    bob.want_offer()  # answer the offer he pulled
    await harness.settle(15)

    seen = len(bob.decoded_counters("alice"))
    await wait_for(lambda: len(bob.decoded_counters("alice")) >= seen + 10, 60)
    assert server_bob.pc.connectionState == "connected"


async def test_a_restart_whose_new_path_never_connects_fails_the_connection(
    harness: Harness,
) -> None:
    """The client offers new credentials, then is gone: no new pair, and the server gives
    the connection up after `ice_restart_timeout` (the client's full restart takes over)."""
    from rtc.config import RtcConfig
    from rtc.sfu import Sfu

    quick = RtcConfig(allowed_addresses=("127.0.0.1",), ice_restart_timeout=2.0)
    h = Harness(lambda on_event: Sfu(quick, on_event))
    try:
        alice = await h.add("alice")
        await alice.publish(audio=False)
        await h.settle()
        server = h.sfu.peer("alice")
        await wait_for(lambda: server.pc.connectionState == "connected", 30)
        offer = await alice.pc.createOffer()
        # a candidate on a port nobody listens on: the checks fail
        dead = re.sub(r"(a=candidate:\S+ \d \S+ \d+ 127\.0\.0\.1) \d+", r"\1 9", offer.sdp)
        await h.sfu.handle_offer("alice", _restart_sdp(dead), "offer")
        await wait_for(lambda: server.pc.connectionState in ("failed", "closed"), 30)
        assert any(p["state"] in ("failed", "closed") for e, p in alice.events if e == "rtc:state")
    finally:
        await h.close()
