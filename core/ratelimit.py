"""Rate limits against abuse: GCRA (the generic cell rate algorithm) per key, in memory.

A limit "N/period" lets a key make N requests at once and then one every period/N ("300/min": a burst
of 300, then 5 a second), so a client that keeps to the rate is never refused. GCRA keeps a single float per key (its
"theoretical arrival time"), so a check is a dict lookup and two comparisons, with no timers, locks or
awaits; the answer to a refusal is exactly how long to wait (the Retry-After). A key whose arrival time
has passed is at full allowance, so forgetting it changes nothing. The table never holds more than
`max_keys`: idle keys go first, then the longest known (one of those that was not idle only gets its
full allowance back a little sooner).

The limits live in one process: several `paylinks serve` processes each enforce their own, so behind a
load balancer a client gets up to the limit once per process.

This is deliberately not the `limits` package: its async API awaits a storage backend on every hit and
counts windows, while the hot paths here need a synchronous, allocation-free check.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Hashable
from typing import Protocol

from core.pacing import Rate, parse_rate

MonotonicClock = Callable[[], float]

DEFAULT_MAX_KEYS = 50_000


class RateLimiter:
    """N requests per period per key; `hit` takes one, `wait` only looks."""

    __slots__ = ("_arrivals", "interval_s", "max_keys", "monotonic", "rate", "tolerance_s")

    def __init__(
        self, rate: Rate, *, max_keys: int = DEFAULT_MAX_KEYS, monotonic: MonotonicClock = time.monotonic
    ) -> None:
        self.rate = rate
        self.interval_s = rate.interval_s
        # A burst of `count` at once: the count-th request of a fresh key arrives exactly at the tolerance.
        self.tolerance_s = rate.period_s - rate.interval_s
        self.max_keys = max_keys
        self.monotonic = monotonic
        # key -> theoretical arrival time (insertion order: first seen first).
        self._arrivals: dict[Hashable, float] = {}

    @classmethod
    def from_setting(
        cls, text: str, *, max_keys: int = DEFAULT_MAX_KEYS, monotonic: MonotonicClock = time.monotonic
    ) -> RateLimiter | None:
        """A limiter for a rate setting such as "20/s" or "300/min"; None for "unlimited"."""
        rate = parse_rate(text)
        return None if rate is None else cls(rate, max_keys=max_keys, monotonic=monotonic)

    def __len__(self) -> int:
        return len(self._arrivals)

    def wait(self, key: Hashable) -> float:
        """Seconds until `key` may make a request (0.0: now), without taking it."""
        now = self.monotonic()
        arrival = self._arrivals.get(key)
        if arrival is None:
            return 0.0
        allowed_at = arrival - self.tolerance_s
        return allowed_at - now if allowed_at > now else 0.0

    def hit(self, key: Hashable) -> float:
        """Take one request for `key`: 0.0 when allowed, else the seconds to wait (nothing is taken)."""
        now = self.monotonic()
        arrivals = self._arrivals
        arrival = arrivals.get(key)
        if arrival is None or arrival < now:
            arrival = now
        allowed_at = arrival - self.tolerance_s
        if allowed_at > now:
            return allowed_at - now
        arrivals[key] = arrival + self.interval_s
        if len(arrivals) > self.max_keys:
            self._forget(now)
        return 0.0

    def _forget(self, now: float) -> None:
        """Over `max_keys`: shrink to 90% of it, so this full pass runs once per max_keys/10 new keys
        (a few steps per hit on average). Keys at full allowance go first (forgetting them is exact), then
        the longest known; one of those that was not idle only gets its full allowance back early."""
        arrivals = self._arrivals
        target = self.max_keys - self.max_keys // 10
        for key in [k for k, arrival in arrivals.items() if arrival <= now]:
            del arrivals[key]
        if len(arrivals) > target:
            for key in [k for k, _ in zip(arrivals, range(len(arrivals) - target), strict=False)]:
                del arrivals[key]


# ---------------------------------------------------------------- client addresses

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(values: list[str]) -> tuple[IpNetwork, ...]:
    """`[server] trusted_proxies`: CIDRs ("10.0.0.0/8") or single addresses ("192.168.1.5")."""
    networks: list[IpNetwork] = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"server.trusted_proxies: {value!r} is not an address or CIDR such as "
                             "\"10.0.0.0/8\"") from None
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as proxies write it: "203.0.113.7", "2001:db8::1", "[2001:db8::1]:443", "203.0.113.7:80"."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_key(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """What one client's limit is counted under: its IPv4 address, or its IPv6 /64 (one subscriber's
    network, in which any one person can pick a fresh address for every request)."""
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


class ClientAddresses:
    """The client a request is counted against: the connection's peer, or, when that peer is a trusted
    proxy, the rightmost X-Forwarded-For hop that is not one of ours (the hops to its left are whatever
    the client chose to send, so they are never believed)."""

    CACHE_SIZE = 4096

    def __init__(self, trusted_proxies: tuple[IpNetwork, ...] = ()) -> None:
        self.trusted = trusted_proxies
        self._peers: dict[str, str] = {}  # peer -> key, when no forwarded header can change it

    def _is_trusted(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in network for network in self.trusted)

    def key(self, peer: str | None, forwarded_for: list[str]) -> str:
        """`peer` is the connection's address (None on a Unix socket); `forwarded_for` the X-Forwarded-For
        header values in order."""
        if peer is None:
            return "local"
        cached = self._peers.get(peer)
        if cached is not None:
            return cached
        address = _address(peer)
        if address is None:
            return peer[:64]
        if self.trusted and self._is_trusted(address):
            hops = [hop for value in forwarded_for for hop in value.split(",")]
            for hop in reversed(hops):
                hop_address = _address(hop)
                if hop_address is None:
                    break  # unreadable: stop at the last proxy of ours that we could read
                address = hop_address
                if not self._is_trusted(hop_address):
                    break
            return client_key(address)
        key = client_key(address)
        if len(self._peers) >= self.CACHE_SIZE:
            self._peers.clear()
        self._peers[peer] = key
        return key


class LimitsConfig(Protocol):
    """The `[limits]` settings (bots.config.LimitsSettings), as core sees them."""

    public_per_ip: str
    bad_auth_per_ip: str
    api_per_key: str
    invites_per_shop: int


def check_limits_settings(limits: LimitsConfig, trusted_proxies: list[str]) -> None:
    """Start-up check of `[limits]` and `server.trusted_proxies`; ValueError names the key."""
    for name in ("public_per_ip", "bad_auth_per_ip", "api_per_key"):
        try:
            parse_rate(getattr(limits, name))
        except ValueError as exc:
            raise ValueError(f"limits.{name}: {exc}") from None
    if limits.invites_per_shop < 1:
        raise ValueError("limits.invites_per_shop: must be at least 1")
    parse_trusted_proxies(trusted_proxies)
