"""deploy/nginx/consilium.conf with Debian's nginx (TLS on a loopback port, a self-signed
certificate) in front of two real ``consilium serve`` nodes sharing PostgreSQL and Redis.
Through nginx only: static files from disk, a sign-in, /metrics refused to strangers, a chat
message between two users whose requests reach different nodes (Socket.IO over long-polling
then WebSocket, sticky by the session cookie), a resumable upload in chunks larger than the
default body limit, and a media call of two aiortc peers whose video decodes."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core.db import Database
from core.events import EventBus
from rtc import aiortc_internals
from tests.conftest import free_port
from tests.deploy.conftest import ROOT, Nginx, descendants, is_loopback_or_any, need_program
from tests.deploy.conftest import sockets_of as sockets_of_pids
from tests.rtc.clients import wait_decoded, wait_for
from tests.rtc.test_signalling import SockClient
from tests.support.documents import make_dossier, pdf_bytes
from tests.support.live import Sock
from tests.support.nodes import Browser, Cluster, two_nodes

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.media, pytest.mark.slow]

SERVICE_EMAIL = "integration@chu-exemple.fr"
SERVICE_PASSWORD = "un-mot-de-passe-solide"


class PatientSock(Sock):
    """A Sock whose acknowledgements may take 30 s (a loaded machine, two hops)."""

    async def call(self, event: str, data: Any = None, timeout: float = 30) -> Any:
        return await super().call(event, data, timeout=timeout)


class Front:
    """Calls through nginx, and which node each one reached (nginx's access log)."""

    def __init__(self, nginx: Nginx, cluster: Cluster) -> None:
        self.nginx, self.c = nginx, cluster

    async def call(self, who: Browser, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        return await who.call(method, self.nginx.url + path, ssl=False, **kw)

    async def node_of(self, who: Browser) -> str:
        """The upstream node that ``who``'s requests reach (hash of its session cookie)."""
        probe = uuid.uuid4().hex
        status, _ = await self.call(who, "GET", f"/api/v1/me?probe={probe}")
        assert status == 200
        return (await self.logged(probe))[0]

    async def logged(self, part: str, count: int = 1) -> list[str]:
        """The upstreams of the requests containing ``part``, once ``count`` are logged
        (nginx writes a line when it finalizes the request, maybe after the answer)."""
        await wait_for(lambda: len(self.nginx.upstreams_of(part)) >= count, 30)
        return self.nginx.upstreams_of(part)

    async def browser_on(self, who: str, node: str | None, *, other_than: str | None = None):
        """A session of ``who`` whose requests reach ``node`` (or any node but
        ``other_than``): sessions are created until the cookie hash lands there."""
        for _ in range(40):
            b = await self.c.browser(who)
            at = await self.node_of(b)
            if (node is None or at == node) and (other_than is None or at != other_than):
                return b, at
        raise AssertionError(f"no session of {who} lands on {node or 'not ' + str(other_than)}")

    async def socket(self, who: Browser, *, polling: bool = False) -> Sock:
        sock = PatientSock(self.nginx.url, who.cookie)
        sock.sio.eio.ssl_verify = False
        if polling:  # what the page does: long-polling first, then the upgrade
            sock.disconnected.clear()
            await sock.sio.connect(
                sock.url,
                headers={"Cookie": who.cookie},
                transports=["polling", "websocket"],
                wait_timeout=20,
            )
        else:
            await sock.sio.connect(
                sock.url, headers={"Cookie": who.cookie}, transports=["websocket"], wait_timeout=20
            )
        self.c.socks.append(sock)
        return sock


def service_signin() -> Any:
    spec = importlib.util.spec_from_file_location(
        "service_signin", ROOT / "docs" / "examples" / "service_signin.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def create_service_account(env: dict[str, str]) -> str:
    """``consilium create-user --totp`` on the cluster's database; its TOTP secret."""
    exe = Path(sys.executable).parent / "consilium"
    done = await asyncio.to_thread(
        subprocess.run,
        [str(exe), "create-user", "--email", SERVICE_EMAIL, "--role", "practitioner",
         "--first-name", "Service", "--last-name", "Intégration",
         "--password", SERVICE_PASSWORD, "--totp"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = re.search(r"TOTP secret: ([A-Z2-7]+)", done.stdout)
    assert found, done.stdout
    return found.group(1)


async def test_two_nodes_behind_nginx_sign_in_chat_upload_and_call(tmp_path: Path) -> None:
    need_program("nginx")
    port = free_port()
    public = f"https://127.0.0.1:{port}"
    async with two_nodes(
        tmp_path,
        "nginx",
        CONSILIUM_PUBLIC_URL=public,
        CONSILIUM_TRUSTED_PROXIES='["127.0.0.1"]',
        CONSILIUM_RTC_ALLOWED_ADDRESSES='["127.0.0.1"]',
    ) as c:
        directory = tmp_path / "nginx"
        directory.mkdir()
        upstreams = [n.url.removeprefix("http://") for n in c.nodes]
        nginx = Nginx(directory, port, upstreams, metrics_allow="127.0.0.2")
        await nginx.start()
        try:
            await scenario(Front(nginx, c), c, upstreams)
        finally:
            await nginx.stop()


async def scenario(front: Front, c: Cluster, upstreams: list[str]) -> None:
    nginx = front.nginx
    insecure = aiohttp.TCPConnector(ssl=False)
    async with aiohttp.ClientSession(
        connector=insecure, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as http:
        # Static files come from disk (no upstream), pages from a node.
        async with http.get(nginx.url + "/static/js/room/ice-fallback.js") as r:
            assert r.status == 200
            assert await r.read() == (ROOT / "ui/static/js/room/ice-fallback.js").read_bytes()
            assert "javascript" in r.headers["Content-Type"]
            assert r.headers["Cache-Control"] == "no-cache"  # the /static/ location's
        assert nginx.upstreams_of("/static/") == []  # not logged: never proxied
        async with http.get(nginx.url + "/app/") as r:
            assert r.status == 200
            assert "Strict-Transport-Security" in r.headers

        # A real sign-in (password, then TOTP) through nginx: secure cookies over TLS.
        secret = await create_service_account(c.nodes[0].env)
        signin = service_signin()
        me = await signin.sign_in(http, nginx.url, SERVICE_EMAIL, SERVICE_PASSWORD, secret)
        assert me["name"] == "Service Intégration", me
        async with http.get(nginx.url + "/api/v1/me") as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["email"] == SERVICE_EMAIL

        # /metrics: refused by nginx to an address not in the allow-list (127.0.0.1 here),
        # passed on for the allowed one (127.0.0.2, the "Prometheus server" of this test).
        async with http.get(nginx.url + "/metrics") as r:
            assert r.status == 403
            assert "nginx" in (await r.text())
        allowed = aiohttp.TCPConnector(ssl=False, local_addr=("127.0.0.2", 0))
        async with (
            aiohttp.ClientSession(connector=allowed) as scraper,
            scraper.get(nginx.url + "/metrics?scrape=1") as r,
        ):
            assert r.status != 403, await r.text()
        assert (await front.logged("/metrics?scrape=1"))[0] in upstreams

    # Two users whose requests reach different nodes; a third on the host's node.
    host, host_node = await front.browser_on("requester", None)
    expert, expert_node = await front.browser_on("expert", None, other_than=host_node)
    secretary, _ = await front.browser_on("secretary", host_node)
    assert {host_node, expert_node} == set(upstreams)

    status, room = await front.call(
        host, "POST", "/api/v1/rooms", json={"kind": "estaff", "title": "RCP derrière nginx"}
    )
    assert status == 201, room
    for who in ("expert", "secretary"):
        status, body = await front.call(
            host,
            "POST",
            f"/api/v1/rooms/{room['id']}/members",
            json={"user_id": str(c.users[who].id), "role": "participant"},
        )
        assert status == 201, body

    # Chat across nodes; the host's socket starts with long-polling (sticky routing).
    h = await front.socket(host, polling=True)
    e = await front.socket(expert)
    host_joined = await h.ok("room:join", {"room_id": room["id"]})
    await e.ok("room:join", {"room_id": room["id"]})
    message_id = str(uuid.uuid4())
    await e.ok("chat:send", {"id": message_id, "text": "Bonjour à travers nginx"})
    got = await h.wait_for("chat:message", lambda d: d.get("id") == message_id, timeout=30)
    assert got["text"] == "Bonjour à travers nginx"
    assert h.sio.transport() == "websocket"  # upgraded from polling, on the same node
    polled = nginx.upstreams_of("transport=polling")
    assert polled and set(polled) == {host_node}, polled
    # the expert's WebSocket is logged once closed: it was on the other node
    await e.close()
    await wait_for(lambda: expert_node in nginx.upstreams_of("transport=websocket"), 30)

    await upload_through_nginx(front, c, host, host_node)
    await call_through_nginx(front, host, h, host_joined, secretary, room)


def assert_loopback_only(c: Cluster, nginx: Nginx) -> None:
    """Nothing of the nodes or nginx talks to anything but loopback (``ss``), media included."""
    pids: set[int] = set()
    for node in c.nodes:
        assert node.proc is not None
        pids |= descendants(node.proc.pid)
    assert nginx.proc is not None
    pids |= descendants(nginx.proc.pid)
    sockets = sockets_of_pids(pids)
    assert any(s["proto"] == "udp" for s in sockets), sockets  # the media sockets
    strays = [
        s["line"]
        for s in sockets
        if not (is_loopback_or_any(s["local"]) and is_loopback_or_any(s["peer"]))
    ]
    assert not strays, "\n".join(strays)


async def upload_through_nginx(front: Front, c: Cluster, host: Browser, node: str) -> None:
    """A resumable upload in 3 MiB chunks (over nginx's default 2 MiB body limit: the upload
    location lifts it and streams), every chunk on the same node."""
    db = Database(c.nodes[0].env["CONSILIUM_DATABASE_URL"], EventBus())
    try:
        dossier_id = await make_dossier(db, c.users)
    finally:
        await db.close()
    data = pdf_bytes(4) + b"\n%" + os.urandom(7 * 1024 * 1024) + b"\n%%EOF\n"
    chunk = 3 * 1024 * 1024
    status, up = await front.call(
        host,
        "POST",
        f"/api/v1/dossiers/{dossier_id}/uploads",
        json={
            "filename": "IRM genou.pdf",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
    )
    assert status == 201, up
    url = front.nginx.url + f"/api/v1/uploads/{up['id']}"
    headers = {"Cookie": host.cookie, "X-CSRF-Token": host.csrf}
    http = host.http
    offset = 0
    while offset < len(data):
        # where to resume, as a client does after a cut
        async with http.head(url, headers=headers, ssl=False) as r:
            assert r.status == 200
            assert int(r.headers["Upload-Offset"]) == offset
        piece = data[offset : offset + chunk]
        async with http.patch(
            url,
            data=piece,
            ssl=False,
            headers={
                **headers,
                "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
            },
        ) as r:
            assert r.status == 204, await r.text()
            offset = int(r.headers["Upload-Offset"])
    status, doc = await front.call(host, "POST", f"/api/v1/uploads/{up['id']}/complete")
    assert status == 201, doc
    async with http.get(
        front.nginx.url + f"/api/v1/dossiers/{dossier_id}/documents/{doc['id']}/content",
        headers=headers,
        ssl=False,
    ) as r:
        assert r.status == 200
        assert hashlib.sha256(await r.read()).hexdigest() == hashlib.sha256(data).hexdigest()
    chunks = await front.logged(f"PATCH /api/v1/uploads/{up['id']}", 3)
    assert len(chunks) == 3 and set(chunks) == {node}, chunks


async def call_through_nginx(
    front: Front,
    host: Browser,
    h: Sock,
    host_joined: dict[str, Any],
    secretary: Browser,
    room: dict[str, Any],
) -> None:
    """The host and the secretary (both on the host's node: the media of one room lives on
    one node, docs/deployment.md) publish and decode each other's video, signalling through
    nginx."""
    s = await front.socket(secretary)
    joined = await s.ok("room:join", {"room_id": room["id"]})
    aiortc_internals.restrict_host_addresses(["127.0.0.1"])
    clients = [
        SockClient(h, host_joined["participant_id"]),
        SockClient(s, joined["participant_id"]),
    ]
    try:
        for client in clients:
            await client.join()
        first, second = clients
        await first.publish()
        await wait_for(lambda: second.mids_for(first.id, "camera") and not second.lock.locked(), 60)
        await second.publish()
        await wait_for(lambda: first.mids_for(second.id, "camera") and not first.lock.locked(), 60)
        await wait_decoded([(first, second.id), (second, first.id)], 10, timeout=90)
        for viewer, publisher in ((first, second), (second, first)):
            counters = viewer.received_from(publisher.id).counters
            assert len(counters) >= 10, f"{viewer.id} decoded {len(counters)} frames"
        assert_loopback_only(front.c, front.nginx)  # while the media flows
    finally:
        for client in clients:
            await client.close()
        aiortc_internals.restrict_host_addresses(None)
