"""Signalling through the real server: Socket.IO events drive the SFU, aiortc peers on loopback."""

from __future__ import annotations

import asyncio
import itertools
from io import BytesIO
from typing import Any

import pytest
from aiohttp import web

from core.app import create_app
from rooms.live import Live
from rtc.errors import RtcError
from rtc.ice import turn_credentials
from rtc.signalling import SIGNALLING
from tests.conftest import make_settings
from tests.rooms.conftest import create_room
from tests.rtc.clients import Client, wait_decoded, wait_for
from tests.support.live import Sock, open_socket

pytestmark = [
    pytest.mark.media,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

TURN_SECRET = "coturn-shared-secret"


@pytest.fixture
def settings(database_url: str, tmp_path: Any) -> Any:
    return make_settings(
        database_url,
        tmp_path / "data",
        rtc_allowed_addresses=["127.0.0.1"],
        turn_urls=["turn:127.0.0.1:3478?transport=udp"],
        turn_secret=TURN_SECRET,
        turn_ttl_seconds=600,
    )


@pytest.fixture
def app(settings: Any) -> web.Application:
    app = create_app(settings)
    Live.of(app).grace = 1.0
    return app


@pytest.fixture
async def browsers(make_client: Any, users: Any) -> Any:
    """``await browsers("requester")``: a browser signed in as that demo account."""

    async def factory(who: str) -> Any:
        c = await make_client()
        await c.sign_in_as(users[who].id)
        return c

    return factory


class SockClient(Client):
    """An aiortc participant whose signalling goes over its room Socket.IO connection."""

    def __init__(self, sock: Sock, participant_id: str) -> None:
        super().__init__(None, "", participant_id)  # type: ignore[arg-type]
        self.sock = sock
        listen(self, sock)

    async def _call(self, event: str, data: Any = None) -> Any:
        ack = await self.sock.call(event, data, timeout=30)
        if not ack["ok"]:
            raise RtcError(ack["error"]["code"], ack["error"]["message"])
        return ack

    async def _send_join(self, name: str) -> dict[str, Any]:
        return await self._call("rtc:join")  # type: ignore[no-any-return]

    async def _send_offer(self, sdp: str, sources: dict[str, str]) -> dict[str, Any]:
        body = {"sdp": sdp, "type": "offer", "sources": sources}
        return await self._call("rtc:offer", body)  # type: ignore[no-any-return]

    async def _send_pull(self) -> dict[str, Any] | None:
        return (await self._call("rtc:pull"))["offer"]  # type: ignore[no-any-return]

    async def _send_answer(self, sdp: str) -> dict[str, Any]:
        return await self._call("rtc:answer", {"sdp": sdp})  # type: ignore[no-any-return]


def listen(client: Client, sock: Sock) -> None:
    """Hand the server's `rtc:renegotiate` to the client (and keep it in `sock.received`)."""

    async def on_renegotiate(data: Any) -> None:
        sock.received.append(("rtc:renegotiate", data))
        client.on_event("rtc:renegotiate", data)

    sock.sio.on("rtc:renegotiate", on_renegotiate)


async def enter(browsers: Any, who: str, room: dict[str, Any]) -> tuple[Sock, str]:
    api = await browsers(who)
    sock = await open_socket(api)
    joined = await sock.ok("room:join", {"room_id": room["id"]})
    return sock, joined["participant_id"]


@pytest.fixture
async def call(browsers: Any, users: Any) -> Any:
    """A room with a host (requester) and two participants, all in the room over Socket.IO."""
    made: list[SockClient] = []

    async def factory(names: tuple[str, ...] = ("requester", "expert", "secretary")) -> Any:
        host_api = await browsers(names[0])
        room = await create_room(host_api, kind="estaff", title="RCP")
        for who in names[1:]:
            r = await host_api.post(
                f"/api/v1/rooms/{room['id']}/members",
                json={"user_id": str(users[who].id), "role": "participant"},
            )
            assert r.status in (200, 201), await r.text()
        clients = []
        for who in names:
            sock, pid = await enter(browsers, who, room)
            client = SockClient(sock, pid)
            made.append(client)
            clients.append(client)
        return host_api, room, clients

    yield factory
    for c in made:
        await c.close()
        await c.sock.close()


def assert_in_order(counters: list[int], minimum: int) -> None:
    assert len(counters) >= minimum, f"only {len(counters)} frames decoded"
    assert all(b > a for a, b in itertools.pairwise(counters)), counters


def latest_source(counters: list[int]) -> list[int]:
    """The counters since the m-line's source last changed (a counter going back)."""
    start = max((i for i in range(1, len(counters)) if counters[i] <= counters[i - 1]), default=0)
    return counters[start:]


async def settle(clients: list[SockClient], app: web.Application) -> None:
    sfu = app[SIGNALLING].sfu

    def idle() -> bool:
        for c in clients:
            if c.lock.locked() or c.pulling:
                return False
            try:
                peer = sfu.peer(c.id)
            except Exception:
                continue
            if peer.negotiating:
                return False
        return True

    await asyncio.sleep(0.1)
    await wait_for(idle, 8)


async def test_three_participants_exchange_decoded_media_over_socketio(call: Any, app: Any) -> None:
    host_api, room, clients = await call()
    for c in clients:
        ack = await c.join()
        # TURN REST credentials: "<expiry>:<participant>" and the HMAC of the shared secret
        turn = next(s for s in ack["ice_servers"] if "username" in s)
        assert turn["urls"] == ["turn:127.0.0.1:3478?transport=udp"]
        expiry, who = turn["username"].split(":", 1)
        assert who == c.id
        assert turn_credentials(TURN_SECRET, c.id, 0, now=int(expiry)) == (
            turn["username"],
            turn["credential"],
        )
    for c in clients:
        await c.publish()
        await settle(clients, app)
    await wait_decoded([(c, o.id) for c in clients for o in clients if o is not c], 10)
    for c in clients:
        for other in clients:
            if other is not c:
                assert_in_order(c.received_from(other.id).counters, 10)
    # presence follows what is published
    host = clients[0]
    state = await host.sock.wait_for(
        "participant:updated",
        lambda d: (
            d["participant"]["participant_id"] == clients[2].id
            and d["participant"]["media"]["video"]
        ),
    )
    assert state["participant"]["media"]["audio"] is True
    # quality statistics in the room API, for the room's participants only
    r = await host_api.get(f"/api/v1/rooms/{room['id']}/stats")
    assert r.status == 200, await r.text()
    stats = await r.json()
    entry = stats["participants"][clients[1].id]
    assert {t["kind"] for t in entry["published"]} == {"audio", "video"}
    assert entry["subscribed"]
    assert any(t.get("packets", 0) > 0 for t in entry["published"]), entry["published"]
    # and the server's estimate of each participant's link (aiortc clients: from their REMB)
    estimates: dict[str, Any] = {}

    async def link_estimated() -> bool:
        r = await host_api.get(f"/api/v1/rooms/{room['id']}/stats")
        estimates.update((await r.json())["participants"][clients[1].id]["bandwidth"])
        return estimates["estimate"] is not None

    await wait_for(link_estimated, 15, interval=0.5)
    assert estimates["source"] == "remb" and estimates["estimate"] >= 100_000, estimates
    assert {"loss", "rtt_ms", "paused_for_budget"} <= estimates.keys()
    pushed = await host.sock.wait_for(
        "rtc:stats",
        lambda d: bool(d["participants"].get(clients[1].id, {}).get("subscribed")),
        timeout=8,
    )
    assert "bandwidth" in pushed["participants"][clients[1].id]
    assert "allowed_bitrate" in pushed["participants"][clients[1].id]["subscribed"][0]
    # snapshot of a participant's camera, filed as a room capture
    ack = await host.sock.ok("rtc:snapshot", {"participant_id": clients[1].id})
    from PIL import Image

    assert ack["snapshot"]["bytes"] > 0 and ack["snapshot"]["taken_by"] == host.id
    assert ack["attachment_id"]
    files = await host_api.get(f"/api/v1/rooms/{room['id']}/attachments")
    assert files.status == 200, await files.text()
    listed = await files.json()
    capture = next(a for a in listed if a["id"] == ack["attachment_id"])
    assert capture["source"] == "snapshot"
    body = await host_api.get(f"/api/v1/rooms/{room['id']}/attachments/{capture['id']}/content")
    assert body.status == 200
    image = Image.open(BytesIO(await body.read()))
    assert image.format == "JPEG"
    assert image.size == (ack["snapshot"]["width"], ack["snapshot"]["height"])


async def test_host_mute_stops_audio_and_removal_closes_the_connection(call: Any, app: Any) -> None:
    _host_api, _room, clients = await call()
    host, expert, secretary = clients
    for c in clients:
        await c.join()
    await expert.publish(camera=False)
    await host.publish(audio=False)
    await settle(clients, app)
    await asyncio.sleep(1)
    mids = {c.id: c.mids_for(expert.id, "audio")[-1] for c in (host, secretary)}
    await host.sock.ok("room:mute", {"participant_id": expert.id})
    await asyncio.sleep(0.3)
    counts = {c.id: await c.packets_received(mids[c.id]) for c in (host, secretary)}
    assert all(n > 20 for n in counts.values()), counts
    await asyncio.sleep(1)
    for c in (host, secretary):
        assert await c.packets_received(mids[c.id]) == counts[c.id]
    # the host asks, the participant unmutes: audio flows again
    await host.sock.ok("room:ask_unmute", {"participant_id": expert.id})
    await expert.sock.ok("participant:update", {"audio": True})
    await asyncio.sleep(1)
    for c in (host, secretary):
        assert await c.packets_received(mids[c.id]) > counts[c.id] + 20
    # removal closes the removed participant's peer connection
    sfu = app[SIGNALLING].sfu
    server_pc = sfu.peer(secretary.id).pc
    await host.sock.ok("room:remove", {"participant_id": secretary.id})
    await wait_for(lambda: server_pc.connectionState == "closed", 3)
    await wait_for(lambda: secretary.pc.connectionState in ("closed", "failed"), 15)


async def test_paused_tile_gets_nothing_and_screen_share_start_stop_are_announced(
    call: Any, app: Any
) -> None:
    _host_api, _room, clients = await call(("requester", "expert"))
    host, expert = clients
    for c in clients:
        await c.join()
    await expert.publish(audio=False)
    await settle(clients, app)
    # a hidden tile: nothing arrives while paused, the video goes on after resume
    camera_mid = host.mids_for(expert.id, "camera")[-1]
    track_id = host.labels[camera_mid]["track_id"]
    await asyncio.sleep(0.5)
    await host.sock.ok("rtc:pause", {"track_id": track_id})
    await asyncio.sleep(0.3)
    paused_at = await host.packets_received(camera_mid)
    await asyncio.sleep(0.7)
    assert await host.packets_received(camera_mid) == paused_at
    await host.sock.ok("rtc:resume", {"track_id": track_id})
    await asyncio.sleep(0.7)
    assert await host.packets_received(camera_mid) > paused_at
    mark = len(host.sock.received)
    await expert.publish(camera=False, audio=False, screen=True)
    started = await host.sock.wait_for("rtc:screen", since=mark)
    assert started["participant_id"] == expert.id and started["active"] is True
    shared = await host.sock.wait_for(
        "participant:updated",
        lambda d: (
            d["participant"]["participant_id"] == expert.id and d["participant"]["media"]["screen"]
        ),
        since=mark,
    )
    assert shared
    await settle(clients, app)
    mark = len(host.sock.received)
    await expert.stop_publishing("screen")
    stopped = await host.sock.wait_for("rtc:screen", since=mark)
    assert stopped == {**started, "active": False}
    await host.sock.wait_for(
        "participant:updated",
        lambda d: (
            d["participant"]["participant_id"] == expert.id
            and not d["participant"]["media"]["screen"]
        ),
        since=mark,
    )


async def test_bad_input_gets_error_acks_and_the_call_goes_on(
    call: Any, app: Any, browsers: Any
) -> None:
    _host_api, room, clients = await call(("requester", "expert"))
    host, expert = clients
    # before rtc:join the SFU knows nobody
    early = await expert.sock.call(
        "rtc:candidate", {"candidate": "candidate:1 1 udp 1 1.2.3.4 9 typ host"}
    )
    assert early["ok"] is False and early["error"]["code"] == "unknown_participant"
    for c in clients:
        await c.join()
    await host.publish()
    await settle(clients, app)
    bad = await expert.sock.call("rtc:offer", {"sdp": "v=0\r\nnot an sdp", "type": "offer"})
    assert bad["ok"] is False and bad["error"]["code"] == "bad_sdp"
    wrong = await expert.sock.call("rtc:offer", {"sdp": 42})
    assert wrong["error"]["code"] == "invalid_payload"
    unknown = await expert.sock.call("rtc:pause", {"track_id": "nobody:camera"})
    assert unknown["error"]["code"] == "unknown_track"
    garbled = await expert.sock.call("rtc:candidate", {"candidate": "candidate:garbage"})
    assert garbled["error"]["code"] == "bad_candidate"
    outside = await expert.sock.call(
        "rtc:candidate",
        {"candidate": "candidate:1 1 udp 2130706431 10.1.2.3 9 typ host", "sdpMid": "0"},
    )
    # the address policy keeps the server on loopback
    assert outside["error"]["code"] == "candidate_not_allowed"
    bad_port = await expert.sock.call(
        "rtc:candidate",
        {"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 9999999 typ host", "sdpMid": "0"},
    )
    assert bad_port["error"]["code"] == "bad_candidate"
    snap = await expert.sock.call("rtc:snapshot", {"participant_id": "someone-else"})
    assert snap["error"]["code"] == "participant_not_found"
    # tile sizes (simulcast layer choice): malformed refused, unknown tracks skipped
    bad_layout = await expert.sock.call("rtc:layout", {"tiles": "big"})
    assert bad_layout["error"]["code"] == "invalid_payload"
    huge = await expert.sock.call(
        "rtc:layout", {"tiles": [{"track_id": "x", "width": 10**9, "height": 1}]}
    )
    assert huge["error"]["code"] == "invalid_payload"
    skipped = await expert.sock.ok(
        "rtc:layout", {"tiles": [{"track_id": "nobody:camera", "width": 160, "height": 90}]}
    )
    assert skipped["applied"] == []
    camera_track = expert.labels[expert.mids_for(host.id, "camera")[-1]]["track_id"]
    applied = await expert.sock.ok(
        "rtc:layout", {"tiles": [{"track_id": camera_track, "width": 160, "height": 90}]}
    )
    assert applied["applied"] == [camera_track]
    again = await expert.sock.ok("rtc:join")  # a second join starts over with a fresh connection
    assert again["participant_id"] == expert.id
    assert expert.sock.sio.connected
    # the others are unaffected: the host's stats still answer and a newcomer gets media
    api = await browsers("admin")
    outsider = await api.get(f"/api/v1/rooms/{room['id']}/stats")
    assert outsider.status in (403, 404)
    assert app[SIGNALLING].sfu.peer(host.id).pc.connectionState == "connected"


async def test_admitted_guest_joins_the_media_and_both_sides_decode(
    browsers: Any, make_client: Any, app: Any
) -> None:
    host_api = await browsers("requester")
    room = await create_room(host_api, title="Téléconsultation")
    host_sock = await open_socket(host_api)
    await host_sock.ok("room:join", {"room_id": room["id"]})
    r = await host_api.post(
        f"/api/v1/rooms/{room['id']}/invitations",
        json={"name": "Jeanne Petit", "mobile": "+33 6 12 34 56 78"},
    )
    assert r.status == 201, await r.text()
    token = (await r.json())["link"].rsplit("/join/", 1)[1]
    guest_api = await make_client()
    r = await guest_api.post(f"/api/v1/invitations/{token}/accept", json={"name": "Jeanne Petit"})
    assert r.status == 200, await r.text()
    guest_id = (await r.json())["guest_id"]
    guest_sock = await open_socket(guest_api)
    await guest_sock.ok("room:join", {"room_id": room["id"]})
    waiting = await guest_sock.call("rtc:join")  # in the lobby: no media yet
    assert waiting["error"]["code"] == "not_in_room"
    await host_sock.ok("room:admit", {"guest_id": guest_id})
    await guest_sock.wait_for("lobby:admitted")
    joined = await guest_sock.ok("room:join", {"room_id": room["id"]})
    host_pid = next(p["participant_id"] for p in joined["participants"] if p["role"] != "guest")
    host = SockClient(host_sock, host_pid)
    guest = SockClient(guest_sock, joined["participant_id"])
    try:
        for c in (host, guest):
            await c.join()
            await c.publish()
        await settle([host, guest], app)
        await wait_decoded([(host, guest.id), (guest, host.id)], 5)
        assert not host.errors and not guest.errors
        assert_in_order(host.received_from(guest.id).counters, 5)
        assert_in_order(guest.received_from(host.id).counters, 5)
    finally:
        for c in (host, guest):
            await c.close()
            await c.sock.close()


async def reconnect(client: SockClient, room: dict[str, Any]) -> dict[str, Any]:
    """The participant's socket came back (same browser session, a new connection): it joins
    the room again and its events go to the new socket; the peer connection is the same."""
    old = client.sock
    sock = await Sock(old.url, old.cookie).connect()
    listen(client, sock)
    client.sock = sock
    return await sock.ok("room:join", {"room_id": room["id"]})  # type: ignore[no-any-return]


async def test_a_socket_that_comes_back_gets_the_offer_it_missed_and_keeps_its_media(
    call: Any, app: Any
) -> None:
    """The expert's socket drops while the host starts a screen share: the server's
    `rtc:renegotiate` for it goes nowhere. Back within the grace period, `rtc:resync` says an
    offer waits (`renegotiate`); the media never stopped (same connection), and the share is
    decoded once the expert pulled and answered that offer."""
    Live.of(app).grace = 10.0
    _host_api, room, clients = await call(("requester", "expert"))
    host, expert = clients
    joined = {c.id: await c.join() for c in clients}
    await host.publish(audio=False)
    await settle(clients, app)
    await wait_for(lambda: len(expert.received_from(host.id).counters) >= 5, 8)
    sfu = app[SIGNALLING].sfu
    server_peer = sfu.peer(expert.id)

    await expert.sock.close()
    await host.publish(camera=False, audio=False, screen=True)
    # the notice for the expert went out to nobody: an offer waits to be pulled
    await wait_for(lambda: server_peer.renegotiate, 5)
    assert server_peer.pc.signalingState == "stable"  # the server never offers by itself
    camera_before = len(expert.received_from(host.id).counters)

    back = await reconnect(expert, room)
    assert back["resumed"] is True and back["participant_id"] == expert.id
    status = await expert.sock.ok("rtc:resync")
    assert status["connection_id"] == joined[expert.id]["connection_id"]
    assert status["state"] == "connected" and status["renegotiate"] is True
    assert status["pending_offer"] is False
    expert.want_offer()  # what the client does with `renegotiate`
    await settle(clients, app)
    assert sfu.peer(expert.id) is server_peer  # the same media connection
    await wait_for(lambda: len(expert.received_from(host.id, "screen").counters) >= 5, 8)
    assert_in_order(expert.received_from(host.id, "screen").counters, 5)
    assert len(expert.received_from(host.id).counters) > camera_before
    # nothing pending any more
    again = await expert.sock.ok("rtc:resync")
    assert again["pending_offer"] is False and again["renegotiate"] is False
    assert not expert.errors and not host.errors


async def test_media_removed_on_the_server_is_announced_with_its_connection_id(
    call: Any, app: Any
) -> None:
    """What the browser's rejoin relies on: `rtc:state` names the connection it is about, a
    removed connection answers `rtc:resync` with `unknown_participant`, and `rtc:join` again
    gives a new connection id (a join over an existing one announces the old one closed)."""
    _host_api, _room, clients = await call(("requester", "expert"))
    host, expert = clients
    joined = {c.id: await c.join() for c in clients}
    await host.publish(audio=False)
    await expert.publish(audio=False)
    await settle(clients, app)
    first = joined[expert.id]["connection_id"]
    connected = await expert.sock.wait_for(
        "rtc:state", lambda d: d["state"] == "connected", timeout=8
    )
    assert connected["connection_id"] == first

    sfu = app[SIGNALLING].sfu
    mark = len(expert.sock.received)
    await sfu.remove(expert.id)
    closed = await expert.sock.wait_for("rtc:state", lambda d: d["state"] == "closed", since=mark)
    assert closed["connection_id"] == first
    gone = await expert.sock.call("rtc:resync")
    assert gone["ok"] is False and gone["error"]["code"] == "unknown_participant"

    await expert.close()
    fresh = SockClient(expert.sock, expert.id)
    try:
        second = (await fresh.join())["connection_id"]
        assert second and second != first
        mark = len(fresh.sock.received)
        third = (await fresh.sock.ok("rtc:join"))["connection_id"]  # a join over a live one
        assert third not in (first, second)
        replaced = await fresh.sock.wait_for(
            "rtc:state", lambda d: d["state"] == "closed", since=mark
        )
        assert replaced["connection_id"] == second
        assert (await fresh.sock.ok("rtc:resync"))["connection_id"] == third
    finally:
        await fresh.close()


async def test_no_order_of_joins_publishes_and_shares_gets_glare_and_all_decode(
    call: Any, app: Any
) -> None:
    """Issue 15, item 6: every order a room meets, with clients that follow docs/rtc.md (one
    negotiation at a time, the server's offer pulled, no rollback): a publish right after
    `rtc:join` before any server offer, a join while others publish, publishes while another
    joins, two screen shares started at once. No acknowledgement is ever `glare` (nor any
    other error), and everyone decodes everyone."""
    _host_api, _room, clients = await call()
    a, b, c = clients
    await a.join()
    await a.publish()
    # b joins while a publishes, and publishes at once, before pulling the server's offer
    joined = await b.join(pull=False)
    assert joined["renegotiate"] is True
    await b.publish()
    # c joins while a starts a screen share and b offers again (camera already there)
    await asyncio.gather(c.join(), a.publish(camera=False, audio=False, screen=True), b.negotiate())
    await c.publish()
    # b and c start a screen share at the same moment, while a stops its own
    await asyncio.gather(
        b.publish(camera=False, audio=False, screen=True),
        c.publish(camera=False, audio=False, screen=True),
        a.stop_publishing("screen"),
    )
    await settle(clients, app)
    pairs = [(x, y.id) for x in clients for y in clients if x is not y]
    await wait_decoded(pairs, 5, timeout=60)
    for x, y in pairs:
        assert_in_order(x.received_from(y).counters, 5)
    # a's share ended: its m-lines carry b's or c's now, after a's last frames
    shares = [(a, b), (a, c), (b, c), (c, b)]
    await wait_for(
        lambda: all(len(latest_source(x.decoded_counters(y.id, "screen"))) >= 5 for x, y in shares),
        60,
    )
    for x, y in shares:
        assert_in_order(latest_source(x.received_from(y.id, "screen").counters), 5)
    assert {x.id: x.errors for x in clients} == {x.id: [] for x in clients}
