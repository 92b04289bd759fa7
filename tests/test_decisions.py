"""The pure decisions, called directly: back-off, leases, batch results, error codes, buffers.

No server here: these functions decide, the I/O around them is exercised by the scenarios.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from aiosqsworker import (
    AccessDeniedError,
    ConfigurationError,
    ConsumerConfig,
    CredentialsError,
    Message,
    QueueNotFoundError,
    ReceiptHandleInvalidError,
    Reject,
    Retry,
    SQSError,
    TransientSQSError,
)
from aiosqsworker._config import MAX_VISIBILITY
from aiosqsworker._consumer.acker import retry_pause, split_batch_result
from aiosqsworker._consumer.buffer import Capacity, MessageBuffer
from aiosqsworker._consumer.leases import (
    Lease,
    extension_lead,
    extension_timeout,
    leases_due,
    next_wake,
)
from aiosqsworker._consumer.outcomes import Outcome, decide, retry_delay, within_visibility_cap
from aiosqsworker._consumer.receiver import MAX_POLLERS, poll_pause, poller_count
from aiosqsworker._sqs.base import BatchEntryFailure, BatchResult
from aiosqsworker._sqs.errors import classify_error_code

QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"


def low() -> float:
    return 0.0


def high() -> float:
    return 1.0


def raw_message(**attributes: str) -> dict[str, Any]:
    """One entry of a ReceiveMessage response, as botocore returns it."""
    return {
        "MessageId": "5fea7756-0ea4-451a-a703-a558b933e274",
        "ReceiptHandle": "MbZj6wDWli+JvwwJaBV+3dcjk2YW2vA3+STFFljTM8tJJg6HRG6PYSasuWXPJB+Cw",
        "MD5OfBody": "fafb00f5732ab283681e124bf8747ed1",
        "Body": '{"order": 42}',
        "Attributes": {
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1700000001000",
            "SentTimestamp": "1700000000123",
            **attributes,
        },
        "MD5OfMessageAttributes": "00484c68...59e48f06",
        "MessageAttributes": {
            "tenant": {"StringValue": "acme", "DataType": "String"},
        },
    }


def message(receive_count: int = 1) -> Message:
    return Message.from_sqs(raw_message(ApproximateReceiveCount=str(receive_count)), QUEUE_URL)


def lease(received_at: float, expires_at: float) -> Lease:
    return Lease(message=message(), received_at=received_at, expires_at=expires_at)


# Back-off of a failed message.


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


# What a handler's ending means.


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


# Leases.


def test_extension_timeout_is_the_visibility_timeout_far_from_the_cap() -> None:
    assert extension_timeout(lease(0, 30), 15, 30) == 30
    assert extension_timeout(lease(100, 130), 100 + 40_000, 30) == 30


def test_extension_timeout_near_the_twelve_hour_cap() -> None:
    held = lease(1000.0, 1030.0)
    assert extension_timeout(held, 1000 + MAX_VISIBILITY - 30, 30) == 30
    assert extension_timeout(held, 1000 + MAX_VISIBILITY - 29.5, 30) == 29
    assert extension_timeout(held, 1000 + MAX_VISIBILITY - 0.5, 30) == 0
    assert extension_timeout(held, 1000 + MAX_VISIBILITY, 30) == 0
    assert extension_timeout(held, 1000 + MAX_VISIBILITY + 60, 30) == 0


def test_leases_due_takes_those_within_three_quarters_of_a_window() -> None:
    now = 100.0
    expired = lease(0, 90)
    at_the_horizon = lease(0, now + 30 * 0.75)
    just_after = lease(0, now + 30 * 0.75 + 0.01)
    fresh = lease(0, now + 30)
    due = leases_due([fresh, just_after, at_the_horizon, expired], now, 30)
    assert due == [at_the_horizon, expired]
    assert leases_due([], now, 30) == []


def test_leases_due_near_the_cap_get_a_shorter_extension() -> None:
    received = 0.0
    now = received + MAX_VISIBILITY - 10
    old = lease(received, now + 5)
    assert leases_due([old], now, 60) == [old]
    assert extension_timeout(old, now, 60) == 10


def test_next_wake_is_half_a_window_before_the_earliest_expiry() -> None:
    assert next_wake([], 30) == math.inf
    assert next_wake([lease(0, 50), lease(0, 40), lease(0, 70)], 30) == 25


def test_short_windows_start_extending_early_enough_for_a_retried_call() -> None:
    """A failed call backs off up to 3 s over three tries: half of 6 s would not cover it."""
    assert extension_lead(30) == 15
    assert extension_lead(10) == 5
    assert extension_lead(6) == 5
    assert extension_lead(2) == 1
    assert next_wake([lease(0, 6)], 6) == 1


def test_short_windows_batch_without_taking_fresh_leases() -> None:
    now = 10.0
    fresh = lease(now, now + 6)
    due_soon = lease(0, now + 5.5)
    due = lease(0, now + 5)
    assert leases_due([fresh, due_soon, due], now, 6) == [due_soon, due]


# Batch responses.

DELETE_RESPONSE: dict[str, Any] = {
    "Successful": [{"Id": "0"}, {"Id": "3"}],
    "Failed": [
        {
            "Id": "1",
            "SenderFault": False,
            "Code": "InternalError",
            "Message": "We encountered an internal error. Please try again.",
        },
        {
            "Id": "2",
            "SenderFault": True,
            "Code": "ReceiptHandleIsInvalid",
            "Message": 'The input receipt handle "abc" is not a valid receipt handle.',
        },
        {
            "Id": "4",
            "SenderFault": True,
            "Code": "InvalidParameterValue",
            "Message": "Value AQEBwOHJ for parameter ReceiptHandle is invalid. Reason: The "
            "receipt handle has expired.",
        },
        {
            "Id": "5",
            "SenderFault": True,
            "Code": "AWS.SimpleQueueService.RequestThrottled",
            "Message": "Request is throttled.",
        },
        {
            "Id": "6",
            "SenderFault": True,
            "Code": "InvalidParameterValue",
            "Message": "Value 50000 for parameter VisibilityTimeout is invalid. Reason: Must "
            "be >= 0 and <= 43200.",
        },
        {
            "Id": "7",
            "SenderFault": False,
            "Code": "AWS.SimpleQueueService.MessageNotInflight",
            "Message": "Message not in flight.",
        },
        {
            "Id": "8",
            "SenderFault": True,
            "Code": "ThrottlingException",
        },
    ],
    "ResponseMetadata": {
        "RequestId": "b0e5d6d4-4bd5-5d6a-9a5c-3c1e0e1b1a7d",
        "HTTPStatusCode": 200,
        "HTTPHeaders": {"content-type": "application/x-amz-json-1.0"},
        "RetryAttempts": 0,
    },
}


def test_batch_result_from_a_response() -> None:
    result = BatchResult.from_response(DELETE_RESPONSE)
    assert result.successful == ("0", "3")
    assert [failure.id for failure in result.failed] == ["1", "2", "4", "5", "6", "7", "8"]
    throttled = result.failed[-1]
    assert throttled == BatchEntryFailure(
        id="8", code="ThrottlingException", message="", sender_fault=True
    )
    empty = BatchResult.from_response({"ResponseMetadata": {"HTTPStatusCode": 200}})
    assert empty.successful == ()
    assert empty.failed == ()


def test_split_batch_result_sorts_failed_entries() -> None:
    entries = [f"handle-{i}" for i in range(9)]
    done, retry, give_up = split_batch_result(entries, BatchResult.from_response(DELETE_RESPONSE))
    assert done == ["handle-0", "handle-3"]
    # Server faults and throttling (either spelling, even marked as the sender's fault).
    assert [entry for entry, _ in retry] == ["handle-1", "handle-5", "handle-8"]
    # Handles no longer ours, and the sender's own mistakes: sending again cannot help.
    assert [entry for entry, _ in give_up] == ["handle-2", "handle-4", "handle-6", "handle-7"]
    assert [failure.code for _, failure in give_up] == [
        "ReceiptHandleIsInvalid",
        "InvalidParameterValue",
        "InvalidParameterValue",
        "AWS.SimpleQueueService.MessageNotInflight",
    ]


def test_split_batch_result_of_a_clean_response() -> None:
    result = BatchResult.from_response({"Successful": [{"Id": "0"}, {"Id": "1"}]})
    assert split_batch_result(["a", "b"], result) == (["a", "b"], [], [])


@pytest.mark.parametrize(
    ("code", "message", "invalid"),
    [
        ("ReceiptHandleIsInvalid", "", True),
        ("InvalidReceiptHandle", "", True),
        ("AWS.SimpleQueueService.MessageNotInflight", "", True),
        (
            "InvalidParameterValue",
            "Value AQEB for parameter ReceiptHandle is invalid. Reason: The receipt handle "
            "has expired.",
            True,
        ),
        # What SQS says when another worker received the message again in the meantime.
        (
            "InvalidParameterValue",
            "Value AQEB for parameter ReceiptHandle is invalid. Reason: Message does not "
            "exist or is not available for visibility timeout change.",
            True,
        ),
        (
            "InvalidParameterValue",
            "Value 50000 for parameter VisibilityTimeout is invalid. Reason: Must be >= 0.",
            False,
        ),
        ("InternalError", "receipt handle", False),
        ("ThrottlingException", "", False),
    ],
)
def test_receipt_invalid(code: str, message: str, invalid: bool) -> None:
    failure = BatchEntryFailure(id="0", code=code, message=message, sender_fault=True)
    assert failure.receipt_invalid is invalid


@pytest.mark.parametrize(
    ("code", "sender_fault", "retryable"),
    [
        ("InternalError", False, True),
        ("ServiceUnavailable", False, True),
        ("ThrottlingException", True, True),
        ("AWS.SimpleQueueService.RequestThrottled", True, True),
        ("RequestThrottled", True, True),
        ("InvalidParameterValue", True, False),
        ("AWS.SimpleQueueService.BatchEntryIdsNotDistinct", True, False),
    ],
)
def test_batch_entry_retryable(code: str, sender_fault: bool, retryable: bool) -> None:
    failure = BatchEntryFailure(id="0", code=code, message="", sender_fault=sender_fault)
    assert failure.retryable is retryable


# Error codes and statuses.


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("ThrottlingException", 400, TransientSQSError),
        ("AWS.SimpleQueueService.RequestThrottled", 403, TransientSQSError),
        ("RequestThrottled", 400, TransientSQSError),
        ("Throttling", None, TransientSQSError),
        ("KMS.ThrottlingException", 400, TransientSQSError),
        ("ServiceUnavailable", 503, TransientSQSError),
        ("InternalError", 500, TransientSQSError),
        ("ExpiredToken", 400, TransientSQSError),
        (None, 500, TransientSQSError),
        (None, 502, TransientSQSError),
        (None, 503, TransientSQSError),
        (None, 504, TransientSQSError),
        ("SomethingNew", 500, TransientSQSError),
        (None, 429, TransientSQSError),
        ("AWS.SimpleQueueService.NonExistentQueue", 400, QueueNotFoundError),
        ("QueueDoesNotExist", 400, QueueNotFoundError),
        ("InvalidClientTokenId", 403, CredentialsError),
        ("SignatureDoesNotMatch", 403, CredentialsError),
        ("UnrecognizedClientException", 400, CredentialsError),
        ("AccessDenied", 403, AccessDeniedError),
        ("AccessDeniedException", 400, AccessDeniedError),
        ("KMS.AccessDeniedException", 400, AccessDeniedError),
        ("ReceiptHandleIsInvalid", 404, ReceiptHandleInvalidError),
        ("InvalidParameterValue", 400, SQSError),
        (None, 400, SQSError),
        (None, None, SQSError),
    ],
)
def test_classify_error_code(code: str | None, status: int | None, kind: type[SQSError]) -> None:
    assert classify_error_code(code, status) is kind


# Receiving.


@pytest.mark.parametrize(
    ("settings", "pollers"),
    [
        ({"concurrency": 1, "prefetch": 0}, 1),
        ({"concurrency": 10, "prefetch": 10}, 2),
        ({"concurrency": 50, "prefetch": 10}, 6),
        ({"concurrency": 1000}, MAX_POLLERS),
        ({"concurrency": 3, "prefetch": 0, "max_messages": 1}, 3),
        ({"concurrency": 2, "prefetch": 0, "batch": True, "batch_size": 10}, 2),
    ],
)
def test_poller_count(settings: dict[str, Any], pollers: int) -> None:
    assert poller_count(ConsumerConfig(queue="orders", **settings)) == pollers


@pytest.mark.parametrize(
    ("errors", "least", "most"),
    [(1, 0.25, 0.5), (2, 0.5, 1.0), (4, 2.0, 4.0), (7, 10.0, 20.0), (40, 10.0, 20.0)],
)
def test_poll_pause_doubles_to_twenty_seconds(
    monkeypatch: pytest.MonkeyPatch, errors: int, least: float, most: float
) -> None:
    monkeypatch.setattr(random, "random", lambda: 0.0)
    assert poll_pause(errors) == pytest.approx(least)
    monkeypatch.setattr(random, "random", lambda: 1.0)
    assert poll_pause(errors) == pytest.approx(most)


def test_poll_pause_survives_a_long_outage() -> None:
    # About six hours of failed polls, 20 s apart: the pause stays capped.
    for errors in (1025, 5000, 10**6):
        assert 10.0 <= poll_pause(errors) <= 20.0


def test_retry_pause_of_batch_calls() -> None:
    for attempt in range(6):
        pause = retry_pause(attempt)
        assert min(3.0, 0.1 * 2**attempt) * 0.5 <= pause <= min(3.0, 0.1 * 2**attempt)
    assert 1.5 <= retry_pause(10_000) <= 3.0


# Messages as SQS hands them out.


def test_message_from_a_realistic_receive() -> None:
    raw = raw_message(
        ApproximateReceiveCount="3",
        MessageGroupId="customer-7",
        MessageDeduplicationId="d-1",
        SequenceNumber="18849496460467696128",
    )
    received = Message.from_sqs(raw, QUEUE_URL)
    assert received.message_id == raw["MessageId"]
    assert received.receipt_handle == raw["ReceiptHandle"]
    assert received.queue == QUEUE_URL
    assert received.body == '{"order": 42}'
    assert received.json() == {"order": 42}
    assert received.receive_count == 3
    assert received.sent_at == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert received.group_id == "customer-7"
    assert received.message_attributes["tenant"]["StringValue"] == "acme"
    assert raw["ReceiptHandle"] not in repr(received)


def test_message_without_attributes() -> None:
    bare = Message.from_sqs({"MessageId": "m-1", "ReceiptHandle": "r-1"}, QUEUE_URL)
    assert bare.body == ""
    assert bare.receive_count == 1
    assert bare.sent_at is None
    assert bare.group_id is None
    assert bare.attributes == {}
    assert bare.message_attributes == {}


def test_message_with_malformed_attributes() -> None:
    odd = Message.from_sqs(
        raw_message(ApproximateReceiveCount="many", SentTimestamp="yesterday"), QUEUE_URL
    )
    assert odd.receive_count == 1
    assert odd.sent_at is None
    assert odd.group_id is None


# Capacity: the back-pressure.


async def test_capacity_reserves_what_is_free_up_to_at_most() -> None:
    capacity = Capacity(25)
    assert await capacity.reserve(1, 10) == 10
    assert await capacity.reserve(1, 10) == 10
    assert capacity.used == 20
    assert await capacity.reserve(1, 10) == 5
    assert capacity.used == 25
    capacity.release(0)
    assert capacity.used == 25
    capacity.release(7)
    assert capacity.used == 18


async def test_capacity_reserve_waits_for_at_least() -> None:
    capacity = Capacity(10)
    assert await capacity.reserve(10, 10) == 10
    got: list[int] = []

    async def reserve() -> None:
        got.append(await capacity.reserve(3, 10))

    async with anyio.create_task_group() as tg:
        tg.start_soon(reserve)
        await wait_all_tasks_blocked()
        capacity.release(2)
        await wait_all_tasks_blocked()
        assert got == [], "reserved with fewer than at_least free"
        capacity.release(2)
    assert got == [4]
    assert capacity.used == 10


async def test_capacity_release_wakes_every_waiter_that_fits() -> None:
    capacity = Capacity(4)
    assert await capacity.reserve(4, 4) == 4
    got: list[int] = []

    async def reserve() -> None:
        got.append(await capacity.reserve(2, 2))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reserve)
            tg.start_soon(reserve)
            await wait_all_tasks_blocked()
            capacity.release(2)
            await wait_all_tasks_blocked()
            assert got == [2]
            capacity.release(2)
    assert got == [2, 2]


async def test_capacity_close_wakes_waiters_with_nothing() -> None:
    capacity = Capacity(1)
    assert await capacity.reserve(1, 1) == 1
    got: list[int] = []

    async def reserve() -> None:
        got.append(await capacity.reserve(1, 10))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reserve)
            tg.start_soon(reserve)
            await wait_all_tasks_blocked()
            capacity.close()
    assert got == [0, 0]
    # Closed for good: even free room is not handed out.
    capacity.release(1)
    assert await capacity.reserve(1, 1) == 0


# The buffer between the receiver and the handler slots.


async def test_buffer_hands_out_in_order() -> None:
    buffer: MessageBuffer[str] = MessageBuffer()
    buffer.put("a")
    buffer.put("b")
    assert len(buffer) == 2
    assert await buffer.get() == "a"
    assert await buffer.get() == "b"
    assert len(buffer) == 0
    assert buffer.task_done("a", succeeded=True) == []


async def test_buffer_get_waits_for_a_put() -> None:
    buffer: MessageBuffer[str] = MessageBuffer()
    got: list[str | None] = []

    async def get() -> None:
        got.append(await buffer.get())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(get)
            tg.start_soon(get)
            await wait_all_tasks_blocked()
            assert got == []
            buffer.put("x")
            await wait_all_tasks_blocked()
            assert got == ["x"]
            buffer.put("y")
    assert got == ["x", "y"]


async def test_buffer_close_returns_leftovers_and_wakes_waiters() -> None:
    buffer: MessageBuffer[str] = MessageBuffer()
    got: list[str | None] = []

    async def get() -> None:
        got.append(await buffer.get())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(get)
            tg.start_soon(get)
            await wait_all_tasks_blocked()
            assert buffer.close() == []
    assert got == [None, None]
    assert await buffer.get() is None
    with pytest.raises(RuntimeError, match="closed"):
        buffer.put("late")

    full: MessageBuffer[str] = MessageBuffer()
    full.put("a")
    full.put("b")
    assert full.close() == ["a", "b"]
    assert len(full) == 0
    assert await full.get() is None


async def test_a_waiter_cancelled_after_its_wake_up_passes_the_item_on() -> None:
    buffer: MessageBuffer[str] = MessageBuffer()
    first_scope = anyio.CancelScope()
    got: list[str | None] = []
    first_cancelled = False

    async def first() -> None:
        nonlocal first_cancelled
        with first_scope:
            got.append(await buffer.get())
        first_cancelled = first_scope.cancelled_caught

    async def second() -> None:
        got.append(await buffer.get())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await wait_all_tasks_blocked()
            tg.start_soon(second)
            await wait_all_tasks_blocked()
            first_scope.cancel()  # the first waiter is cancelled...
            buffer.put("x")  # ...and woken before it has run: the wake-up goes on to the second
            await wait_all_tasks_blocked()
            leftover = buffer.close()
    assert first_cancelled
    assert got == ["x"]
    assert leftover == []


async def test_a_waiter_cancelled_before_any_put_does_not_swallow_a_wake_up() -> None:
    buffer: MessageBuffer[str] = MessageBuffer()
    got: list[str | None] = []

    async def get() -> None:
        got.append(await buffer.get())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            with anyio.move_on_after(0.01):
                await buffer.get()  # a waiter that gives up
            tg.start_soon(get)
            await wait_all_tasks_blocked()
            buffer.put("x")
    assert got == ["x"]


def test_an_entry_the_response_does_not_mention_is_retried_not_taken_as_done() -> None:
    result = BatchResult.from_response({"Successful": [{"Id": "0"}], "Failed": []})
    done, retry, give_up = split_batch_result(["a", "b"], result)
    assert done == ["a"]
    assert [entry for entry, _ in retry] == ["b"]
    assert give_up == []


def test_two_pollers_failing_alike_surface_as_one_framework_error() -> None:
    from aiosqsworker._errors import QueueNotFoundError, single_error

    group = ExceptionGroup(
        "pollers",
        [QueueNotFoundError("gone"), ExceptionGroup("inner", [QueueNotFoundError("gone")])],
    )
    assert isinstance(single_error(group), QueueNotFoundError)
    assert single_error(ExceptionGroup("mixed", [QueueNotFoundError("gone"), ValueError()])) is None
