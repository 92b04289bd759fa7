"""The outcome decisions (`_consumer/outcomes.py`): what a handler's ending means, the
retry delay, a batch's failures.

Pure decisions and small parts, called directly: no server here.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from aiosqsworker import (
    ConfigurationError,
    MessageDecodeError,
    PartialBatchFailure,
    Reject,
    Retry,
)
from aiosqsworker._consumer.deadletter import (
    DeadLetterQueue,
)
from aiosqsworker._consumer.outcomes import (
    Outcome,
    batch_failures,
    decide,
    retry_delay,
    within_visibility_cap,
)
from aiosqsworker._sqs.limits import MAX_VISIBILITY

from .factories import high, low, message


@pytest.mark.parametrize(
    ("receive_count", "least", "most"),
    [(1, 1, 2), (2, 2, 4), (3, 4, 8), (4, 8, 16), (5, 16, 32)],
)
def test_retry_delay_doubles_with_each_receive_within_equal_jitter(
    receive_count: int, least: int, most: int
) -> None:
    assert retry_delay(receive_count, 2, 300, jitter=low) == least
    assert retry_delay(receive_count, 2, 300, jitter=high) == most
    middle = retry_delay(receive_count, 2, 300, jitter=lambda: 0.5)
    assert least <= middle <= most


def test_retry_delay_stops_at_the_cap() -> None:
    assert retry_delay(20, 2, 300, jitter=high) == 300
    assert retry_delay(20, 2, 300, jitter=low) == 150
    # A message received thousands of times does not overflow the exponent.
    assert retry_delay(10_000, 2, 300, jitter=high) == 300


def test_retry_delay_treats_a_missing_receive_count_as_the_first() -> None:
    assert retry_delay(0, 4, 300, jitter=high) == 4
    assert retry_delay(-3, 4, 300, jitter=high) == 4


def test_retry_delay_rounds_up_to_whole_seconds() -> None:
    assert retry_delay(1, 0.3, 300, jitter=low) == 1
    assert retry_delay(1, 2.5, 300, jitter=high) == 3
    assert retry_delay(1, 0, 0, jitter=high) == 0


def test_retry_delay_keeps_the_message_within_twelve_hours() -> None:
    assert retry_delay(30, 3600, MAX_VISIBILITY, jitter=high) == MAX_VISIBILITY
    assert retry_delay(30, 3600, MAX_VISIBILITY, jitter=high, held_for=43_000) == 200
    assert retry_delay(30, 3600, MAX_VISIBILITY, jitter=high, held_for=43_199.5) == 0
    assert retry_delay(30, 3600, MAX_VISIBILITY, jitter=high, held_for=50_000) == 0


def test_within_visibility_cap() -> None:
    assert within_visibility_cap(0, 0) == 0
    assert within_visibility_cap(1.2, 0) == 2
    assert within_visibility_cap(30, 10.5) == 30
    assert within_visibility_cap(50_000, 0) == MAX_VISIBILITY
    assert within_visibility_cap(600, MAX_VISIBILITY - 100) == 100
    # Retry(delay=math.inf) means "as late as SQS allows", not a crash of the slot.
    assert within_visibility_cap(math.inf, 0) == MAX_VISIBILITY
    assert within_visibility_cap(math.inf, 43_000) == 200


def test_decide_the_outcome_of_a_message() -> None:
    failure = RuntimeError("boom")
    assert decide(None) is Outcome.ACK
    assert decide(failure) is Outcome.RETRY
    assert decide(failure, has_dead_letter_queue=True) is Outcome.RETRY
    assert decide(failure, last_attempt=True, has_dead_letter_queue=True) is Outcome.DEAD_LETTER
    # Without a dead-letter queue a last attempt is retried: SQS's redrive (or nothing) decides.
    assert decide(failure, last_attempt=True) is Outcome.RETRY
    assert decide(Reject("bad"), has_dead_letter_queue=True) is Outcome.DEAD_LETTER
    assert decide(Reject("bad")) is Outcome.RETRY
    # An explicit Retry is honoured even on the last attempt.
    assert decide(Retry(5), last_attempt=True, has_dead_letter_queue=True) is Outcome.RETRY


def test_decide_lost_and_cancelled_win_over_the_handlers_result() -> None:
    assert decide(None, lost=True) is Outcome.LOST
    assert decide(RuntimeError(), lost=True, cancelled=True) is Outcome.LOST
    assert decide(None, cancelled=True) is Outcome.RELEASE
    assert decide(Reject("x"), cancelled=True, has_dead_letter_queue=True) is Outcome.RELEASE


def test_retry_validates_its_delay() -> None:
    assert Retry().delay == 0.0
    assert Retry(delay=30).delay == 30.0
    assert Retry(delay=0.5).delay == 0.5
    for bad in (-1, -0.001, math.nan, "30", None):
        with pytest.raises(ConfigurationError, match="delay must be a number of seconds >= 0"):
            Retry(delay=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "flags", "expected"),
    [
        (None, {}, Outcome.ACK),
        (None, {"last_attempt": True, "has_dead_letter_queue": True}, Outcome.ACK),
        (ValueError("x"), {}, Outcome.RETRY),
        (ValueError("x"), {"has_dead_letter_queue": True}, Outcome.RETRY),
        (ValueError("x"), {"last_attempt": True}, Outcome.RETRY),  # nowhere to put it
        (
            ValueError("x"),
            {"last_attempt": True, "has_dead_letter_queue": True},
            Outcome.DEAD_LETTER,
        ),
        (
            TimeoutError(),
            {"last_attempt": True, "has_dead_letter_queue": True},
            Outcome.DEAD_LETTER,
        ),
        # A body that does not decode never will: dead-lettered on its first failure...
        (MessageDecodeError("bad"), {"has_dead_letter_queue": True}, Outcome.DEAD_LETTER),
        (MessageDecodeError("bad"), {}, Outcome.RETRY),  # never deleted without a copy
        # ... unless the consumer asks for retries.
        (
            MessageDecodeError("bad"),
            {"has_dead_letter_queue": True, "on_decode_error": "retry"},
            Outcome.RETRY,
        ),
        (
            MessageDecodeError("bad"),
            {"last_attempt": True, "has_dead_letter_queue": True, "on_decode_error": "retry"},
            Outcome.DEAD_LETTER,
        ),
        (Retry(5), {}, Outcome.RETRY),
        # Retry is a request, not a failure: never dead-lettered by the framework.
        (Retry(5), {"last_attempt": True, "has_dead_letter_queue": True}, Outcome.RETRY),
        (Reject("no"), {"has_dead_letter_queue": True}, Outcome.DEAD_LETTER),
        (Reject("no"), {}, Outcome.RETRY),  # never deleted without a copy
        (Reject("no"), {"last_attempt": True}, Outcome.RETRY),
        (
            PartialBatchFailure(()),
            {"last_attempt": True, "has_dead_letter_queue": True},
            Outcome.DEAD_LETTER,
        ),
        # A lost lease wins over everything: the message is someone else's now.
        (None, {"lost": True}, Outcome.LOST),
        (ValueError("x"), {"lost": True, "cancelled": True}, Outcome.LOST),
        (Reject("no"), {"lost": True, "has_dead_letter_queue": True}, Outcome.LOST),
        # A forced shutdown releases, whatever the handler was about to do.
        (None, {"cancelled": True}, Outcome.RELEASE),
        (
            ValueError("x"),
            {"cancelled": True, "last_attempt": True, "has_dead_letter_queue": True},
            Outcome.RELEASE,
        ),
    ],
)
def test_decide_follows_the_outcome_table(
    error: BaseException | None, flags: dict[str, Any], expected: Outcome
) -> None:
    assert decide(error, **flags) is expected


def test_the_last_attempt_is_the_redrive_policys_max_receive_count() -> None:
    dlq = DeadLetterQueue("https://example/dlq", max_receive_count=3)
    assert [dlq.is_last_attempt(message(receive_count=n)) for n in (1, 2, 3, 4)] == [
        False,
        False,
        True,
        True,
    ]
    only_rejects = DeadLetterQueue("https://example/dlq", max_receive_count=None)
    assert not only_rejects.is_last_attempt(message(receive_count=100))


BATCH = [message(f"body {n}", message_id=f"id-{n}") for n in range(4)]


def failed_ids(failures: dict[str, BaseException | None]) -> set[str]:
    return {message_id for message_id, error in failures.items() if error is not None}


def test_a_batch_that_returns_nothing_succeeds_whole() -> None:
    failures = batch_failures(BATCH, None, None)
    assert failures == dict.fromkeys(("id-0", "id-1", "id-2", "id-3"))


@pytest.mark.parametrize(
    "returned",
    [
        [BATCH[1], BATCH[3]],
        ["id-1", "id-3"],
        (m for m in (BATCH[1], "id-3")),
        {"id-1", "id-3", "not-in-this-batch"},
    ],
    ids=["messages", "ids", "generator-of-both", "set-with-unknown-id"],
)
def test_a_batch_fails_the_messages_it_returns(returned: object) -> None:
    failures = batch_failures(BATCH, returned, None)
    assert list(failures) == ["id-0", "id-1", "id-2", "id-3"]
    assert failed_ids(failures) == {"id-1", "id-3"}
    assert isinstance(failures["id-1"], PartialBatchFailure)


@pytest.mark.parametrize("returned", ["id-1", b"id-1", 3, True, [], ()])
def test_a_return_value_that_names_no_messages_fails_none(returned: object) -> None:
    # A bare string is not a list of one-character ids.
    one_letter_batch = [message(message_id=c) for c in "id-1"]
    assert failed_ids(batch_failures(BATCH, returned, None)) == set()
    assert failed_ids(batch_failures(one_letter_batch, returned, None)) == set()


def test_partial_batch_failure_fails_what_it_names_with_itself_as_the_error() -> None:
    raised = PartialBatchFailure([BATCH[0], "id-2"], reason="two bad rows")
    failures = batch_failures(BATCH, ["id-3"], raised)  # a return value is ignored then
    assert failed_ids(failures) == {"id-0", "id-2"}
    assert failures["id-0"] is raised
    assert failures["id-2"] is raised
    assert failed_ids(batch_failures(BATCH, None, PartialBatchFailure([]))) == set()


def test_any_other_exception_fails_the_whole_batch() -> None:
    error = RuntimeError("database down")
    failures = batch_failures(BATCH, [BATCH[0]], error)
    assert failures == dict.fromkeys(("id-0", "id-1", "id-2", "id-3"), error)
