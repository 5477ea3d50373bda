"""Retry delays for transient failures: exponential backoff with jitter."""

from __future__ import annotations

import random
from collections.abc import Callable

# A uniform random number in [0, 1); injectable so tests are exact.
Random = Callable[[], float]


def backoff_delay(
    attempt: int, *, base_s: float = 2.0, cap_s: float = 600.0, rand: Random = random.random
) -> float:
    """Seconds to wait after the `attempt`-th failure (1-based).

    "Equal jitter": half of the exponential step is fixed and half random, so a retry never comes
    back at once, and many messages that failed together (a platform outage) spread out on return.
    """
    if attempt < 1:
        attempt = 1
    # Capping the exponent first keeps 2**n finite for any attempt count.
    step: float = min(cap_s, base_s * 2 ** min(attempt - 1, 30))
    return step / 2 + rand() * step / 2
