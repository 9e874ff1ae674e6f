"""ICE configuration: servers for clients and for the server, TURN credentials, address policy.

TURN credentials follow the TURN REST API scheme that coturn implements with
`use-auth-secret`: username "<expiry unix time>:<participant id>", password
base64(HMAC-SHA1(shared secret, username)). coturn recomputes the password from the username
and rejects it after the expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import time
from typing import Any

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer

from rtc import aiortc_internals
from rtc.config import RtcConfig


def turn_credentials(
    secret: str, participant_id: str, ttl: int, now: float | None = None
) -> tuple[str, str]:
    """(username, credential) valid for `ttl` seconds, coturn `use-auth-secret` style."""
    expiry = int(time.time() if now is None else now) + ttl
    username = f"{expiry}:{participant_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def client_ice_servers(config: RtcConfig, participant_id: str) -> list[dict[str, Any]]:
    """`iceServers` for the browser's RTCPeerConnection, handed out with each join."""
    servers: list[dict[str, Any]] = []
    if config.stun_urls:
        servers.append({"urls": list(config.stun_urls)})
    if config.turn_urls and config.turn_secret:
        username, credential = turn_credentials(config.turn_secret, participant_id, config.turn_ttl)
        servers.append(
            {"urls": list(config.turn_urls), "username": username, "credential": credential}
        )
    return servers


def server_configuration(config: RtcConfig) -> RTCConfiguration:
    """The server's own RTCConfiguration: always explicit (aiortc would add a public STUN)."""
    servers = [RTCIceServer(urls=list(config.stun_urls))] if config.stun_urls else []
    return RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


class AddressPolicy:
    """Which remote ICE candidates the server accepts (all, unless addresses are configured)."""

    def __init__(self, allowed: tuple[str, ...] | list[str]) -> None:
        self.networks = [ipaddress.ip_network(a, strict=False) for a in allowed]

    @property
    def restricted(self) -> bool:
        return bool(self.networks)

    def allows(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            # mDNS names (resolved asynchronously by aioice) when unrestricted; never DNS
            # names, whose lookup in sendto would block the event loop
            return not self.networks and host.endswith(".local") and len(host) < 256
        return not self.networks or any(ip in network for network in self.networks)

    def filter_sdp(self, sdp: str) -> str:
        """Drop `a=candidate` lines whose address is not allowed."""
        kept = []
        for line in sdp.splitlines():
            if line.startswith("a=candidate:"):
                bits = line.split()
                if len(bits) < 6 or not self.allows(bits[4]):
                    continue
            kept.append(line)
        return "\r\n".join(kept) + "\r\n"


def apply_gathering_policy(config: RtcConfig) -> None:
    """Gather host candidates only on the allowed addresses (process-wide, see internals)."""
    aiortc_internals.restrict_host_addresses(config.allowed_addresses or None)
