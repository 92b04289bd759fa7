"""The worker-count recommendation (`_run/scaling.py`): what `python -m aiosqsworker scale`
prints, from two readings of a queue (and of its workers' counters).

Pure decisions, called directly: no server here. The command's own scenario (options,
output) is in `test_operations.py`; the policy over a simulated day is
`python -m benchmarks.autoscale`.
"""

from __future__ import annotations

from aiosqsworker._run.scaling import (
    QueueSample,
    RateMemory,
    measured_rate,
    recommend,
    simple_policy,
)


def sample(
    at: float,
    *,
    visible: int = 0,
    in_flight: int = 0,
    delayed: int = 0,
    completed: float | None = None,
    workers: int | None = None,
) -> QueueSample:
    return QueueSample(
        at=at,
        visible=visible,
        in_flight=in_flight,
        delayed=delayed,
        completed=completed,
        workers=workers,
    )


def test_a_backlog_with_arrivals_gets_what_keeps_up_and_drains_it_within_the_target() -> None:
    """Naive code it catches: arrivals taken as the queue's growth alone (the completions
    left out), which sizes a fleet that keeps the backlog steady but never drains it."""
    first = sample(0, visible=600, in_flight=100, completed=1000, workers=4)
    # In 10 s: 400 completed and the queue grew by 100, so 50 msg/s arrived.
    last = sample(10, visible=700, in_flight=100, completed=1400, workers=4)
    r = recommend(first, last, target_latency=70, minimum=1, maximum=20, per_worker_rate=10)
    assert r.completion_rate == 40
    assert r.arrival_rate == 50
    # (50 msg/s + 700 queued / 70 s) / 10 msg/s per worker = 6
    assert r.desired == 6
    assert (r.visible, r.in_flight, r.per_worker_rate) == (700, 100, 10)


def test_a_fraction_of_a_worker_rounds_up_and_an_exact_count_does_not() -> None:
    def desired(per_worker_rate: float) -> int:
        return recommend(
            sample(0, visible=300),
            sample(10, visible=300),
            target_latency=30,
            minimum=1,
            maximum=50,
            per_worker_rate=per_worker_rate,
        ).desired

    assert desired(4) == 3  # (0 + 300 / 30) / 4 = 2.5
    assert desired(5) == 2  # (0 + 300 / 30) / 5 = 2, not 3 from a rounding error


def test_an_empty_queue_with_nothing_arriving_gets_the_minimum() -> None:
    first = sample(0, completed=500, workers=3)
    last = sample(10, completed=500, workers=3)
    for minimum in (0, 1, 2):
        r = recommend(
            first, last, target_latency=60, minimum=minimum, maximum=20, per_worker_rate=8
        )
        assert r.desired == minimum
        assert r.arrival_rate == 0


def test_the_recommendation_stays_within_min_and_max() -> None:
    flood = sample(10, visible=1_000_000)
    r = recommend(sample(0), flood, target_latency=60, minimum=1, maximum=20, per_worker_rate=5)
    assert r.desired == 20
    trickle = sample(10, visible=1)
    r = recommend(sample(0), trickle, target_latency=60, minimum=3, maximum=20, per_worker_rate=5)
    assert r.desired == 3


def test_a_draining_queue_does_not_count_its_shrinking_as_negative_arrivals() -> None:
    """The queue shrank by 200 in 10 s and no counters were read: nothing is known to arrive,
    and a negative inflow must not cancel the backlog's share."""
    first = sample(0, visible=800)
    last = sample(10, visible=600)
    r = recommend(first, last, target_latency=60, minimum=1, maximum=20, per_worker_rate=5)
    assert r.arrival_rate is None
    assert r.completion_rate is None
    assert r.desired == 2  # (0 + 600 / 60) / 5


def test_delayed_and_in_flight_messages_count_as_arrivals_when_the_queue_grows() -> None:
    """Catches arrivals measured from the visible count alone: messages sent with a delay, or
    received at once by the workers, arrived all the same."""
    first = sample(0, visible=0, in_flight=0, delayed=0, completed=0, workers=2)
    last = sample(10, visible=0, in_flight=100, delayed=100, completed=0, workers=2)
    r = recommend(first, last, target_latency=60, minimum=1, maximum=50, per_worker_rate=5)
    assert r.arrival_rate == 20
    assert r.desired == 4


def test_without_a_per_worker_rate_a_waiting_backlog_doubles_the_workers() -> None:
    first = sample(0, visible=500, completed=100, workers=3)
    last = sample(10, visible=600, completed=150, workers=3)
    r = recommend(first, last, target_latency=60, minimum=1, maximum=20)
    assert r.desired == 6
    assert r.per_worker_rate is None
    assert "doubling" in r.reason
    # and within the maximum
    assert recommend(first, last, target_latency=60, minimum=1, maximum=4).desired == 4


