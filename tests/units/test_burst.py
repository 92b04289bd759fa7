"""The burst decisions (`_run/burst.py`): how a run ended, and when it gives up.

Pure decisions, called directly: no server here. The scenarios are in `test_quick_stop.py`.
"""

from __future__ import annotations

from aiosqsworker._consumer.stats import ConsumerStatistics, Counters
from aiosqsworker._run.burst import BURST_FAILED, Stuck, burst_exit_code


def stats(
    *, succeeded: int = 0, failed: int = 0, dead_lettered: int = 0, running: int = 0
) -> ConsumerStatistics:
    counters = Counters()
    counters.succeeded, counters.failed, counters.dead_lettered = succeeded, failed, dead_lettered
    counters.running = running
    return ConsumerStatistics.capture(
        "c", "q", counters, buffered=0, concurrency=1, max_rate=None, paused=False, polling_width=1
    )


def test_a_burst_exits_0_only_when_no_handler_failed() -> None:
    assert burst_exit_code([stats(succeeded=20), stats()]) == 0
    assert burst_exit_code([]) == 0
    assert burst_exit_code([stats(succeeded=19, failed=1, dead_lettered=1)]) == BURST_FAILED
    # Retried, then succeeded: a handler failed all the same, and a CI job wants to know.
    assert burst_exit_code([stats(succeeded=20), stats(succeeded=3, failed=1)]) == BURST_FAILED
    assert BURST_FAILED not in (0, 1, 2)  # a graceful stop, a fatal error, bad usage
    assert BURST_FAILED < 128  # nor a signal's


def test_a_burst_gives_up_after_only_failures_for_the_limit() -> None:
    """Naive code it catches: a burst on a queue without a dead-letter queue that retries a
    poison message for ever (the run never ends)."""
    stuck = Stuck(60)
    assert not stuck([stats(succeeded=5)], 0)
    assert not stuck([stats(succeeded=5, failed=1)], 30)
    assert not stuck([stats(succeeded=5, failed=4)], 59.9)
    assert stuck([stats(succeeded=5, failed=5)], 60)


def test_progress_restarts_the_count() -> None:
    stuck = Stuck(60)
    assert not stuck([stats(succeeded=5)], 0)
    assert not stuck([stats(succeeded=6, failed=3)], 50)  # a success: counting starts over
    assert not stuck([stats(succeeded=6, failed=4)], 100)
    assert stuck([stats(succeeded=6, failed=4)], 110)
    # A dead letter is an end too: the message is settled for good.
    stuck = Stuck(60)
    assert not stuck([stats(failed=1)], 0)
    assert not stuck([stats(failed=2, dead_lettered=1)], 59)
    assert not stuck([stats(failed=2, dead_lettered=1)], 100)  # no failure since


def test_nothing_is_given_up_while_a_handler_runs_or_nothing_fails() -> None:
    """A long job is progress not yet counted; delayed messages are waited for."""
    stuck = Stuck(60)
    assert not stuck([stats(succeeded=1)], 0)
    assert not stuck([stats(succeeded=1, failed=2, running=1)], 500)
    assert stuck([stats(succeeded=1, failed=2)], 500)
    quiet = Stuck(60)
    assert not quiet([stats(succeeded=1)], 0)
    assert not quiet([stats(succeeded=1)], 1000)
