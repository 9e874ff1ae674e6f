"""Socket.IO packets the library cannot decode, sent over a raw websocket: the client gets an
error (an error ack when the packet carries an ack id, else CONNECT_ERROR and the connection
closed) and the log gets one quiet line, never a traceback (issue 12 item 14)."""

from __future__ import annotations

import json
import logging

import aiohttp
import pytest

from rooms import packets
from tests.support.live import base_url, cookie_header

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


class Raw:
    """A Socket.IO client written by hand: engine.io frames over aiohttp's websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def frame(self) -> str | None:
        """The next text frame other than a ping (answered), or None once closed (the
        websocket, or engine.io's CLOSE packet, on which a real client closes)."""
        while True:
            msg = await self.ws.receive(timeout=15)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return None
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            if msg.data == "2":  # engine.io ping
                await self.ws.send_str("3")
                continue
            if msg.data == "1":  # engine.io close
                return None
            return str(msg.data)

    async def closed(self) -> list[str]:
        """The frames received until the connection closed."""
        got: list[str] = []
        while (frame := await self.frame()) is not None:
            got.append(frame)
        return got


@pytest.fixture
async def raw(browsers):
    host = await browsers("requester")
    http = aiohttp.ClientSession()
    opened = []

    async def connect() -> Raw:
        ws = await http.ws_connect(
            base_url(host) + "/socket.io/?EIO=4&transport=websocket",
            headers={"Cookie": cookie_header(host)},
        )
        r = Raw(ws)
        opened.append(ws)
        assert (await r.frame()).startswith("0{")  # engine.io open
        await ws.send_str("40")  # Socket.IO connect to "/"
        assert (await r.frame()).startswith("40{")
        return r

    yield connect
    for ws in opened:
        await ws.close()
    await http.close()


def quiet_log(caplog) -> list[logging.LogRecord]:
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert "Traceback" not in caplog.text
    return [r for r in caplog.records if r.name == packets.__name__]


def error_of(frame: str, ack_id: int) -> dict:
    assert frame.startswith(f"43{ack_id}["), frame
    [ack] = json.loads(frame[len(f"43{ack_id}") :])
    return ack


async def test_undecodable_packets_with_an_ack_id_get_an_error_ack(raw, caplog, monkeypatch):
    monkeypatch.setattr(packets, "QUIET", packets.QuietLog())
    caplog.set_level(logging.INFO)
    c = await raw()
    bad = [
        (1, '421["room:join",{"room_id":'),  # truncated JSON
        (7, '427{"not": "a list"}'),  # an event that is not a list
        (8, "428[]"),  # an event without a name
        (9, "429nonsense"),
    ]
    for ack_id, frame in bad:
        await c.ws.send_str(frame)
        ack = error_of(await c.frame(), ack_id)
        assert ack == {"ok": False, "error": packets.BAD_REQUEST}
    # The connection is still usable.
    await c.ws.send_str('4212["presence:online"]')
    ok = error_of(await c.frame(), 12)
    assert ok["ok"] is True
    lines = quiet_log(caplog)
    assert len(lines) == 1 and "undecodable Socket.IO packet" in lines[0].getMessage()


@pytest.mark.parametrize(
    "frame",
    [
        '42["room:join",{"room_id":',  # Socket.IO, no ack id: nothing to answer
        "4x",  # not a Socket.IO packet type
        "47",  # an unknown Socket.IO packet type
        "",  # engine.io: empty frame
        "zzz",  # engine.io: not a packet type
        "b@@@",  # engine.io: base64 that is not
    ],
)
async def test_undecodable_frames_without_an_ack_id_get_connect_error_and_a_close(
    raw, caplog, frame
):
    caplog.set_level(logging.INFO)
    c = await raw()
    await c.ws.send_str(frame)
    answer = await c.frame()
    assert answer is not None and answer.startswith("44"), answer
    assert json.loads(answer[2:])["message"] == "bad_request"
    assert await c.closed() == []
    quiet_log(caplog)


async def test_a_flood_of_bad_packets_logs_one_line(raw, caplog, monkeypatch):
    monkeypatch.setattr(packets, "QUIET", packets.QuietLog())
    caplog.set_level(logging.INFO)
    c = await raw()
    for i in range(30):
        await c.ws.send_str(f"42{100 + i}[broken")
        error_of(await c.frame(), 100 + i)
    lines = quiet_log(caplog)
    assert len(lines) == 1


async def test_over_long_polling_a_bad_packet_is_answered_and_never_hangs_the_request(
    browsers, caplog
):
    caplog.set_level(logging.INFO)
    host = await browsers("requester")
    url = base_url(host) + "/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession(
        headers={"Cookie": cookie_header(host)}, timeout=aiohttp.ClientTimeout(total=30)
    ) as http:
        async with http.get(url) as r:
            url += "&sid=" + json.loads((await r.text())[1:])["sid"]
        async with http.post(url, data="40") as r:
            assert r.status == 200
        async with http.get(url) as r:
            assert (await r.text()).startswith("40{")
        async with http.post(url, data="421[broken") as r:
            assert r.status == 200
        async with http.get(url) as r:
            assert error_of(await r.text(), 1) == {"ok": False, "error": packets.BAD_REQUEST}
        # No ack id: the session is closed, and the POST is still answered at once.
        async with http.post(url, data="42[broken") as r:
            assert r.status == 200
        async with http.get(url) as r:
            answer = await r.text()
            assert r.status == 400 or answer.startswith("44"), answer
    quiet_log(caplog)


@pytest.mark.parametrize(
    "body",
    [
        b"zzz",  # not an engine.io packet type
        b"\xff\xfe\x00garbage",  # not UTF-8
        b"4hello\x1ezzz",  # a good packet, then a bad one
        b"\x1e\x1e",  # empty packets
    ],
)
async def test_a_malformed_long_polling_body_gets_a_4xx_and_one_quiet_line(
    browsers, caplog, monkeypatch, body
):
    monkeypatch.setattr(packets, "QUIET", packets.QuietLog())
    caplog.set_level(logging.INFO)
    host = await browsers("requester")
    url = base_url(host) + "/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession(
        headers={"Cookie": cookie_header(host)}, timeout=aiohttp.ClientTimeout(total=30)
    ) as http:
        async with http.get(url) as r:
            url += "&sid=" + json.loads((await r.text())[1:])["sid"]
        async with http.post(url, data="40") as r:
            assert r.status == 200
        async with http.get(url) as r:
            assert (await r.text()).startswith("40{")
        async with http.post(url, data=body) as r:
            assert 400 <= r.status < 500, r.status
            assert r.content_type == "application/problem+json"
            assert (await r.json())["code"] == "bad_request"
        # The session is closed: engine.io's CLOSE packet, or an unknown session.
        async with http.get(url) as r:
            assert r.status == 400 or "1" in (await r.text()), r.status
    lines = quiet_log(caplog)
    assert len(lines) == 1 and "undecodable engine.io payload" in lines[0].getMessage()
