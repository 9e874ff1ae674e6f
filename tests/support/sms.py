"""A real HTTP server on 127.0.0.1 acting as the SMS gateway: it keeps what it receives."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


class SmsGateway:
    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.messages: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        app = web.Application()
        app.router.add_post("/send", self._send)
        self.server = TestServer(app, host="127.0.0.1")

    async def _send(self, request: web.Request) -> web.Response:
        self.messages.append(await request.json())
        self.headers.append(dict(request.headers))
        return web.json_response({"ok": self.status < 300}, status=self.status)

    @property
    def url(self) -> str:
        return str(self.server.make_url("/send"))

    async def start(self) -> None:
        await self.server.start_server()

    async def close(self) -> None:
        await self.server.close()

    async def wait_for(self, to: str, timeout: float = 10) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            for m in reversed(self.messages):
                if m.get("to") == to:
                    return m
            await asyncio.sleep(0.02)
        raise AssertionError(f"no SMS to {to} within {timeout}s")
