"""Direct messages outside rooms across two real ``consilium serve`` processes sharing
PostgreSQL and Redis: the message, the unread badge, "Lu" and presence reach the colleague
and every tab of mine whichever node they are connected to."""

from __future__ import annotations

import uuid

import pytest

from tests.support.live import Sock
from tests.support.nodes import two_nodes

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


async def test_direct_messages_badge_and_read_markers_cross_two_nodes(tmp_path):
    async with two_nodes(tmp_path, "dm") as c:
        users, socks, browser, nodes = c.users, c.socks, c.browser, c.nodes
        one, two = nodes[0].url, nodes[1].url
        claire, karim = users["requester"], users["expert"]

        a_api, b_api = await browser("requester"), await browser("expert")
        a1 = await Sock(one, a_api.cookie).connect()  # Claire's tab on node 1
        a2 = await Sock(two, a_api.cookie).connect()  # and another on node 2
        b = await Sock(two, b_api.cookie).connect()  # Karim on node 2
        socks += [a1, a2, b]

        sent = await b.ok(
            "chat:direct",
            {"id": str(uuid.uuid4()), "text": "Vu le scanner ?", "to_user": str(claire.id)},
        )
        mid = sent["message"]["id"]
        for tab in (a1, a2):
            got = await tab.wait_for("chat:message")
            assert got["id"] == mid
            await tab.wait_for("chat:unread", lambda d: d["total"] == 1)

        status, convs = await a_api.call("GET", one + "/api/v1/chat/conversations")
        assert status == 200
        assert [(c["peer"]["id"], c["unread"], c["peer"]["online"]) for c in convs] == [
            (str(karim.id), 1, True)  # Karim is connected to the other node
        ]

        # Claire reads on node 1: Karim on node 2 gets "Lu", her tab on node 2 its badge.
        n = len(a2.received)
        await a1.ok("chat:read", {"message_id": mid, "with_user": str(karim.id)})
        read = await b.wait_for("chat:read")
        assert read["message_id"] == mid and read["reader"]["id"] == str(claire.id)
        await a2.wait_for("chat:unread", lambda d: d["total"] == 0, since=n)
        status, unread = await a_api.call("GET", two + "/api/v1/chat/unread")
        assert (status, unread) == (200, {"total": 0, "conversations": 0})
        status, detail = await b_api.call("GET", one + f"/api/v1/chat/conversations/{claire.id}")
        assert status == 200 and detail["peer_read"]["message_id"] == mid
