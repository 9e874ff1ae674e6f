"""Two network namespaces joined by a veth pair, with random UDP loss made by the kernel.

This kernel has no ``netem``; what works (docs/reliability.md, ../shared/notes) is an
nftables rule on the *receiving* side's input hook: ``numgen random mod 100 < N drop``.
Everything lives inside namespaces this module creates (private /30 addresses on the veth
ends, nothing in the machine's own namespace) and is deleted on exit, failure included.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import IN_CI

NFT_TABLE = "consilium_loss"


def need_root_and_nft() -> tuple[str, str]:
    """(ip, nft) executables; skip locally, fail under CI, when a namespace cannot be made."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (network namespaces)")
    ip = shutil.which("ip") or ("/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else "")
    nft = shutil.which("nft") or ("/usr/sbin/nft" if os.path.exists("/usr/sbin/nft") else "")
    if not ip:
        missing.append("iproute2 (ip)")
    if not nft:
        missing.append("nftables (nft)")
    if missing:
        msg = "kernel-made packet loss needs " + ", ".join(missing)
        if IN_CI:
            pytest.fail(msg + " — CI must run this test", pytrace=False)
        pytest.skip(msg)
    return ip, nft


def _run(*cmd: str) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError as e:  # e.g. no sysctl (procps) inside the namespace's PATH
        raise RuntimeError(f"{' '.join(cmd)}: {e}") from None
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


@dataclass
class Side:
    ns: str
    iface: str
    address: str  # without prefix length

    def exec_prefix(self, ip: str) -> list[str]:
        return [ip, "netns", "exec", self.ns]


@dataclass
class Link:
    a: Side
    b: Side
    subnet: str  # the /30 of the two ends
    ip: str
    nft: str

    def run_in(self, side: Side, *cmd: str) -> str:
        return _run(*side.exec_prefix(self.ip), *cmd)

    def drop_udp(self, side: Side, percent: int) -> None:
        """Drop ``percent`` % of the UDP datagrams ``side`` receives on its veth end."""
        self.run_in(side, self.nft, "add", "table", "inet", NFT_TABLE)
        self.run_in(
            side,
            self.nft,
            "add chain inet " + NFT_TABLE + " input { type filter hook input priority 0 ; }",
        )
        match = f'iifname "{side.iface}" meta l4proto udp'
        self.run_in(side, self.nft, f"add rule inet {NFT_TABLE} input {match} counter")
        self.run_in(
            side,
            self.nft,
            f"add rule inet {NFT_TABLE} input {match} "
            f"numgen random mod 100 < {percent} counter drop",
        )

    def counts(self, side: Side) -> tuple[int, int]:
        """(UDP datagrams that reached ``side``'s veth end, of which dropped) so far."""
        out = self.run_in(side, self.nft, "list", "table", "inet", NFT_TABLE)
        found = [int(n) for n in re.findall(r"counter packets (\d+)", out)]
        assert len(found) == 2, out
        return found[0], found[1]


@contextlib.contextmanager
def veth_link() -> Iterator[Link]:
    """Namespaces ``a`` and ``b`` joined by a veth pair on a private /30 (10.201.x.y), IPv6
    off (no link-local candidates), loopback up. Deleted on exit, whatever happened."""
    ip, nft = need_root_and_nft()
    tag = f"{os.getpid() % 10000:04d}{random.randrange(100):02d}"
    ns_a, ns_b = f"cons-a-{tag}", f"cons-b-{tag}"
    third, fourth = random.randrange(256), random.randrange(0, 256, 4)
    subnet = f"10.201.{third}.{fourth}/30"
    a = Side(ns_a, f"cva{tag}", f"10.201.{third}.{fourth + 1}")
    b = Side(ns_b, f"cvb{tag}", f"10.201.{third}.{fourth + 2}")
    made: list[str] = []
    try:
        for ns in (ns_a, ns_b):
            _run(ip, "netns", "add", ns)
            made.append(ns)
        # created inside namespace a, its peer moved to b: never in the machine's namespace
        _run(ip, "-n", ns_a, "link", "add", a.iface, "type", "veth", "peer", "name", b.iface)
        _run(ip, "-n", ns_a, "link", "set", b.iface, "netns", ns_b)
        for side in (a, b):
            for key in ("all", "default", "lo"):
                with contextlib.suppress(RuntimeError):
                    _run(ip, "netns", "exec", side.ns, "sysctl", "-qw",
                         f"net.ipv6.conf.{key}.disable_ipv6=1")  # fmt: skip
            _run(ip, "-n", side.ns, "addr", "add", f"{side.address}/30", "dev", side.iface)
            _run(ip, "-n", side.ns, "link", "set", side.iface, "up")
            _run(ip, "-n", side.ns, "link", "set", "lo", "up")
        yield Link(a, b, subnet, ip, nft)
    finally:
        for ns in made:  # the veth pair goes with its namespaces
            with contextlib.suppress(RuntimeError):
                _run(ip, "netns", "del", ns)
