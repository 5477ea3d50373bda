"""Pacing: token buckets per chat and per platform, so bursts never earn rate-limit answers.

A send reserves a slot in every limit that applies to it (the chat's own bucket and the platform's
overall one) and starts when all of them allow it. Limits hold a single token: sends are spaced evenly
at the configured rate instead of bursting and then stalling, which is what the platforms' published
limits ("about 1 message per second per chat") actually tolerate.

A chat's own bucket is first come, first served (its messages keep their order). The platform-wide
limit is a schedule of reserved moments in which a send takes the first free gap, so one chat's
reservation a second ahead never holds up other chats that could go now.

Time is a float of seconds from an injectable monotonic clock, so tests can drive it by hand.
"""

from __future__ import annotations

import bisect
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

MonotonicClock = Callable[[], float]

_UNITS: dict[str, float] = {
    "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hour": 3600, "hours": 3600,
}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$", re.IGNORECASE)
UNLIMITED_WORDS = frozenset({"unlimited", "off", "none"})


class RateError(ValueError):
    """A rate setting that cannot be read; the message shows how to write one."""


@dataclass(frozen=True, slots=True)
class Rate:
    """`count` messages per `period_s` seconds."""

    count: float
    period_s: float

    @property
    def per_second(self) -> float:
        return self.count / self.period_s

    @property
    def interval_s(self) -> float:
        return self.period_s / self.count

    def __str__(self) -> str:
        count = int(self.count) if self.count == int(self.count) else self.count
        unit = {1: "s", 60: "min", 3600: "h"}.get(int(self.period_s)) if self.period_s == int(self.period_s) else None
        return f"{count}/{unit}" if unit else f"{count}/{self.period_s:g}s"


def parse_rate(text: str) -> Rate | None:
    """"1/s", "20/min", "80/s", "1/3s", "0.5/s"; "unlimited" (or "off") gives None: no pacing."""
    if not isinstance(text, str):
        raise RateError(f"{text!r} is not a rate; write it like \"1/s\" or \"20/min\"")
    if text.strip().lower() in UNLIMITED_WORDS:
        return None
    match = _RATE.match(text)
    unit = match.group(3).lower() if match else ""
    if not match or unit not in _UNITS:
        raise RateError(f"{text!r} is not a rate; write it like \"1/s\", \"20/min\" or \"unlimited\"")
    count = float(match.group(1))
    period = float(match.group(2) or 1) * _UNITS[unit]
    if count <= 0 or period <= 0:
        raise RateError(f"{text!r}: count and period must be above zero; write it like \"1/s\" or \"unlimited\"")
    return Rate(count, period)


class TokenBucket:
    """A one-token bucket refilled at `rate`; reservations may run into the future.

    `updated` may lie ahead of the clock after a reservation for a later moment: the bucket's own
    timeline then starts there, so two sends to one chat are never closer than the rate allows, even
    when the first was held back by another bucket.
    """

    __slots__ = ("capacity", "rate_per_s", "tokens", "updated")

    def __init__(self, rate: Rate, now: float, capacity: float = 1.0) -> None:
        self.rate_per_s = rate.per_second
        self.capacity = capacity
        self.tokens = capacity
        self.updated = now

    def _level(self, at: float) -> tuple[float, float]:
        start = max(at, self.updated)
        return start, min(self.capacity, self.tokens + (start - self.updated) * self.rate_per_s)

    def ready_at(self, now: float) -> float:
        start, tokens = self._level(now)
        return start if tokens >= 1 else start + (1 - tokens) / self.rate_per_s

    def earliest(self, start: float, now: float) -> float:
        return self.ready_at(start)

    def take(self, at: float) -> None:
        start, tokens = self._level(at)
        self.tokens = tokens - 1
        self.updated = start

    def idle(self, now: float) -> bool:
        """Full: forgetting it changes nothing."""
        return self._level(now)[1] >= self.capacity


class SlotSchedule:
    """A shared limit: reserved send moments, any two at least one interval apart."""

    __slots__ = ("interval", "times")

    # Float slack so sends exactly one interval apart are not seen as too close.
    EPSILON = 1e-9

    def __init__(self, rate: Rate) -> None:
        self.interval = rate.interval_s
        self.times: list[float] = []

    def _forget_before(self, now: float) -> None:
        cut = bisect.bisect_left(self.times, now - self.interval)
        if cut:
            del self.times[:cut]

    def earliest(self, start: float, now: float) -> float:
        """The first moment at or after `start` that is an interval away from every reserved one."""
        self._forget_before(now)
        candidate = start
        i = bisect.bisect_right(self.times, candidate - self.interval + self.EPSILON)
        while i < len(self.times) and self.times[i] < candidate + self.interval - self.EPSILON:
            candidate = self.times[i] + self.interval
            i += 1
        return candidate

    def take(self, at: float) -> None:
        bisect.insort(self.times, at)

    def idle(self, now: float) -> bool:
        self._forget_before(now)
        return not self.times


