"""The one back-off formula: exponential, capped, with a random spread.

Every pause after a failure in the framework is `backoff` with its own base, cap and spread:
a failed poll, a failed batch call of the acker, a failed lease extension, a request the
fast path retries, a send the producer retries, and the delay before a failed message is
visible again. The spread is the share of the pause that is random: 0.5 ("equal jitter",
so that failures that came together do not come back together, yet the pause never
collapses to nothing), 1.0 ("full jitter", botocore's choice for requests) or 0.
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["backoff"]

#: 2.0 ** 1024 overflows a float; no pause grows past the 32nd doubling anyway.
_MAX_EXPONENT = 32


def backoff(
    attempt: int,
    *,
    base: float,
    cap: float,
    spread: float = 0.5,
    jitter: Callable[[], float] | None = None,
) -> float:
    """The pause after failure number `attempt` (0 for the first): `base` doubled `attempt`
    times, at most `cap`, of which the last `spread` share is random (`jitter`, a number in
    [0, 1): `random.random` unless given)."""
    full = min(cap, base * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT))
    share = (jitter or random.random)()
    return full * (1.0 - spread * (1.0 - share))