def test_without_a_per_worker_rate_and_no_backlog_the_count_holds() -> None:
    first = sample(0, in_flight=30, completed=100, workers=3)
    last = sample(10, in_flight=30, completed=400, workers=3)
    r = recommend(first, last, target_latency=60, minimum=1, maximum=20)
    assert r.desired == 3
    assert "holding" in r.reason


def test_a_backlog_is_never_left_to_zero_workers_when_the_minimum_is_zero() -> None:
    """`--min 0` (scale to zero) with no worker answering: the count to double is 0.

    Naive code it catches: `current * 2` with `current = minimum = 0`, which recommends no
    worker at all for 5,000 waiting messages, for ever."""
    first = sample(0, visible=5000)
    last = sample(10, visible=5000)
    r = recommend(first, last, target_latency=60, minimum=0, maximum=20)
    assert r.desired >= 1


def test_messages_in_flight_keep_a_worker_when_the_minimum_is_zero() -> None:
    """Nothing visible, 500 in flight, no counters read: someone holds those messages.

    Naive code it catches: arrivals of 0 (the queue did not grow) and no backlog give 0
    workers, and scaling to zero stops the workers that hold the 500 leases."""
    first = sample(0, in_flight=500)
    last = sample(10, in_flight=500)
    known = recommend(first, last, target_latency=60, minimum=0, maximum=20, per_worker_rate=5)
    assert known.desired >= 1
    unknown = recommend(first, last, target_latency=60, minimum=0, maximum=20)
    assert unknown.desired >= 1
    # An empty queue may still scale to zero.
    empty = recommend(sample(0), sample(10), target_latency=60, minimum=0, maximum=20)
    assert empty.desired == 0


def test_a_rate_is_measured_only_while_a_backlog_kept_the_workers_busy() -> None:
    """Naive code it catches: a rate measured while the workers were idle half the time (they
    completed what arrived), which says they are slow and over-sizes the fleet for ever."""
    busy = measured_rate(
        sample(0, visible=100, completed=1000, workers=4),
        sample(10, visible=50, completed=1400, workers=4),
    )
    assert busy == 10  # 400 in 10 s by 4 workers
    idle_at_the_end = measured_rate(
        sample(0, visible=100, completed=1000, workers=4),
        sample(10, visible=0, completed=1100, workers=4),
    )
    assert idle_at_the_end is None
    idle_at_the_start = measured_rate(
        sample(0, visible=0, completed=1000, workers=4),
        sample(10, visible=100, completed=1100, workers=4),
    )
    assert idle_at_the_start is None


def test_no_rate_without_counters_or_workers_or_time() -> None:
    backlog = {"visible": 100}
    assert measured_rate(sample(0, **backlog), sample(10, **backlog)) is None
    assert (
        measured_rate(sample(0, completed=5, **backlog), sample(10, completed=50, **backlog))
        is None
    )  # no worker answered
    same_moment = measured_rate(
        sample(10, completed=5, workers=1, **backlog),
        sample(10, completed=50, workers=1, **backlog),
    )
    assert same_moment is None


def test_a_reset_counter_measures_no_negative_rate() -> None:
    """A worker restarted between readings: its counter starts over, the sum drops."""
    rate = measured_rate(
        sample(0, visible=100, completed=1000, workers=2),
        sample(10, visible=100, completed=200, workers=2),
    )
    assert rate == 0
    memory = RateMemory()
    memory.update(
        sample(0, visible=100, completed=1000, workers=2),
        sample(10, visible=100, completed=1200, workers=2),
    )
    assert memory.rate == 10
    # The reset measures 0: not a capacity, so the best rate seen stays.
    memory.update(
        sample(10, visible=100, completed=1200, workers=2),
        sample(20, visible=100, completed=100, workers=2),
    )
    assert memory.rate == 10


def test_the_rate_memory_keeps_the_best_rate_seen_and_a_given_rate_to_start_with() -> None:
    memory = RateMemory(initial=4)
    assert memory.rate == 4
    idle = memory.update(sample(0, completed=0, workers=1), sample(10, completed=10, workers=1))
    assert idle == 4  # not measured: the queue was empty
    faster = memory.update(
        sample(0, visible=9, completed=0, workers=1), sample(10, visible=9, completed=60, workers=1)
    )
    assert faster == 6
    slower = memory.update(
        sample(0, visible=9, completed=0, workers=1), sample(10, visible=9, completed=30, workers=1)
    )
    assert slower == 6


def test_the_simple_policy_is_one_worker_per_n_queued_within_bounds() -> None:
    assert simple_policy(95, messages_per_worker=10, minimum=1, maximum=20) == 10
    assert simple_policy(0, messages_per_worker=10, minimum=1, maximum=20) == 1
    assert simple_policy(10_000, messages_per_worker=10, minimum=1, maximum=20) == 20