@dataclass(frozen=True, slots=True)
class PlatformLimits:
    """How one platform paces: a bucket per target and one for the whole platform (either optional).

    `group` applies instead of `per_target` to addresses `is_group` recognises (Telegram groups).
    """

    per_target: Rate | None = None
    group: Rate | None = None
    overall: Rate | None = None
    is_group: Callable[[str], bool] | None = None
    # Which limit an address counts against, when several addresses share one (a Slack thread and
    # its channel); None: each address is its own target.
    limit_key: Callable[[str], str] | None = None

    def key_of(self, address: str) -> str:
        return self.limit_key(address) if self.limit_key is not None else address

    def target_rate(self, address: str) -> Rate | None:
        if self.group is not None and self.is_group is not None and self.is_group(address):
            return self.group
        return self.per_target


def rate_setting(key: str, text: str) -> Rate | None:
    """A rate read from the setting `key` (e.g. "outbox.telegram_per_chat"); RateError names it."""
    try:
        return parse_rate(text)
    except RateError as exc:
        raise RateError(f"{key}: {exc}") from None


class Pacer:
    """Limits for every (platform, target) and platform seen so far; platforms not listed are unpaced."""

    # Beyond this many remembered targets, idle ones are forgotten.
    PRUNE_ABOVE = 10_000

    def __init__(
        self, limits: Mapping[str, PlatformLimits], clock: MonotonicClock = time.monotonic,
        *, platform_burst: float | None = None, target_margin: float = 0.1,
    ) -> None:
        self.limits = dict(limits)
        self.clock = clock
        # Sends to one chat are spaced this much wider than its limit: a request that leaves a little
        # late (a busy loop, a slow network) must not land inside the platform's window for the previous
        # one. The platform-wide rate keeps no margin, so throughput is not given away.
        self.target_margin = target_margin
        # None: platform-wide limits are gap-filling schedules (planning ahead). A number: plain token
        # buckets holding that many tokens (checking actual start times, where a start a little late
        # may be followed closely by the next one without the average going over the rate).
        self.platform_burst = platform_burst
        self._targets: dict[tuple[str, str], TokenBucket] = {}
        self._platforms: dict[str, SlotSchedule | TokenBucket] = {}
        # "Retry after" answers, per target, for paced and unpaced platforms alike.
        self._blocked: dict[tuple[str, str], float] = {}

    def _prune(self, now: float) -> None:
        for key in [k for k, b in self._targets.items() if b.idle(now)]:
            del self._targets[key]
        for target in [t for t, until in self._blocked.items() if until <= now]:
            del self._blocked[target]

    def _target_bucket(self, platform: str, address: str, now: float) -> TokenBucket | None:
        limits = self.limits.get(platform)
        rate = limits.target_rate(address) if limits else None
        if rate is None or limits is None:
            return None
        key = (platform, limits.key_of(address))
        bucket = self._targets.get(key)
        if bucket is None:
            if len(self._targets) >= self.PRUNE_ABOVE:
                self._prune(now)
            bucket = self._targets[key] = TokenBucket(Rate(rate.count * (1 - self.target_margin), rate.period_s), now)
        return bucket

    def _platform_schedule(self, platform: str, now: float) -> SlotSchedule | TokenBucket | None:
        limits = self.limits.get(platform)
        if limits is None or limits.overall is None:
            return None
        schedule = self._platforms.get(platform)
        if schedule is None:
            if self.platform_burst is None:
                schedule = SlotSchedule(limits.overall)
            else:
                schedule = TokenBucket(limits.overall, now, capacity=self.platform_burst)
            self._platforms[platform] = schedule
        return schedule

    def _plan(
        self, platform: str, address: str, now: float
    ) -> tuple[float, TokenBucket | None, SlotSchedule | TokenBucket | None]:
        bucket = self._target_bucket(platform, address, now)
        schedule = self._platform_schedule(platform, now)
        at = max(now, self._blocked.get((platform, address), -math.inf))
        if bucket is not None:
            at = max(at, bucket.ready_at(at))
        if schedule is not None:
            # Later than the chat's own slot is fine for the chat's bucket (it only needs "not before").
            at = schedule.earliest(at, now)
        return at, bucket, schedule

    def ready_at(self, platform: str, address: str, now: float | None = None) -> float:
        """When a send to this target could start, without reserving it."""
        return self._plan(platform, address, self.clock() if now is None else now)[0]

    def target_ready_at(self, platform: str, address: str, now: float | None = None) -> float:
        """When the target's own limit (not the platform's) allows a send: later than now means a backlog."""
        now = self.clock() if now is None else now
        at = max(now, self._blocked.get((platform, address), -math.inf))
        bucket = self._target_bucket(platform, address, now)
        return at if bucket is None else max(at, bucket.ready_at(at))

    def reserve(self, platform: str, address: str, now: float | None = None) -> float:
        """Reserve a send to this target; returns the moment it may start (now, or later)."""
        at, bucket, schedule = self._plan(platform, address, self.clock() if now is None else now)
        if bucket is not None:
            bucket.take(at)
        if schedule is not None:
            schedule.take(at)
        return at

    def block(self, platform: str, address: str, after_s: float, now: float | None = None) -> None:
        """The platform said "retry after": nothing goes to this target before then."""
        now = self.clock() if now is None else now
        until = now + max(0.0, after_s)
        if len(self._blocked) >= self.PRUNE_ABOVE:
            self._prune(now)
        key = (platform, address)
        self._blocked[key] = max(until, self._blocked.get(key, -math.inf))
