"""Deployment tests: the configuration files of deploy/ run by the real Debian programs
(coturn's ``turnserver``, ``nginx``) on loopback ports, each instance started by the test with
its own configuration, certificate, logs and pid file in the test's tmp dir (never the system
services, which stay stopped).

The configuration a test runs is *derived* from the shipped file: every line marked
``# test: KEY`` is replaced by the test's value for KEY (or deleted), the rest is kept as
shipped, so a broken shipped file breaks the test.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import re
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import IN_CI
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, Pages
from ui import assets_missing

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

# Chromium checks the certificate of a turns: server like a web page's: a self-signed one
# fails with icecandidateerror 701 and no relay candidate. Tests trust it this way; production
# uses a certificate of a public CA (docs/coturn.md).
CHROMIUM_TEST_CERT_ARGS = ["--ignore-certificate-errors"]


def need_program(path: str) -> str:
    found = shutil.which(path)
    if found is None:
        msg = f"{path} is not installed (Debian: see docs/deployment.md)"
        if IN_CI:
            pytest.fail(msg + " — CI must run the deployment tests", pytrace=False)
        pytest.skip(msg)
    return found


def derive(template: Path, values: dict[str, Sequence[str] | str | None]) -> str:
    """The shipped file with each ``# test: KEY`` line replaced by ``values[KEY]``: a string
    (one line), a sequence (consumed one item per marked line, in order) or None (deleted)."""
    queues: dict[str, list[str]] = {
        k: list(v) for k, v in values.items() if v is not None and not isinstance(v, str)
    }
    out = []
    for line in template.read_text().splitlines():
        m = re.search(r"#\s*test:\s*([\w-]+)\s*$", line)
        if m is None:
            out.append(line)
            continue
        key = m.group(1)
        if key not in values:
            raise AssertionError(f"{template.name}: no test value for marker {key!r}")
        value = values[key]
        if value is None or key == "delete":
            continue
        indent = line[: len(line) - len(line.lstrip())]
        out.append(indent + (value if isinstance(value, str) else queues[key].pop(0)))
    return "\n".join(out) + "\n"


def self_signed(directory: Path, name: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for the IP address ``name`` (cryptography), as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(name))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def wait_listening(port: int, proc: asyncio.subprocess.Process, log: Path) -> None:
    """Until something accepts TCP connections on 127.0.0.1:port (generous deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            pass
        if proc.returncode is not None or loop.time() > deadline:
            text = log.read_text(errors="replace") if log.exists() else ""
            raise AssertionError(f"nothing listens on {port}: {text[-3000:]}")
        await asyncio.sleep(0.1)


async def stop_process(proc: asyncio.subprocess.Process | None) -> None:
    if proc is None or proc.returncode is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 15)
    except TimeoutError:
        proc.kill()
        await proc.wait()


# -- coturn ------------------------------------------------------------------------------


class Coturn:
    """Debian's coturn with deploy/coturn/turnserver.conf, on 127.0.0.1 only: UDP/TCP on
    ``port``, TLS on ``tls_port`` (443 in the shipped file), relayed ports in
    ``relay_ports``, and the loopback peer (the SFU on 127.0.0.1) allowed."""

    def __init__(self, directory: Path, secret: str, ports: tuple[int, int, range]) -> None:
        self.dir = directory
        self.secret = secret
        self.port, self.tls_port, self.relay_ports = ports
        self.log = directory / "turnserver.log"
        self.proc: asyncio.subprocess.Process | None = None

    def config(self) -> str:
        cert, key = self_signed(self.dir)
        text = derive(
            DEPLOY / "coturn" / "turnserver.conf",
            {
                "realm": ["realm=consilium.test", "server-name=consilium.test"],
                "listening-ip": "listening-ip=127.0.0.1",
                "relay-ip": "relay-ip=127.0.0.1",
                "listening-port": f"listening-port={self.port}",
                "tls-listening-port": f"tls-listening-port={self.tls_port}",
                "min-port": f"min-port={self.relay_ports.start}",
                "max-port": f"max-port={self.relay_ports.stop - 1}",
                "secret": f"static-auth-secret={self.secret}",
                "cert": f"cert={cert}",
                "pkey": f"pkey={key}",
                "allowed-peer-ip": "allowed-peer-ip=127.0.0.1",
                "log-file": f"log-file={self.log}",
            },
        )
        # Test only: the SFU is on loopback, which the shipped file (rightly) denies.
        return text + "\n".join(
            [
                "allow-loopback-peers",
                f"pidfile={self.dir / 'turnserver.pid'}",
                f"userdb={self.dir / 'turndb'}",
                "verbose",
                "",
            ]
        )

    async def start(self) -> None:
        exe = need_program("turnserver")
        conf = self.dir / "turnserver.conf"
        conf.write_text(self.config())
        out = (self.dir / "turnserver.out").open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            exe, "-c", str(conf), stdout=out, stderr=subprocess.STDOUT
        )
        await wait_listening(self.tls_port, self.proc, self.log)

    async def stop(self) -> None:
        await stop_process(self.proc)

    def log_text(self) -> str:
        # coturn names its log file <name>_<date>.log next to the one asked for
        parts = sorted(self.dir.glob("turnserver*.log"))
        return "".join(p.read_text(errors="replace") for p in parts)


