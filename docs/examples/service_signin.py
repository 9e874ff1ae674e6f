"""Sign a script in to Consilium with a service account, as docs/accounts.md explains.

    CONSILIUM_URL=https://consilium.example.fr \
    CONSILIUM_EMAIL=integration@chu-exemple.fr \
    CONSILIUM_PASSWORD=... CONSILIUM_TOTP_SECRET=... \
    python docs/examples/service_signin.py

It signs in (password, then a TOTP code computed from the account's secret), prints who it
is, then makes one change-free call and one write (``PATCH /me`` with no change) to show the
CSRF header. Requires aiohttp and pyotp.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import aiohttp
import pyotp

CSRF_COOKIE = "consilium_csrf"


def csrf_of(http: aiohttp.ClientSession) -> str:
    """The CSRF token the server set as a cookie; every POST/PATCH/PUT/DELETE echoes it."""
    for cookie in http.cookie_jar:
        if cookie.key == CSRF_COOKIE:
            return cookie.value
    raise RuntimeError("no CSRF cookie: sign in first")


async def sign_in(
    http: aiohttp.ClientSession, base: str, email: str, password: str, totp_secret: str
) -> dict[str, str]:
    api = base.rstrip("/") + "/api/v1"
    # 1. Password: opens a session at the second-factor step and sets the CSRF cookie.
    async with http.post(f"{api}/auth/login", json={"email": email, "password": password}) as r:
        if r.status != 200:
            raise RuntimeError(f"password step: {r.status} {await r.text()}")
    # 2. Second factor: a TOTP code. From here on the session exists, so the CSRF header is
    #    required, at this step already. A code works once: wait for the next 30 s step if
    #    this one was just used (by a previous run).
    totp = pyotp.TOTP(totp_secret)
    for attempt in range(2):
        body = {"method": "totp", "code": totp.at(time.time() + 30 * attempt)}
        if attempt:
            await asyncio.sleep(30 - time.time() % 30 + 0.5)
        async with http.post(
            f"{api}/auth/verify", json=body, headers={"X-CSRF-Token": csrf_of(http)}
        ) as r:
            if r.status == 200:
                return await r.json()  # kind, id, name, role, csrf_token (the new one)
            problem = await r.json()
            if problem.get("code") != "invalid_code":
                raise RuntimeError(f"code step: {r.status} {problem}")
    raise RuntimeError("code step: the TOTP code was refused twice (check the clock)")


async def main() -> int:
    base = os.environ["CONSILIUM_URL"]
    # The jar keeps the session, CSRF and device cookies (unsafe=True: also for an IP address).
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        me = await sign_in(
            http,
            base,
            os.environ["CONSILIUM_EMAIL"],
            os.environ["CONSILIUM_PASSWORD"],
            os.environ["CONSILIUM_TOTP_SECRET"],
        )
        print(f"signed in as {me['name']} ({me['role']})")
        api = base.rstrip("/") + "/api/v1"
        async with http.get(f"{api}/me") as r:
            r.raise_for_status()
            print("profile:", (await r.json())["email"])
        # A write: the CSRF token is the one of the full session (a new cookie after step 2).
        async with http.patch(f"{api}/me", json={}, headers={"X-CSRF-Token": csrf_of(http)}) as r:
            r.raise_for_status()
            print("write accepted:", r.status)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
