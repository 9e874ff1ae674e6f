"""A Socket.IO test client (python-socketio's AsyncClient) that records what it receives."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import socketio


class Sock:
    def __init__(self, url: str, cookie: str) -> None:
        self.url = url
        self.cookie = cookie
        self.sio = socketio.AsyncClient(reconnection=False)
        self.received: list[tuple[str, Any]] = []
        self.disconnected = asyncio.Event()

        @self.sio.on("*")
        async def any_event(event: str, data: Any = None) -> None:
            self.received.append((event, data))

        @self.sio.on("disconnect")
        async def on_disconnect(reason: Any = None) -> None:
            self.disconnected.set()

    async def connect(self) -> Sock:
        self.disconnected.clear()
        await self.sio.connect(
            self.url, headers={"Cookie": self.cookie}, transports=["websocket"], wait_timeout=5
        )
        return self

    async def call(self, event: str, data: Any = None, timeout: float = 5) -> Any:
        if data is None:
            return await self.sio.call(event, timeout=timeout)
        return await self.sio.call(event, data, timeout=timeout)

    async def ok(self, event: str, data: Any = None) -> Any:
        ack = await self.call(event, data)
        assert ack["ok"], ack
        return ack

    def events(self, name: str) -> list[Any]:
        return [d for e, d in self.received if e == name]

    async def wait_for(
        self,
        name: str,
        pred: Callable[[Any], bool] = lambda d: True,
        timeout: float = 5,
        since: int = 0,
    ) -> Any:
        """The first ``name`` event (from index ``since`` of ``received``) matching ``pred``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = since
        while loop.time() < deadline:
            for e, d in self.received[seen:]:
                if e == name and pred(d):
                    return d
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {name} within {timeout}s; got {[e for e, _ in self.received]}")

    async def wait_for_any(
        self, wanted: dict[str, Callable[[Any], bool]], timeout: float = 5, since: int = 0
    ) -> tuple[str, Any]:
        """The first event (from index ``since``) whose name is in ``wanted`` and whose data
        matches that name's predicate, as ``(name, data)``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            for e, d in self.received[since:]:
                if e in wanted and wanted[e](d):
                    return e, d
            await asyncio.sleep(0.02)
        names = sorted(wanted)
        raise AssertionError(
            f"none of {names} within {timeout}s; got {[e for e, _ in self.received]}"
        )

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


def cookie_header(api: Any) -> str:
    return "; ".join(f"{c.key}={c.value}" for c in api.client.session.cookie_jar)


def base_url(api: Any) -> str:
    return str(api.client.make_url("/")).rstrip("/")


async def open_socket(api: Any) -> Sock:
    return await Sock(base_url(api), cookie_header(api)).connect()
