"""The page `docs/failures-and-retries.md`, scenario by scenario: what each way a handler ends
means for its message (retry, back-off, `Reject`, the dead-letter queue and its failure
record, timeouts, odd exceptions), what the acker does with the entries a batch call failed,
and lost leases.

Every scenario runs a real worker against the test server over HTTP, counts what the
handlers saw per message id, and checks what the server holds afterwards. Retry back-offs
are kept at a second so that redeliveries come back quickly. Those marked
``also_in_memory`` run on the in-memory SQS too (see `conftest.py`).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime

import anyio
import pytest

from aiosqsworker import App, Message, PartialBatchFailure, Reject

from .kit import SQSKit, eventually
from .test_semantics import FAST_RETRIES, ONE_POLL, failure_of, stats_of


def parse_time(text: object) -> datetime:
    assert isinstance(text, str), text
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None, text
    return moment


class PoisonError(Exception):
    """What the poisoned handler raises."""


# Batch handlers: one failed message of ten is redelivered alone.


@pytest.mark.parametrize("how", ["returned", "raised", "exception"])
@pytest.mark.also_in_memory
async def test_a_batch_handler_fails_one_message_or_the_whole_batch(
    sqs: SQSKit, make_app: Callable[..., App], how: str
) -> None:
    """`returned`: the handler returns the failed Message; `raised`: it raises
    PartialBatchFailure naming its id. Only that message comes back. `exception`: any other
    exception fails all ten, and all ten come back.
    """
    queue = await sqs.create_queue(visibility_timeout=30)
    ids = await sqs.send(queue, (f"item {n}" for n in range(10)))
    calls: list[list[str]] = []
    receives: Counter[str] = Counter()
    receive_counts: dict[str, list[int]] = defaultdict(list)
    app = make_app()

    @app.consumer(
        queue.name,
        batch=True,
        batch_size=10,
        batch_window=1.0,
        concurrency=1,
        **ONE_POLL,
        **FAST_RETRIES,
    )
    async def handle(messages: list[Message]) -> list[Message] | None:
        calls.append([message.message_id for message in messages])
        for message in messages:
            receives[message.message_id] += 1
            receive_counts[message.message_id].append(message.receive_count)
        if len(calls) > 1:
            return None
        victim = messages[len(messages) // 2]
        if how == "returned":
            return [victim]
        if how == "raised":
            raise PartialBatchFailure([victim.message_id], reason="one bad item")
        raise RuntimeError("the whole batch failed")

    async with app:
        await eventually(lambda: stats_of(app, "handle").deleted == 10, what="all 10 deleted")
        stats = stats_of(app, "handle")
    first = calls[0]
    assert len(first) == 10, calls  # one full batch of ten
    assert sorted(first) == sorted(ids)
    if how == "exception":
        expected = Counter(dict.fromkeys(ids, 2))
        assert stats.failed == 10
    else:
        victim = first[len(first) // 2]
        expected = Counter(dict.fromkeys(ids, 1)) + Counter({victim: 1})
        assert calls[1:] == [[victim]]  # the nine others were deleted, not redelivered
        assert receive_counts[victim] == [1, 2]
        assert stats.failed == 1
    assert receives == expected, (calls, dict(receive_counts))
    assert stats.succeeded == 10
    assert await sqs.counts(queue) == (0, 0)


# Dead letters carry why they failed.


@pytest.mark.also_in_memory
async def test_a_poison_message_reaches_the_dead_letter_queue_with_its_failure_record(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """After exactly maxReceiveCount attempts, and not one more; the good message is fine."""
    queue = await sqs.create_queue(max_receive_count=3)
    dlq = await sqs.dlq_of(queue)
    poison_id, good_id = await sqs.send(queue, ["poison", "fine"])
    invocations: Counter[str] = Counter()
    app = make_app()

    @app.consumer(queue.name, name="eater", **ONE_POLL, **FAST_RETRIES)
    async def swallow_poison(message: Message) -> None:
        invocations[message.message_id] += 1
        if message.body == "poison":
            raise PoisonError(f"cannot digest {message.body} (receive {message.receive_count})")

    async with app:
        await eventually(lambda: stats_of(app, "eater").dead_lettered == 1, what="dead-lettered")
        await eventually(lambda: stats_of(app, "eater").deleted == 2, what="both deleted")
        await anyio.sleep(1.5)  # longer than a retry: a fourth attempt would show now
        stats = stats_of(app, "eater")
    assert invocations == Counter({poison_id: 3, good_id: 1})
    assert stats.failed == 3
    assert await sqs.counts(queue) == (0, 0)
    letters = await sqs.drain_with_attributes(dlq)
    assert len(letters) == 1
    assert letters[0]["Body"] == "poison"
    record = failure_of(letters[0])
    assert record["exception"] == f"{PoisonError.__module__}.PoisonError"
    assert record["error"] == "cannot digest poison (receive 3)"
    assert record["reason"] == "last attempt failed"
    assert record["attempts"] == 3
    assert record["consumer"] == "eater"
    assert record["source_queue"] == queue.url
    assert record["message_id"] == poison_id
    assert "swallow_poison" in record["where"]
    assert len(record["traceback_digest"]) == 16
    sent, first_received, failed = (
        parse_time(record[name]) for name in ("sent_at", "first_received_at", "failed_at")
    )
    assert sent <= first_received <= failed
    assert (failed - sent).total_seconds() < 30


async def test_reject_dead_letters_after_one_attempt(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    queue = await sqs.create_queue(max_receive_count=5)
    dlq = await sqs.dlq_of(queue)
    (message_id,) = await sqs.send(queue, ["unknown customer 42"])
    invocations: Counter[str] = Counter()
    app = make_app()

    @app.consumer(queue.name, **ONE_POLL, **FAST_RETRIES)
    async def handle(message: Message) -> None:
        invocations[message.message_id] += 1
        raise Reject("no such customer")

    async with app:
        await eventually(lambda: stats_of(app, "handle").dead_lettered == 1, what="rejected")
        await eventually(lambda: stats_of(app, "handle").deleted == 1, what="original deleted")
        await anyio.sleep(1.5)  # a retry would be back by now
    assert invocations == Counter({message_id: 1})
    assert await sqs.counts(queue) == (0, 0)
    letters = await sqs.drain_with_attributes(dlq)
    assert [letter["Body"] for letter in letters] == ["unknown customer 42"]
    record = failure_of(letters[0])
    assert record["exception"] == "aiosqsworker.Reject"
    assert record["reason"] == "no such customer"
    assert record["attempts"] == 1
    assert record["message_id"] == message_id


@pytest.mark.also_in_memory
async def test_reject_without_a_dead_letter_queue_keeps_the_message(
    sqs: SQSKit, make_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    """With nowhere to put it, a rejected message is not deleted: it comes back later."""
    caplog.set_level(logging.ERROR, logger="aiosqsworker")
    queue = await sqs.create_queue()
    (message_id,) = await sqs.send(queue, ["reject me once"])
    receive_counts: list[int] = []
    app = make_app()

    @app.consumer(queue.name, **ONE_POLL, **FAST_RETRIES)
    async def handle(message: Message) -> None:
        assert message.message_id == message_id
        receive_counts.append(message.receive_count)
        if len(receive_counts) == 1:
            raise Reject("not today")

    async with app:
        await eventually(lambda: stats_of(app, "handle").deleted == 1, within=20, what="done")
        stats = stats_of(app, "handle")
    assert receive_counts == [1, 2]
    assert stats.dead_lettered == 0
    assert stats.retried == 1
    assert any(
        "rejected (not today) but there is no dead-letter queue" in record.getMessage()
        for record in caplog.records
    )
    assert await sqs.counts(queue) == (0, 0)


# A handler that outlives its timeout.


async def test_a_handler_past_its_timeout_is_cancelled_and_its_message_fails(
    sqs: SQSKit, make_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="aiosqsworker")
    queue = await sqs.create_queue(max_receive_count=2)
    (message_id,) = await sqs.send(queue, ["slow"])
    started: list[int] = []
    cancelled: list[int] = []
    finished: list[int] = []
    app = make_app()

    @app.consumer(queue.name, timeout=0.5, **ONE_POLL, **FAST_RETRIES)
    async def handle(message: Message) -> None:
        started.append(message.receive_count)
        try:
            await anyio.sleep(5)
        except anyio.get_cancelled_exc_class():
            cancelled.append(message.receive_count)
            raise
        finished.append(message.receive_count)

    async with app:
        await eventually(lambda: stats_of(app, "handle").dead_lettered == 1, what="dead-lettered")
        stats = stats_of(app, "handle")
    assert started == [1, 2]  # retried once, then dead-lettered on the last attempt
    assert cancelled == [1, 2]
    assert finished == []
    assert stats.succeeded == 0
    assert stats.failed == 2
    assert any("timed out after 0.5 s (timeout=0.5)" in r.getMessage() for r in caplog.records)
    letters = await sqs.drain_with_attributes(await sqs.dlq_of(queue))
    assert len(letters) == 1
    record = failure_of(letters[0])
    assert record["message_id"] == message_id
    assert record["exception"] == "builtins.TimeoutError"
    assert record["attempts"] == 2
    assert await sqs.counts(queue) == (0, 0)


# A lease lost for real.


@pytest.mark.also_in_memory
async def test_a_message_deleted_behind_the_workers_back_cancels_its_handler(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """The message is deleted out of band (with the handle the worker holds). The lease
    keeper's next extension is refused as an invalid receipt handle: the handler is
    cancelled, the loss counted, and nothing more is sent for the message.
    """
    queue = await sqs.create_queue(visibility_timeout=30)
    await sqs.send(queue, ["hold me"])
    handles: list[str] = []
    started = anyio.Event()
    cancelled = anyio.Event()
    finished: list[str] = []
    app = make_app()

    @app.consumer(queue.name, concurrency=1, prefetch=0, wait_time=1, visibility_timeout=2)
    async def handle(message: Message) -> None:
        handles.append(message.receipt_handle)
        started.set()
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        finished.append(message.message_id)

    async with app:
        with anyio.fail_after(15):
            await started.wait()
        # The lease is really held: at least one extension went through first.
        await eventually(lambda: stats_of(app, "handle").leases_extended >= 1, within=10)
        assert stats_of(app, "handle").leases_lost == 0
        await sqs.delete(queue, handles[0])
        with anyio.fail_after(10):
            await cancelled.wait()
        await eventually(lambda: stats_of(app, "handle").leases_lost == 1, within=5)
        await anyio.sleep(0.5)  # anything the worker would still send for it goes out now
        stats = stats_of(app, "handle")
    assert len(handles) == 1
    assert finished == []
    assert stats.succeeded == 0
    assert stats.failed == 0
    assert stats.deleted + stats.delete_failures + stats.released + stats.retried == 0
    assert await sqs.counts(queue) == (0, 0)
