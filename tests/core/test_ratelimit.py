"""core/ratelimit.py (issue 11 point 5): the GCRA limiter and whose address a request is counted under."""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace

import pytest

from core.ratelimit import ClientAddresses, RateLimiter, check_limits_settings, parse_trusted_proxies


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(text: str, clock: Clock, **kw: int) -> RateLimiter:
    made = RateLimiter.from_setting(text, monotonic=clock, **kw)
    assert made is not None
    return made


def test_a_burst_of_n_then_one_per_interval() -> None:
    clock = Clock()
    per_min = limiter("6/min", clock)
    assert [per_min.hit("a") for _ in range(6)] == [0.0] * 6
    wait = per_min.hit("a")
    assert wait == pytest.approx(10.0)  # 60 s / 6: the next one is due in 10 s
    assert per_min.hit("a") == pytest.approx(10.0), "a refused request takes nothing"
    clock.now += 9.9
    assert per_min.hit("a") > 0
    clock.now += 0.1
    assert per_min.hit("a") == 0.0
    assert per_min.hit("a") == pytest.approx(10.0)
    # After a whole idle period the full burst is back.
    clock.now += 60
    assert [per_min.hit("a") for _ in range(6)] == [0.0] * 6


def test_keys_are_counted_apart_and_wait_only_looks() -> None:
    clock = Clock()
    per_s = limiter("2/s", clock)
    assert per_s.hit("a") == 0.0 and per_s.hit("a") == 0.0
    assert per_s.wait("a") == pytest.approx(0.5)
    assert per_s.wait("a") == pytest.approx(0.5), "wait() takes nothing"
    assert per_s.wait("b") == 0.0 and per_s.hit("b") == 0.0
    clock.now += 0.5
    assert per_s.wait("a") == 0.0


def test_unlimited_means_no_limiter_and_bad_rates_are_refused() -> None:
    assert RateLimiter.from_setting("unlimited") is None
    with pytest.raises(ValueError, match="is not a rate"):
        RateLimiter.from_setting("lots")


def test_memory_stays_bounded_and_keys_in_use_survive() -> None:
    clock = Clock()
    per_min = limiter("1/min", clock, max_keys=1000)
    per_min.hit("busy")
    for n in range(5000):
        clock.now += 0.1
        per_min.hit(f"client-{n}")  # a flood of one-off clients: each is idle again a minute later
        per_min.hit("busy")  # refused again and again, so never idle
        assert len(per_min) <= 1000
    assert per_min.wait("busy") > 0, "a key in use is not forgotten while idle ones can go"
    # When nothing is idle, the longest known go: the table still never grows past its bound.
    crowded = limiter("1/min", clock, max_keys=100)
    for n in range(1000):
        crowded.hit(n)
        assert len(crowded) <= 100
    assert crowded.wait(999) > 0 and crowded.wait(0) == 0.0


def test_retry_after_is_exact_for_slow_rates() -> None:
    clock = Clock()
    per_hour = limiter("1/h", clock)
    assert per_hour.hit("a") == 0.0
    assert per_hour.hit("a") == pytest.approx(3600.0)
    clock.now += 1800
    assert per_hour.wait("a") == pytest.approx(1800.0)


# ---------------------------------------------------------------- client addresses


def test_without_trusted_proxies_forwarded_for_is_ignored() -> None:
    clients = ClientAddresses()
    assert clients.key("127.0.0.1", ["203.0.113.9"]) == "127.0.0.1"
    assert clients.key("198.51.100.4", []) == "198.51.100.4"
    assert clients.key(None, []) == "local"


def test_behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client() -> None:
    clients = ClientAddresses(parse_trusted_proxies(["10.0.0.0/8", "192.168.1.5"]))
    # The client wrote a fake first hop; our proxies appended what they saw.
    assert clients.key("10.1.2.3", ["6.6.6.6, 203.0.113.9, 10.0.0.7"]) == "203.0.113.9"
    assert clients.key("192.168.1.5", ["6.6.6.6", "203.0.113.9"]) == "203.0.113.9"  # two headers
    assert clients.key("10.1.2.3", ["10.0.0.9, 10.0.0.8"]) == "10.0.0.9"  # all ours: the first
    assert clients.key("10.1.2.3", []) == "10.1.2.3"  # no header: the proxy itself
    assert clients.key("10.1.2.3", ["[2001:db8::1]:4711"]) == "2001:db8::/64"
    assert clients.key("10.1.2.3", ["203.0.113.9:4711"]) == "203.0.113.9"
    assert clients.key("10.1.2.3", ["junk, 10.0.0.7"]) == "10.0.0.7"  # unreadable: stop at our last hop
    # A peer that is not ours cannot choose its address.
    assert clients.key("198.51.100.4", ["203.0.113.9"]) == "198.51.100.4"


def test_ipv6_clients_are_counted_per_64() -> None:
    clients = ClientAddresses()
    assert clients.key("2001:db8:1:2::1", []) == clients.key("2001:db8:1:2:ffff::9", []) == "2001:db8:1:2::/64"
    assert clients.key("2001:db8:1:3::1", []) != clients.key("2001:db8:1:2::1", [])
    assert clients.key("::ffff:198.51.100.4", []) == "198.51.100.4"


def test_settings_are_checked_with_the_key_named() -> None:
    good = SimpleNamespace(public_per_ip="60/min", bad_auth_per_ip="10/min", api_per_key="100/s", invites_per_shop=10)
    check_limits_settings(good, ["10.0.0.0/8", "::1"])
    with pytest.raises(ValueError, match=r"limits\.api_per_key"):
        check_limits_settings(SimpleNamespace(**{**vars(good), "api_per_key": "fast"}), [])
    with pytest.raises(ValueError, match=r"limits\.invites_per_shop"):
        check_limits_settings(SimpleNamespace(**{**vars(good), "invites_per_shop": 0}), [])
    with pytest.raises(ValueError, match=r"server\.trusted_proxies"):
        check_limits_settings(good, ["10.0.0.0/33"])
    assert parse_trusted_proxies(["10.0.0.1/8"]) == (ipaddress.ip_network("10.0.0.0/8"),)
