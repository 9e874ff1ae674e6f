"""The server sends UDP only to allowed addresses: trickled, signalled or peer-reflexive.

The loopback test setting allows 127.0.0.1 only; 127.0.0.2 (also on `lo`) stands for an
address the server must never send to, so a socket bound there can prove that nothing came.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import aioice.ice
import pytest
from aiortc import RTCSessionDescription

from rtc import aiortc_internals
from rtc.errors import RtcError
from rtc.ice import AddressPolicy
from tests.rtc.clients import Client, Harness, wait_decoded, wait_for

REFUSED = "127.0.0.2"


def test_default_policy_refuses_internal_and_special_addresses() -> None:
    default = AddressPolicy()
    for address in (
        "192.0.2.77",  # documentation
        "203.0.113.5",
        "10.255.255.1",  # private
        "192.168.1.10",
        "172.16.0.1",
        "100.64.0.1",  # carrier-grade NAT
        "127.0.0.1",  # loopback
        "169.254.1.1",  # link-local
        "224.0.0.251",  # multicast
        "255.255.255.255",
        "0.0.0.0",  # unspecified
        "240.0.0.1",  # reserved
        "::1",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::",
        "::ffff:10.0.0.1",  # IPv4-mapped private
        "2001:db8::1",  # documentation
        "abc.local",  # mDNS: resolved by multicast on the LAN
        "example.org",  # DNS names are never looked up
    ):
        assert not default.allows(address), address
    assert default.allows("8.8.8.8") and default.allows("2a00:1450:4007::1")

    hospital = AddressPolicy(allowed_networks=["10.20.0.0/16"])
    assert hospital.allows("10.20.3.4") and not hospital.allows("10.21.0.1")
    assert hospital.allows("8.8.8.8") and hospital.allows("abc.local")

    loopback = AddressPolicy(allowed_addresses=["127.0.0.1"])
    assert loopback.allows("127.0.0.1")
    assert not loopback.allows(REFUSED) and not loopback.allows("8.8.8.8")
    assert not loopback.allows("abc.local")

    sdp = (
        "a=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\n"
        "a=candidate:2 1 udp 1 127.0.0.1 9999999 typ host\r\n"
        "a=candidate:3 1 udp 1 127.0.0.2 5000 typ host\r\n"
        "a=candidate:4 1 udp 1 127.0.0.1 0 typ host\r\n"
    )
    assert loopback.filter_sdp(sdp) == "a=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\n"


@contextlib.contextmanager
def listening_on(address: str) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 0))
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


def received(sock: socket.socket) -> list[bytes]:
    got = []
    with contextlib.suppress(BlockingIOError):
        while True:
            got.append(sock.recv(4096))
    return got


@pytest.mark.media
async def test_trickled_bad_ports_and_refused_addresses_get_error_acks_and_no_packet(
    harness: Harness,
) -> None:
    alice = await harness.add("alice")
    await alice.publish(audio=False)
    bob = await harness.add("bob")
    await harness.settle()
    with listening_on(REFUSED) as trap:
        port = trap.getsockname()[1]
        for line, code in [
            (f"candidate:1 1 udp 2130706431 127.0.0.1 {p} typ host", "bad_candidate")
            for p in (0, 65536, 9999999)
        ] + [
            (f"candidate:1 1 udp 2130706431 {ip} {port} typ host", "candidate_not_allowed")
            for ip in ("192.0.2.77", "10.255.255.1", "203.0.113.5", REFUSED)
        ]:
            with pytest.raises(RtcError) as error:
                await harness.sfu.add_candidate("bob", {"candidate": line, "sdpMid": "0"})
            assert error.value.code == code, line
        # the transport kept working, and had every chance to send to the trap meanwhile
        before = len(bob.received_from("alice").counters)
        await wait_decoded([(bob, "alice")], before + 30)
        assert len(bob.received_from("alice").counters) >= before + 30
        assert received(trap) == []


class SendsFromRefusedAddress(Client):
    """A participant whose ICE agent gathers on 127.0.0.2 only: the server learns it only as
    a peer-reflexive candidate, from its connectivity checks."""

    async def _set_local_answer(self, answer: RTCSessionDescription) -> None:
        restricted = aioice.ice.get_host_addresses
        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [REFUSED]
        try:
            await self.pc.setLocalDescription(answer)
        finally:
            aioice.ice.get_host_addresses = restricted


@pytest.mark.media
async def test_a_peer_sending_from_a_refused_address_gets_no_media(harness: Harness) -> None:
    alice = await harness.add("alice")
    await alice.publish()
    bob = await harness.add("bob")
    await harness.settle()  # nobody else gathers while the rogue does (process-wide lookup)
    rogue = SendsFromRefusedAddress(harness.sfu, "room-1", "rogue")
    harness.clients["rogue"] = rogue
    await rogue.join()
    await harness.settle()
    assert REFUSED in rogue.pc.localDescription.sdp  # it did offer 127.0.0.2 only
    server = harness.sfu.peer("rogue").pc
    # its checks reached the server (refused, or answered without the guard), and bob's
    # media flowed meanwhile
    await wait_for(
        lambda: (
            aiortc_internals.refused_by_guard(server) > 0 or rogue.pc.connectionState == "connected"
        ),
        30,
    )
    await wait_decoded([(bob, "alice")], 30)
    assert len(bob.received_from("alice").counters) >= 30
    assert server.iceConnectionState != "completed"
    assert rogue.pc.connectionState != "connected"
    assert all(received.first_frame_at is None for received in rogue.video.values())
    for mid in rogue.labels:
        assert await rogue.packets_received(mid) == 0
