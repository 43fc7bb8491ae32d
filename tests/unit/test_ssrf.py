"""The SSRF guard: which addresses are blocked, the allowlist, DNS and the connect check."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from app.errors import StepError
from app.nodes.ssrf import AddressGuard, Allowlist, blocked_reason

BLOCKED = [
    "127.0.0.1",
    "127.255.255.254",
    "::1",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "169.254.170.2",  # ECS task metadata
    "169.254.1.1",
    "100.64.0.1",  # CGNAT
    "100.127.255.254",
    "100.100.100.200",  # Alibaba metadata (inside CGNAT too)
    "192.0.0.192",  # Oracle metadata: globally routable by Python 3.11's tables
    "0.0.0.0",
    "0.1.2.3",
    "::",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",  # AWS metadata over IPv6
    "224.0.0.1",
    "239.255.255.250",
    "ff02::1",
    "240.0.0.1",
    "255.255.255.255",
    "198.18.0.1",  # benchmarking
    "192.0.2.1",  # documentation
    "2001:db8::1",
    "::127.0.0.1",  # IPv4-compatible (deprecated)
]

ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.215.14",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above
    "172.15.255.255",
    "172.32.0.1",
    "2001:4860:4860::8888",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
]


@pytest.mark.parametrize("address", BLOCKED)
def test_private_and_special_addresses_are_blocked(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("address", "blocked"),
    [
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("::1", False),
        ("169.254.169.254", True),
        ("::ffff:169.254.169.254", True),
        ("fd00:ec2::254", True),
        ("100.100.100.200", True),
    ],
)
def test_allow_private_still_blocks_metadata(address: str, blocked: bool) -> None:
    reason = blocked_reason(ipaddress.ip_address(address), allow_private=True)
    assert (reason is not None) == blocked


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("api.internal", True),
        ("API.Internal", True),
        ("api.internal.", True),
        ("other.internal", False),
        ("a.example.com", True),
        ("a.b.example.com", True),
        ("example.com", False),  # a wildcard covers subdomains, not the apex
        ("evilexample.com", False),
        ("example.com.evil.net", False),
        ("10.1.2.3", False),  # an IP host is matched by address, not by name
    ],
)
def test_allowlist_matches_hostnames_and_wildcards(host: str, allowed: bool) -> None:
    allowlist = Allowlist.parse(["api.internal", "*.example.com", "10.0.0.0/8"])
    assert allowlist.allows_host(host) == allowed


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("10.1.2.3", True),
        ("11.0.0.1", False),
        ("192.168.1.7", True),
        ("192.168.1.8", False),
        ("fd12:3456::1", True),
        ("fd12:3457::1", False),
        ("127.0.0.1", False),
    ],
)
def test_allowlist_matches_ips_and_cidrs(address: str, allowed: bool) -> None:
    allowlist = Allowlist.parse(["10.0.0.0/8", "192.168.1.7", "[fd12:3456::]/32", " ", "x.y"])
    assert allowlist.allows_address(ipaddress.ip_address(address)) == allowed


async def vet(guard: AddressGuard, host: str, port: int = 80) -> StepError | None:
    try:
        await guard.vet(host, port)
    except StepError as exc:
        return exc
    return None


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]", "169.254.169.254", "10.9.8.7"])
async def test_guard_refuses_blocked_literal_hosts(host: str) -> None:
    error = await vet(AddressGuard(allow_private=False), host)
    assert error is not None
    assert (error.code, error.retryable) == ("ssrf_blocked", False)
    assert host.strip("[]") in error.message


async def test_hostname_resolving_to_loopback_is_blocked() -> None:
    error = await vet(AddressGuard(allow_private=False), "localhost")
    assert error is not None and error.code == "ssrf_blocked"
    assert "localhost" in error.message
    assert "127.0.0.1" in error.message or "::1" in error.message


async def test_numeric_host_spellings_are_resolved_and_blocked() -> None:
    # inet_aton spellings of 127.0.0.1 are not IP literals to `ipaddress`, but DNS resolves them.
    for host in ("2130706433", "0x7f.1", "127.1"):
        error = await vet(AddressGuard(allow_private=False), host)
        assert error is not None and error.code == "ssrf_blocked", host


@pytest.mark.parametrize(
    ("allowlist", "host"),
    [
        (["localhost"], "localhost"),
        (["127.0.0.0/8", "::1"], "localhost"),
        (["10.9.8.7"], "10.9.8.7"),
    ],
)
async def test_allowlist_lets_a_private_host_through(allowlist: list[str], host: str) -> None:
    assert await vet(AddressGuard(allow_private=False, allowlist=allowlist), host) is None


async def test_allow_private_lets_everything_but_metadata_through() -> None:
    guard = AddressGuard(allow_private=True)
    assert await vet(guard, "localhost") is None
    assert await vet(guard, "10.0.0.1") is None
    assert await vet(guard, "169.254.169.254") is not None
    assert (
        await vet(
            AddressGuard(allow_private=True, allowlist=["169.254.169.254"]), "169.254.169.254"
        )
        is None
    )


class FakeStream:
    """Stands in for httpcore's network stream: a peer address and a close flag."""

    def __init__(self, peer: tuple[str, int] | None) -> None:
        self.peer = peer
        self.closed = False

    def get_extra_info(self, name: str) -> Any:
        return self.peer if name == "server_addr" else None

    async def aclose(self) -> None:
        self.closed = True


async def test_connect_check_refuses_and_closes_a_blocked_peer() -> None:
    hook = AddressGuard(allow_private=False).connect_check("rebound.example")
    assert hook is not None
    stream = FakeStream(("127.0.0.1", 80))
    await hook("connection.connect_tcp.started", {"host": "rebound.example"})
    with pytest.raises(StepError) as info:
        await hook("connection.connect_tcp.complete", {"return_value": stream})
    assert info.value.code == "ssrf_blocked"
    assert "rebound.example" in info.value.message and "127.0.0.1" in info.value.message
    assert stream.closed


@pytest.mark.parametrize(
    ("peer", "blocked"), [(("8.8.8.8", 80), False), (None, True), (("10.0.0.1", 443), True)]
)
async def test_connect_check_verifies_the_actual_peer(
    peer: tuple[str, int] | None, blocked: bool
) -> None:
    hook = AddressGuard(allow_private=False).connect_check("example.com")
    assert hook is not None
    stream = FakeStream(peer)
    if blocked:
        with pytest.raises(StepError):
            await hook("connection.connect_tcp.complete", {"return_value": stream})
    else:
        await hook("connection.connect_tcp.complete", {"return_value": stream})
    assert stream.closed == blocked


def test_connect_check_is_skipped_for_allowlisted_hostnames() -> None:
    guard = AddressGuard(allow_private=False, allowlist=["*.corp.example"])
    assert guard.connect_check("db.corp.example") is None
    assert guard.connect_check("corp.example") is not None
