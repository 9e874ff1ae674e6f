from __future__ import annotations

import uuid

import pytest

from tests.rooms.conftest import create_room

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


async def test_bad_events_get_error_acks_and_the_connection_stays_up(browsers, sockets):
    host = await browsers("requester")
    room = await create_room(host)
    other_room = await create_room(host, title="Autre")
    s = await sockets(host)

    async def code(event, data=None):
        ack = await s.call(event, data)
        assert ack["ok"] is False, ack
        assert set(ack["error"]) >= {"code", "message"}
        return ack["error"]["code"]

    assert await code("nope:nothing", {}) == "unknown_event"
    assert await code("chat:send", {"id": str(uuid.uuid4()), "text": "hi"}) == "not_in_room"
    assert await code("room:join", {"room_id": "not-a-uuid"}) == "invalid_payload"
    assert await code("room:join", "a string") == "invalid_payload"
    assert await code("room:join", [1, 2, 3]) == "invalid_payload"
    assert await code("room:join", {"room_id": room["id"], "extra": 1}) == "invalid_payload"
    assert await code("room:join", {"room_id": str(uuid.uuid4())}) == "room_not_found"
    await s.ok("room:join", {"room_id": room["id"]})
    assert await code("room:join", {"room_id": other_room["id"]}) == "already_in_room"
    assert (
        await code("chat:send", {"room_id": other_room["id"], "id": str(uuid.uuid4()), "text": "x"})
        == "not_in_room"
    )
    assert (
        await code("chat:send", {"id": str(uuid.uuid4()), "text": "x" * 5000}) == "invalid_payload"
    )
    assert await code("chat:send", {"id": str(uuid.uuid4()), "text": "x" * 50_000}) == "too_large"
    assert await code("chat:send", {"id": str(uuid.uuid4()), "text": "\x00\x01"}) == "empty_message"
    assert await code("participant:update", {"audio": "loud"}) == "invalid_payload"
    assert await code("room:mute", {"participant_id": "ghost"}) == "participant_not_found"
    # Still connected and served.
    ack = await s.ok("chat:send", {"id": str(uuid.uuid4()), "text": "toujours là"})
    assert ack["message"]["text"] == "toujours là"
    # The server still serves others.
    s2 = await sockets(host)
    assert (await s2.ok("room:join", {"room_id": other_room["id"]}))["status"] == "joined"


async def test_unauthenticated_socket_is_refused(make_client, sockets):
    import socketio

    anon = await make_client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sockets(anon)
