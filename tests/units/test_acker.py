"""The acker's decisions (`_consumer/acker.py`): the pause between attempts, the calls in flight.

Pure decisions and small parts, called directly: no server here. How the acker sorts a batch
answer is `_sqs/batches.py`'s reading (tests/units/test_batches.py).
"""

from __future__ import annotations

from aiosqsworker._consumer.acker import calls_for, retry_pause


def test_retry_pause_of_batch_calls() -> None:
    for attempt in range(6):
        pause = retry_pause(attempt)
        assert min(3.0, 0.1 * 2**attempt) * 0.5 <= pause <= min(3.0, 0.1 * 2**attempt)
    assert 1.5 <= retry_pause(10_000) <= 3.0


def test_batch_calls_in_flight_grow_with_the_polling_at_half_its_width() -> None:
    assert [calls_for(polls) for polls in (1, 16, 32, 33, 101, 128)] == [16, 16, 16, 17, 51, 64]
