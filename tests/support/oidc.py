"""A real OpenID provider for the Pro Santé Connect tests: node-oidc-provider
(tests/peers/oidc/provider.mjs), configured like PSC, behind a transparent HTTP relay that a
test can tell to tamper with the ID tokens the token endpoint returns (forged, expired).

``npm ci`` runs once in tests/peers/oidc when node_modules is missing (Node 20 and the npm
registry, or its cache, are needed the first time).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import RSAKey
from multidict import CIMultiDict

from tests.conftest import IN_CI, free_port

PEER = Path(__file__).resolve().parents[1] / "peers" / "oidc"
CLIENT_ID = "consilium-test"
CLIENT_SECRET = "consilium-test-client-secret-0123456789"
ACCOUNT_PASSWORD = "1234"
HOP_HEADERS = {"content-length", "transfer-encoding", "content-encoding", "connection"}


def unavailable(msg: str) -> None:
    import pytest

    if IN_CI:
        pytest.fail(msg + " — CI must run the Pro Santé Connect tests", pytrace=False)
    pytest.skip(msg)


def ensure_node_modules() -> None:
    """``npm ci`` once (under a file lock: parallel test runs share the folder)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        unavailable("Node.js is not installed")
    if (PEER / "node_modules" / "oidc-provider").is_dir():
        return
    with open(PEER / ".npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (PEER / "node_modules" / "oidc-provider").is_dir():
            return
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--silent"],
            cwd=PEER,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            unavailable(f"npm ci failed in {PEER}: {done.stderr[-500:]}")


def psc_account(rpps: str, *, sub: str, given: str, family: str) -> dict[str, Any]:
    """A PSC practitioner: SubjectNameID is the national identifier 8 + RPPS."""
    idnat = "8" + rpps
    return {
        "password": ACCOUNT_PASSWORD,
        "sub": sub,
        "claims": {
            "SubjectNameID": idnat,
            "preferred_username": idnat,
            "family_name": family,
            "given_name": given,
            "SubjectRefPro": {
                "codeCivilite": "DR",
                "exercices": [
                    {
                        "codeProfession": "10",
                        "codeCategorieProfessionnelle": "C",
                        "nomDexercice": family,
                        "prenomDexercice": given,
                        "activities": [],
                    }
                ],
            },
            "SubjectOrganization": "",
            "otherIds": [{"identifiant": rpps, "origine": "RPPS", "qualite": 1}],
        },
    }


class OidcPeer:
    """node provider.mjs on one loopback port; a relay on another is the issuer."""

    def __init__(self, tmp: Path, *, consilium_url: str, accounts: dict[str, Any]) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.relay_port = free_port()
        self.issuer = f"http://127.0.0.1:{self.relay_port}"
        self.key = RSAKey.generate_key(
            2048, parameters={"kid": "psc-test", "use": "sig", "alg": "RS256"}, private=True
        )
        self.config = {
            "issuer": self.issuer,
            "port": self.port,
            "jwk": self.key.as_dict(private=True),
            "client": {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [consilium_url + "/api/v1/auth/oidc/psc/callback"],
                "post_logout_redirect_uris": [consilium_url + "/app/login"],
            },
            "accounts": accounts,
        }
        # Set by a test: rewrites the claims of the next ID tokens, and signs them (with the
        # provider's key unless another is given).
        self.tamper: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.tamper_key: RSAKey | None = None
        self.token_requests = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    def sign(self, claims: dict[str, Any], key: RSAKey | None = None) -> str:
        k = key or self.key
        header = {"alg": "RS256", "kid": k.kid or "psc-test"}
        return jwt.encode(header, claims, k)

    async def start(self) -> None:
        ensure_node_modules()
        cfg = self.tmp / "oidc-provider.json"
        cfg.write_text(json.dumps(self.config))
        self._proc = await asyncio.create_subprocess_exec(
            "node",
            "provider.mjs",
            str(cfg),
            cwd=PEER,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "NODE_ENV": "test"},
        )
        assert self._proc.stdout is not None
        deadline = time.monotonic() + 60
        while True:
            line = await asyncio.wait_for(self._proc.stdout.readline(), timeout=60)
            if not line:
                raise RuntimeError("the OpenID provider exited before listening")
            if line.startswith(b"listening"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the OpenID provider did not start")
        asyncio.get_running_loop().create_task(self._drain())
        self._http = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=True
        )
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._relay)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.relay_port).start()

    async def _drain(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while await self._proc.stdout.readline():
            pass

    async def _relay(self, request: web.Request) -> web.StreamResponse:
        assert self._http is not None
        headers = CIMultiDict(request.headers)
        for h in list(headers):
            if h.lower() in HOP_HEADERS:
                headers.popall(h, None)
        body = await request.read()
        async with self._http.request(
            request.method,
            f"http://127.0.0.1:{self.port}{request.path_qs}",
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as r:
            data = await r.read()
            out = CIMultiDict(r.headers)
            status = r.status
        for h in list(out):
            if h.lower() in HOP_HEADERS:
                out.popall(h, None)
        if request.path == "/token":
            self.token_requests += 1
            if status == 200 and self.tamper is not None:
                tokens = json.loads(data)
                claims = dict(jwt.decode(tokens["id_token"], self.key).claims)
                tokens["id_token"] = self.sign(self.tamper(claims), self.tamper_key)
                data = json.dumps(tokens).encode()
        return web.Response(status=status, body=data, headers=out)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            try:
                await asyncio.wait_for(self._proc.wait(), timeout=10)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
