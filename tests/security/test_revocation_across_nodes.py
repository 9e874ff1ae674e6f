"""A guest whose access ends is disconnected on every node at once, not at that node's next
session check: a withdrawn invitation closes the connection its guest holds on the other node
while still outside the lobby, and a guest removed from the room loses every connection it
has, on any node. The nodes' session check is set to ten minutes, so only the node bus can
close them within the test's deadline. The guest's client ignores ``session:ended`` (a
hostile client would), so the server itself has to close the connection."""

from __future__ import annotations

import asyncio

import pytest

from core.sessions import COOKIE
from tests.support.live import Sock
from tests.support.nodes import Cluster, two_nodes

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

DEADLINE = 20.0  # seconds: generous on a busy machine; the session check would take 600


async def invited_guest(c: Cluster, host, url: str, rid: str) -> tuple[str, str, str]:
    """(invitation id, guest id, guest cookie) of a guest who opened a new invitation."""
    status, inv = await host.call(
        "POST",
        url + f"/api/v1/rooms/{rid}/invitations",
        json={"name": "Famille Petit", "email": "jeanne.petit@example.org"},
    )
    assert status == 201, inv
    token = inv["link"].rsplit("/join/", 1)[1]
    async with c.http.post(
        url + f"/api/v1/invitations/{token}/accept", json={"name": "Jeanne Petit"}
    ) as r:
        assert r.status == 200, await r.text()
        guest_id = (await r.json())["guest_id"]
        cookie = f"{COOKIE}={r.cookies[COOKIE].value}"
    return inv["id"], guest_id, cookie


async def closed_within(sock: Sock, seconds: float) -> bool:
    try:
        await asyncio.wait_for(sock.disconnected.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def test_revoked_or_removed_guests_are_disconnected_on_every_node_at_once(tmp_path):
    async with two_nodes(tmp_path, "revoke", CONSILIUM_ROOM_SESSION_CHECK_SECONDS="600") as c:
        a_url, b_url = c.nodes[0].url, c.nodes[1].url
        host = await c.browser("requester")
        status, room = await host.call(
            "POST", a_url + "/api/v1/rooms", json={"kind": "teleconsultation", "title": "Suivi"}
        )
        assert status == 201, room
        rid = room["id"]
        h = await Sock(a_url, host.cookie).connect()
        c.socks.append(h)
        await h.ok("room:join", {"room_id": rid})

        # 1. The guest opened the link and is connected to node 2, not yet in the lobby;
        #    the host withdraws the invitation on node 1.
        inv_id, _, cookie = await invited_guest(c, host, a_url, rid)
        g = await Sock(b_url, cookie).connect()
        c.socks.append(g)
        status, _ = await host.call(
            "POST", a_url + f"/api/v1/rooms/{rid}/invitations/{inv_id}/revoke"
        )
        assert status == 200
        assert await closed_within(g, DEADLINE), "the guest on node 2 is still connected"
        assert ("session:ended", {"reason": "invitation_revoked", "room_id": rid}) in g.received

        # 2. An admitted guest in the room on node 1 with a second connection on node 2
        #    (another tab, outside the room): removal closes both.
        _, guest_id, cookie = await invited_guest(c, host, a_url, rid)
        inside = await Sock(a_url, cookie).connect()
        other_tab = await Sock(b_url, cookie).connect()
        c.socks += [inside, other_tab]
        assert (await inside.ok("room:join", {"room_id": rid}))["status"] == "lobby"
        await h.wait_for("lobby:arrived", lambda d: d["guest_id"] == guest_id, timeout=DEADLINE)
        await h.ok("room:admit", {"guest_id": guest_id})
        await inside.wait_for("lobby:admitted", timeout=DEADLINE)
        joined = await inside.ok("room:join", {"room_id": rid})
        await h.ok("room:remove", {"participant_id": joined["participant_id"]})
        assert await closed_within(inside, DEADLINE)
        assert await closed_within(other_tab, DEADLINE), "the guest's other tab is still open"