def free_port_range(count: int) -> range:
    """``count`` consecutive UDP ports free on 127.0.0.1 right now, above the ephemeral range
    the SFU's sockets use (so coturn's relays do not collide with them)."""
    import random
    import socket

    for _ in range(200):
        start = random.randrange(61000, 65000 - count)
        socks = []
        try:
            for port in range(start, start + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return range(start, start + count)
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free UDP port range")


@pytest.fixture
async def coturn(tmp_path: Path) -> AsyncIterator[Coturn]:
    from tests.conftest import free_port

    directory = tmp_path / "coturn"
    directory.mkdir()
    server = Coturn(
        directory, os.urandom(16).hex(), (free_port(), free_port(), free_port_range(40))
    )
    try:
        await server.start()
        yield server
    finally:
        await server.stop()


# -- nginx -------------------------------------------------------------------------------


class Nginx:
    """Debian's nginx running deploy/nginx/consilium.conf on 127.0.0.1:``port`` (TLS, a
    self-signed certificate) in front of ``upstreams``; everything in ``directory``."""

    def __init__(self, directory: Path, port: int, upstreams: list[str], metrics_allow: str):
        self.dir = directory
        self.port = port
        self.upstreams = upstreams
        self.metrics_allow = metrics_allow
        self.access_log = directory / "access.log"
        self.error_log = directory / "error.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.url = f"https://127.0.0.1:{port}"

    def config(self) -> str:
        cert, key = self_signed(self.dir)
        site = derive(
            DEPLOY / "nginx" / "consilium.conf",
            {
                "delete": None,
                "upstream": [f"server {u} max_fails=3 fail_timeout=10s;" for u in self.upstreams],
                "server_name": "server_name 127.0.0.1;",
                "listen": f"listen 127.0.0.1:{self.port} ssl http2;",
                "cert": f"ssl_certificate {cert};",
                "key": f"ssl_certificate_key {key};",
                "metrics-allow": f"allow {self.metrics_allow};",
                "static": f"alias {ROOT / 'ui' / 'static'}/;",
            },
        )
        (self.dir / "consilium.conf").write_text(site)
        d = self.dir
        # The main file Debian's /etc/nginx/nginx.conf would be, pointed at the tmp dir.
        return f"""
daemon off;
worker_processes 1;
user root;
pid {d / "nginx.pid"};
error_log {self.error_log} info;
events {{ worker_connections 512; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    log_format upstream '$remote_addr "$request" $status $upstream_addr';
    access_log {self.access_log} upstream;
    client_body_temp_path {d / "body"};
    proxy_temp_path {d / "proxy"};
    fastcgi_temp_path {d / "fastcgi"};
    uwsgi_temp_path {d / "uwsgi"};
    scgi_temp_path {d / "scgi"};
    include {d / "consilium.conf"};
}}
"""

    async def start(self) -> None:
        exe = need_program("nginx")
        conf = self.dir / "nginx.conf"
        conf.write_text(self.config())
        check = await asyncio.create_subprocess_exec(
            exe,
            "-t",
            "-c",
            str(conf),
            "-e",
            str(self.error_log),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        out, _ = await check.communicate()
        assert check.returncode == 0, out.decode()
        self.proc = await asyncio.create_subprocess_exec(
            exe,
            "-c",
            str(conf),
            "-e",
            str(self.error_log),
            stdout=subprocess.DEVNULL,
            stderr=(self.dir / "nginx.out").open("wb"),
        )
        await wait_listening(self.port, self.proc, self.error_log)

    async def stop(self) -> None:
        await stop_process(self.proc)

    def upstreams_of(self, path_part: str) -> list[str]:
        """The upstream address of each logged request whose line contains ``path_part``."""
        lines = self.access_log.read_text().splitlines() if self.access_log.exists() else []
        return [ln.rsplit(" ", 1)[1] for ln in lines if path_part in ln]


# -- Chromium ----------------------------------------------------------------------------


@pytest.fixture
async def server(app: web.Application) -> AsyncIterator[TestServer]:
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    try:
        yield srv
    finally:
        await srv.close()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Chromium as tests/ui starts it, trusting the test's self-signed TURN certificate."""
    if not Path(CHROMIUM).exists():
        need_program(CHROMIUM)
    missing = assets_missing()
    if missing:
        msg = f"UI assets not built ({', '.join(missing)}): run `make ui-assets`"
        if IN_CI:
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        env = {**os.environ, "LANG": "fr_FR.UTF-8", "LANGUAGE": "fr"}
        b = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS + CHROMIUM_TEST_CERT_ARGS, env=env
        )
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def pages(browser: Any, server: TestServer) -> AsyncIterator[Pages]:
    p = Pages(browser, str(server.make_url("")).rstrip("/"))
    try:
        yield p
    finally:
        await p.close()


# -- what leaves loopback ----------------------------------------------------------------


def descendants(pid: int) -> set[int]:
    """``pid`` and every process under it (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p not in found:
            found.add(p)
            todo.extend(children.get(p, []))
    return found


def sockets_of(pids: set[int]) -> list[dict[str, str]]:
    """UDP and TCP sockets of these processes, as ``ss -u -t -a -n -p`` lists them."""
    out = subprocess.run(
        ["ss", "-u", "-t", "-a", "-n", "-p"], capture_output=True, text=True, check=True
    ).stdout
    found = []
    for line in out.splitlines()[1:]:
        owners = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if not owners & pids:
            continue
        bits = line.split()
        found.append({"proto": bits[0], "local": bits[4], "peer": bits[5], "line": line})
    return found


def is_loopback_or_any(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]").split("%")[0]
    if host in ("*", "0.0.0.0", "::"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback
