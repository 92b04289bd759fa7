"""Burst mode: consume until every queue is empty and nothing is in flight, then stop.

``python -m aiosqsworker MODULE --burst`` and `aiosqsworker.testing.run_until_empty` both
wait with `wait_until_empty`.
"""

from __future__ import annotations

import anyio

from .probe import AppProbe

__all__ = ["QUIET_CHECKS", "is_quiet", "wait_until_empty"]

#: Checks in a row that must find everything empty: a message sent while one check runs is
#: seen by the next.
QUIET_CHECKS = 2


def is_quiet(totals: dict[str, int], in_flight: int) -> bool:
    """Whether queue counts `totals` (visible + in flight + delayed, per consumer) and the
    messages the app holds say there is nothing left to do. No counts at all (the app has
    not started, or no queue answered) is not quiet."""
    return bool(totals) and not any(totals.values()) and in_flight == 0


async def wait_until_empty(app: AppProbe, *, check_every: float = 0.2) -> None:
    """Return once every queue of `app` is empty and nothing is in flight, `QUIET_CHECKS`
    times in a row.

    SQS counts a message waiting out a retry back-off as in flight and one sent with a delay
    as delayed, so every retry is seen through. Before the app runs, nothing is quiet.
    """
    quiet = 0
    while quiet < QUIET_CHECKS:
        await anyio.sleep(check_every)
        totals = await app.queue_totals()
        held = sum(stats.in_flight for stats in app.statistics().values())
        quiet = quiet + 1 if is_quiet(totals, held) else 0
