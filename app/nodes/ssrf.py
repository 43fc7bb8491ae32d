"""The SSRF guard of `http.request`: which addresses an outbound call may reach.

Two checks, both needed. `AddressGuard.vet` runs before a request: it resolves the host with
the event loop's `getaddrinfo` and refuses if ANY address is blocked. Then httpx resolves again
when it connects, and an attacker's DNS can answer differently the second time (rebinding), so
`AddressGuard.connect_check` is an httpcore `trace` hook that looks at the peer address of the
socket httpx actually opened, right after the TCP connect and before a single byte (TLS hello
included) is sent, and closes it if that address is blocked. Connecting by hostname, rather than
rewriting the URL to the vetted IP, keeps TLS verification, SNI and the connection pool keyed by
hostname, with no `Host` header tricks. A pooled connection is only reused for its own origin
and was vetted when it was opened.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from app.errors import StepError
from app.nodes.base import step_error

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
TraceHook = Callable[[str, dict[str, Any]], Awaitable[None]]

# Cloud instance metadata endpoints (AWS, GCP, Azure, ECS, Alibaba, Oracle): blocked even with
# `http_allow_private`, since they hand out credentials; only an explicit allowlist entry opens one.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "192.0.0.192", "fd00:ec2::254")
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
UNBRACKET = str.maketrans("", "", "[]")  # "[::1]" and "[fd00::]/8" as written in URLs


def parse_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64, 6to4, Teredo), if any."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr in NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr.teredo is not None:
        return addr.teredo[1]
    return None


def blocked_reason(addr: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why `addr` may not be reached, or None when it may."""
    if isinstance(addr, ipaddress.IPv6Address):
        inner = embedded_ipv4(addr)
        if inner is not None:
            return blocked_reason(inner, allow_private=allow_private)
    if addr in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if allow_private:
        return None
    checks = (
        (addr.is_loopback, "loopback"),
        (addr.is_unspecified, "unspecified"),
        (addr.is_link_local, "link-local"),
        (addr.is_multicast, "multicast"),
        (isinstance(addr, ipaddress.IPv4Address) and addr in CGNAT, "shared (CGNAT)"),
        (addr.is_private, "private"),
        (addr.is_reserved, "reserved"),
        (not addr.is_global, "not globally routable"),
    )
    return next((f"a {label} address" for hit, label in checks if hit), None)


@dataclass(frozen=True, slots=True)
class Allowlist:
    """`http_allowlist` parsed: exact hostnames, `*.suffix` wildcards, IPs and CIDR networks."""

    names: frozenset[str]
    suffixes: tuple[str, ...]
    networks: tuple[IPNetwork, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        names: set[str] = set()
        suffixes: list[str] = []
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.translate(UNBRACKET), strict=False))
                continue
            except ValueError:
                pass
            if entry.startswith("*."):
                suffixes.append(entry[1:])  # ".example.com": subdomains only, not the apex
            else:
                names.add(entry)
        return cls(frozenset(names), tuple(suffixes), tuple(networks))

    def allows_host(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        return name in self.names or name.endswith(self.suffixes)

    def allows_address(self, addr: IPAddress) -> bool:
        return any(addr.version == net.version and addr in net for net in self.networks)


@lru_cache(maxsize=16)
def _allowlist(entries: tuple[str, ...]) -> Allowlist:
    return Allowlist.parse(entries)


def blocked_error(host: str, addr: IPAddress | str, reason: str) -> StepError:
    return step_error(
        f"refusing to connect to {host} ({addr}): {reason}; allow it with "
        "TURNOUT_HTTP_ALLOWLIST or TURNOUT_HTTP_ALLOW_PRIVATE",
        code="ssrf_blocked",
        retryable=False,
    )


class AddressGuard:
    """Decides, from the settings, whether a host and its addresses may be reached."""

    def __init__(self, *, allow_private: bool, allowlist: Iterable[str] = ()) -> None:
        self.allow_private = allow_private
        self.allowlist = _allowlist(tuple(allowlist))

    def check(self, host: str, addr: IPAddress) -> None:
        if self.allowlist.allows_address(addr):
            return
        reason = blocked_reason(addr, allow_private=self.allow_private)
        if reason is not None:
            raise blocked_error(host, addr, reason)

    async def vet(self, host: str, port: int) -> None:
        """Refuse `host` if it is, or resolves to, any blocked address."""
        if self.allowlist.allows_host(host):
            return
        literal = parse_ip(host)
        if literal is not None:
            self.check(host, literal)
            return
        if self.allow_private:
            return  # only metadata addresses are left to block: the connect check sees those
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise step_error(
                f"cannot resolve {host}: {exc}", code="http_network", retryable=True
            ) from exc
        for info in infos:
            addr = parse_ip(str(info[4][0]))
            if addr is None:
                raise blocked_error(host, str(info[4][0]), "not an IP address")
            self.check(host, addr)

    def connect_check(self, host: str) -> TraceHook | None:
        """An httpcore `trace` hook refusing a socket whose peer is blocked (rebinding)."""
        if self.allowlist.allows_host(host):
            return None

        async def trace(event: str, info: dict[str, Any]) -> None:
            if event != "connection.connect_tcp.complete":
                return
            stream = info.get("return_value")
            peer = stream.get_extra_info("server_addr") if stream is not None else None
            addr = parse_ip(str(peer[0])) if isinstance(peer, tuple) and peer else None
            try:
                if addr is None:
                    raise blocked_error(host, "unknown", "the peer address cannot be checked")
                self.check(host, addr)
            except StepError:
                if stream is not None:
                    await stream.aclose()  # httpcore drops a stream whose connect step raised
                raise

        return trace
