"""Sign-in throttling that slows attackers down without locking owners out.

Wrong passwords and wrong codes are counted per *(account, source)*: the source is a device
the account has already signed in from (the ``consilium_device`` cookie, see
:func:`device_id`) or else the client address. After ``login_max_failures`` free failures the
pair waits ``login_first_delay_seconds``, doubling with each further failure up to
``login_lockout_minutes``: the attacker's address is slowed down; the owner, signing in from
another address or from a known device, is not. An address failing across many accounts is
slowed down as a whole (``login_source_max_failures``), except for devices the account
knows. Failures on one account from every source are counted too: past
``login_alert_failures`` the owner and the administrators are told by e-mail (once per
window) and each attempt gets a short fixed delay — never a lock.

Every counter is keyed by a hash of the typed e-mail address, so an address with no account
is throttled exactly like one with an account: the answers do not reveal which exist.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from core.config import Settings
from core.ratelimit import RateLimiter

WINDOW = 15 * 60  # seconds over which failures are remembered for alerts
MEMORY = 24 * 3600  # how long a (account, source) failure count survives without failures


def account_key(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


def device_hash(device: str) -> str:
    return hashlib.sha256(b"device|" + device.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Source:
    """Where a sign-in attempt comes from: the client address and, when the account has
    signed in from this browser before, its device (hashed)."""

    ip: str
    known_device: str | None = None

    @property
    def key(self) -> str:
        if self.known_device:
            return f"dev:{self.known_device}"
        return "ip:" + hashlib.sha256(self.ip.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Failure:
    delay: int  # seconds the (account, source) now waits before its next attempt; 0 if none
    failures: int  # failures of this (account, source) so far
    alert: bool  # this failure crossed the account's alert threshold (once per window)
    account_failures: int  # failures on the account from every source in the window


class SignInThrottle:
    def __init__(self, limiter: RateLimiter, settings: Settings) -> None:
        self.limiter = limiter
        self.settings = settings

    def _pair(self, email: str, source: Source) -> str:
        return f"signin:{account_key(email)}:{source.key}"

    def _ip(self, source: Source) -> str:
        return "signin-ip:" + hashlib.sha256(source.ip.encode()).hexdigest()[:24]

    def _account(self, email: str) -> str:
        return f"signin-acct:{account_key(email)}"

    def delay_after(self, failures: int, free: int) -> int:
        """Seconds to wait after ``failures`` failures when ``free`` are allowed."""
        if failures < free:
            return 0
        cap = self.settings.login_lockout_minutes * 60
        first = self.settings.login_first_delay_seconds
        return int(min(cap, first * 2 ** min(failures - free, 20)))

    async def wait(self, email: str, source: Source) -> int:
        """Seconds this source must still wait before trying this account (0: go ahead)."""
        waits = [await self.limiter.block_length(self._pair(email, source) + ":block")]
        if not source.known_device:
            waits.append(await self.limiter.block_length(self._ip(source) + ":block"))
        return max(waits)

    async def anomalous(self, email: str) -> bool:
        """True while the account is under a burst of failures from many sources."""
        key = self._account(email)
        return await self.limiter.block_length(key + ":anomaly") > 0

    async def failure(self, email: str, source: Source) -> Failure:
        """Count one wrong password or code from ``source`` on ``email``."""
        s = self.settings
        pair = self._pair(email, source)
        n = await self.limiter.count(pair, ttl=MEMORY)
        delay = self.delay_after(n, s.login_max_failures)
        if delay:
            await self.limiter.block(pair + ":block", delay)
        if not source.known_device:
            m = await self.limiter.count(self._ip(source), ttl=WINDOW)
            ip_delay = self.delay_after(m, s.login_source_max_failures)
            if ip_delay:
                await self.limiter.block(self._ip(source) + ":block", ip_delay)
                delay = max(delay, ip_delay)
        acct = self._account(email)
        total = await self.limiter.count(acct, ttl=WINDOW)
        alert = False
        if total >= s.login_alert_failures:
            await self.limiter.block(acct + ":anomaly", WINDOW)
            alert = await self.limiter.first(acct + ":alerted", window=WINDOW)
        return Failure(delay=delay, failures=n, alert=alert, account_failures=total)

    async def success(self, email: str, source: Source) -> None:
        """The owner got in from ``source``: its failures are forgiven."""
        pair = self._pair(email, source)
        await self.limiter.reset(pair)
        await self.limiter.reset(pair + ":block")
