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

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer, RTCPeerConnection

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


def turn_warnings(config: RtcConfig) -> list[str]:
    """What in the TURN settings keeps clients on closed networks from getting a relay
    (docs/coturn.md): logged once when the media service starts."""
    if not config.turn_urls:
        return []
    warnings = []
    if not config.turn_secret:
        warnings.append("CONSILIUM_TURN_URLS is set without CONSILIUM_TURN_SECRET: no relay")
    secure = [u for u in config.turn_urls if u.lower().startswith("turns:")]
    if not secure:
        warnings.append(
            "no turns: URL in CONSILIUM_TURN_URLS: networks that let only TLS on 443 out "
            "get no relay"
        )
    elif not any(_url_port(u) == 443 for u in secure):
        warnings.append("no turns: URL on port 443: networks that let only 443 out get no relay")
    return warnings


def _url_port(url: str) -> int | None:
    """The port of a STUN/TURN URL ("turns:host:443?transport=tcp"); None if absent."""
    hostport = url.split(":", 1)[1].split("?", 1)[0]
    if hostport.startswith("["):  # [IPv6]:port
        tail = hostport.rsplit("]", 1)[1]
        return int(tail[1:]) if tail[1:].isdigit() else None
    bits = hostport.rsplit(":", 1)
    return int(bits[1]) if len(bits) == 2 and bits[1].isdigit() else None


def server_configuration(config: RtcConfig) -> RTCConfiguration:
    """The server's own RTCConfiguration: always explicit (aiortc would add a public STUN)."""
    servers = [RTCIceServer(urls=list(config.stun_urls))] if config.stun_urls else []
    return RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


class AddressPolicy:
    """Which remote addresses the server may send to (ICE checks and media).

    By default only public unicast addresses: private, loopback, link-local, multicast,
    unspecified, reserved and documentation ranges are refused, so that no participant can
    make the server send UDP into the network it runs in. `allowed_networks`
    (CONSILIUM_RTC_ALLOWED_NETWORKS, CIDRs) adds ranges, e.g. a hospital's private network.
    `allowed_addresses` (CONSILIUM_RTC_ALLOWED_ADDRESSES, the loopback-only setting of tests
    and local development) restricts the server to those networks alone (plus
    `allowed_networks`).
    """

    def __init__(
        self,
        allowed_addresses: tuple[str, ...] | list[str] = (),
        allowed_networks: tuple[str, ...] | list[str] = (),
    ) -> None:
        self.networks = [ipaddress.ip_network(a, strict=False) for a in allowed_addresses]
        self.extra = [ipaddress.ip_network(a, strict=False) for a in allowed_networks]

    @property
    def restricted(self) -> bool:
        return bool(self.networks)

    def allows(self, host: str) -> bool:
        """A candidate's address as signalled: an IP, or an mDNS name (checked once resolved)."""
        if host.endswith(".local") and len(host) < 256 and not _is_ip(host):
            # mDNS names stand for LAN addresses, resolved by multicast queries on the LAN:
            # only where a local network is allowed (the guard checks the resolved address)
            return bool(self.extra)
        return self.allows_ip(host)

    def allows_ip(self, host: str) -> bool:
        """An address the server would send to. Never DNS names (their lookup would block)."""
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.extra):
            return True
        if self.networks:
            return any(ip in network for network in self.networks)
        return _public(ip)

    def filter_sdp(self, sdp: str) -> str:
        """Drop `a=candidate` lines whose address is not allowed or whose port is invalid."""
        kept = []
        for line in sdp.splitlines():
            if line.startswith("a=candidate:"):
                bits = line.split()
                if len(bits) < 6 or not valid_port(bits[5]) or not self.allows(bits[4]):
                    continue
                if bits[4].endswith(".local"):
                    continue  # resolved inside setRemoteDescription, before the guard: trickle
            kept.append(line)
        return "\r\n".join(kept) + "\r\n"


def valid_port(port: object) -> bool:
    try:
        value = int(str(port))
    except ValueError:
        return False
    return 0 < value < 65536


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A public unicast address (`is_global` also leaves out documentation ranges)."""
    return (
        ip.is_global
        and not ip.is_multicast
        and not ip.is_reserved
        and not ip.is_unspecified
        and not ip.is_loopback
        and not ip.is_link_local
    )


def guard(pc: RTCPeerConnection, policy: AddressPolicy) -> None:
    """Make the ICE agents of `pc` ignore remote addresses the policy refuses.

    Covers what signalling cannot see: a connectivity check arriving from an unknown address
    (which aioice would answer and learn as a peer-reflexive candidate, then send media to)
    and mDNS names resolved by aioice. Call after every description that may create
    transports, before the local description is set (gathering opens the sockets).
    """
    for connection in aiortc_internals.ice_connections(pc):
        aiortc_internals.guard_ice_connection(connection, policy.allows_ip)


def apply_gathering_policy(config: RtcConfig) -> None:
    """Gather host candidates only on the allowed addresses, on ports of the configured
    range (process-wide, see internals)."""
    aiortc_internals.restrict_host_addresses(config.allowed_addresses or None)
    aiortc_internals.restrict_udp_ports(config.udp_ports)
