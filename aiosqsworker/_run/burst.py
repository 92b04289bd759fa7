"""Burst mode: consume until every queue is empty and nothing is in flight, then stop.

``python -m aiosqsworker MODULE --burst`` and `aiosqsworker.testing.run_until_empty` both
wait with `wait_until_empty`. The command line also says how the run went, in its exit code
(`burst_exit_code`: `BURST_FAILED` when a handler failed during the run), and gives up on
messages that only ever fail (`Stuck`): on a queue without a dead-letter queue nothing else
would ever end the run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import anyio

from .._consumer.stats import ConsumerStatistics
from .._text import plural
from .probe import AppProbe, RunnableApp

__all__ = [
    "BURST_FAILED",
    "GIVE_UP_AFTER",
    "QUIET_CHECKS",
    "Stuck",
    "burst_ended",
    "burst_exit_code",
    "is_quiet",
    "stop_when_empty",
    "wait_until_empty",
]

logger = logging.getLogger("aiosqsworker")

#: Checks in a row that must find everything empty: a message sent while one check runs is
#: seen by the next.
QUIET_CHECKS = 2
#: The exit code of a burst run in which a handler failed (its message retried or
#: dead-lettered), or that gave up on messages that kept failing.
BURST_FAILED = 3
#: How long a burst run goes on while its handlers only fail (nothing succeeds, nothing is
#: dead-lettered, nothing runs) before it gives up on what is left: about nine attempts of
#: a poison message with the default retry back-off (1 s doubling).
GIVE_UP_AFTER = 300.0


def is_quiet(totals: dict[str, int], in_flight: int) -> bool:
    """Whether queue counts `totals` (visible + in flight + delayed, per consumer) and the
    messages the app holds say there is nothing left to do. No counts at all (the app has
    not started, or no queue answered) is not quiet."""
    return bool(totals) and not any(totals.values()) and in_flight == 0


def burst_exit_code(statistics: Iterable[ConsumerStatistics]) -> int:
    """0 when no handler failed during the run, else `BURST_FAILED` (a CI job can tell)."""
    return BURST_FAILED if any(stats.failed for stats in statistics) else 0


class Stuck:
    """Whether a burst run only goes round in failures: for `give_up_after` seconds no
    message succeeded or was dead-lettered, handlers failed, and none runs now.

    A handler still running is never given up on (a long job is progress not yet counted);
    a queue holding only delayed messages is not stuck either: nothing fails.
    """

    def __init__(self, give_up_after: float) -> None:
        self.give_up_after = give_up_after
        self._settled = -1
        self._failed = 0
        self._since = 0.0

    def __call__(self, statistics: Iterable[ConsumerStatistics], now: float) -> bool:
        stats = list(statistics)
        settled = sum(s.succeeded + s.dead_lettered for s in stats)
        failed = sum(s.failed for s in stats)
        if settled != self._settled:
            self._settled, self._failed, self._since = settled, failed, now
            return False
        running = sum(s.running for s in stats)
        return not running and failed > self._failed and now - self._since >= self.give_up_after


async def wait_until_empty(
    app: AppProbe, *, check_every: float = 0.2, give_up_after: float = math.inf
) -> bool:
    """Return True once every queue of `app` is empty and nothing is in flight,
    `QUIET_CHECKS` times in a row; False when it gave up (see `Stuck`) first.

    SQS counts a message waiting out a retry back-off as in flight and one sent with a delay
    as delayed, so every retry is seen through. Before the app runs, nothing is quiet.
    """
    quiet = 0
    stuck = Stuck(give_up_after)
    while quiet < QUIET_CHECKS:
        await anyio.sleep(check_every)
        totals = await app.queue_totals()
        statistics = app.statistics().values()
        held = sum(stats.in_flight for stats in statistics)
        quiet = quiet + 1 if is_quiet(totals, held) else 0
        if stuck(statistics, anyio.current_time()):
            return False
    return True


async def stop_when_empty(app: RunnableApp, *, give_up_after: float = GIVE_UP_AFTER) -> None:
    """The command line's burst: stop `app` gracefully once its queues are empty, or once it
    has only gone round in failures for `give_up_after` seconds."""
    if await wait_until_empty(app, give_up_after=give_up_after):
        logger.info("burst: every queue is empty and nothing is in flight, stopping")
    else:
        logger.error(
            "burst: giving up: for %g s handlers only failed (nothing succeeded or was "
            "dead-lettered). What is left stays in its queue; without a dead-letter queue "
            "SQS would hand a poison message back for ever",
            give_up_after,
        )
    app.stop()


def burst_ended(statistics: Iterable[ConsumerStatistics]) -> int:
    """Log how a burst run went and return its exit code (`burst_exit_code`)."""
    stats = list(statistics)
    code = burst_exit_code(stats)
    failed = sum(s.failed for s in stats)
    dead = sum(s.dead_lettered for s in stats)
    succeeded = sum(s.succeeded for s in stats)
    if code:
        logger.warning(
            "burst: %d succeeded, %s failed (%d dead-lettered): exit code %d",
            succeeded,
            plural(failed, "handler call"),
            dead,
            code,
        )
    else:
        logger.info("burst: %d succeeded, none failed", succeeded)
    return code
