"""The page `docs/failures-and-retries.md`, scenario by scenario: what each way a handler ends
means for its message (retry, back-off, `Reject`, the dead-letter queue and its failure
record, timeouts, odd exceptions), what the acker does with the entries a batch call failed,
and lost leases, in the page's order.

Every scenario runs a real worker against the test server over HTTP, counts what the
handlers saw per message id, and checks what the server holds afterwards. Retry back-offs
are kept at a second so that redeliveries come back quickly; where a retry delay is the
point, the queue's own timeout is made much longer than that delay, so that only the
worker's visibility change can bring the message back in time. Those marked
``also_in_memory`` run on the in-memory SQS too (see `conftest.py`).
"""

from __future__ import annotations

import json
import logging
import math
import signal
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from aiosqsworker import (
    App,
    Message,
    MessageDecodeError,
    PartialBatchFailure,
    Reject,
    Retry,
    WorkerState,
)
from aiosqsworker.testing import Answer, FaultProxy, LocalSQSServer, ProxiedRequest

from .clikit import cli, counts_become, exit_code, ids_of, logged, read_ledger, tail
from .kit import SQSKit, eventually, stats_of
from .servers import server_kind
from .test_faults import bodies
from .test_offload import SERVICE, offload_env, stop
from .test_robustness import APP, dead_letters, env_for, orders
from .test_semantics import FAST_RETRIES, ONE_POLL, failure_of
from .test_stuck_handlers import failure_records, hang


def parse_time(text: object) -> datetime:
    assert isinstance(text, str), text
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None, text
    return moment


class PoisonError(Exception):
    """What the poisoned handler raises."""


@dataclass(frozen=True)
class Exchange:
    """One batch call as the server saw and answered it."""

    action: str
    at: float  # on the event loop's clock, when the request reached the proxy
    entries: list[dict[str, Any]]
    answer: dict[str, Any]


class BatchRecorder(FaultProxy):
    """Forwards every request unchanged and records each batch delete and visibility change.

    Nothing is injected: `exchanges` shows what the worker asked the server and what the
    server answered, in order.
    """

    RECORDED = ("DeleteMessageBatch", "ChangeMessageVisibilityBatch")

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.exchanges: list[Exchange] = []

    def of(self, action: str) -> list[Exchange]:
        return [exchange for exchange in self.exchanges if exchange.action == action]

    def visibility_changes_but_extensions_to(self, visibility: int) -> list[Exchange]:
        """The visibility changes a worker made, without its extensions to `visibility`:
        what an idle consumer's watch poll brings (asked for with a 5 s visibility) is
        extended to the full timeout at once."""
        return [
            change
            for change in self.of("ChangeMessageVisibilityBatch")
            if any(entry["VisibilityTimeout"] != visibility for entry in change.entries)
        ]

    async def forward(self, request: ProxiedRequest) -> Answer:
        at = anyio.current_time()
        answer = await super().forward(request)
        if request.action in self.RECORDED:
            entries = request.json()["Entries"]
            self.exchanges.append(Exchange(request.action, at, entries, answer.json()))
        return answer


class PartialFailureProxy(FaultProxy):
    """Makes the server fail the first entry of the next DeleteMessageBatch calls.

    The entry is taken out of the request before it is forwarded (so the server really does
    not delete it) and reported under ``Failed`` with the code queued in `fail_next`.
    `deleted_handles` lists every receipt handle the worker asked to delete, in order.
    """

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.fail_next: list[tuple[str, bool]] = []  # (code, sender fault)
        self.deleted_handles: list[str] = []

    async def forward(self, request: ProxiedRequest) -> Answer:
        if request.action != "DeleteMessageBatch":
            return await super().forward(request)
        body = request.json()
        entries = body["Entries"]
        self.deleted_handles.extend(entry["ReceiptHandle"] for entry in entries)
        failed: list[dict[str, Any]] = []
        if self.fail_next:
            code, sender_fault = self.fail_next.pop(0)
            victim = entries.pop(0)
            failed.append(
                {
                    "Id": victim["Id"],
                    "Code": code,
                    "Message": "injected",
                    "SenderFault": sender_fault,
                }
            )
        if not entries:
            return Answer.of_json({"Successful": [], "Failed": failed})
        request.body = json.dumps(body).encode()
        answer = await super().forward(request)
        response = answer.json()
        response["Failed"] = [*response.get("Failed", []), *failed]
        answer.payload = json.dumps(response).encode()
        return answer


class RefusingFirstDelete(FaultProxy):
    """Answers the first DeleteMessageBatch's first entry with ReceiptHandleIsInvalid (and
    does not forward it), as SQS does for a message whose lease ran out before its delete."""

    refused = False

    async def forward(self, request: ProxiedRequest) -> Answer:
        if request.action != "DeleteMessageBatch" or self.refused:
            return await super().forward(request)
        self.refused = True
        body = request.json()
        victim = body["Entries"].pop(0)
        failed = {"Id": victim["Id"], "Code": "ReceiptHandleIsInvalid", "SenderFault": True}
        failed["Message"] = "The receipt handle has expired."
        if not body["Entries"]:
            return Answer.of_json({"Successful": [], "Failed": [failed]})
        request.body = json.dumps(body).encode()
        answer = await super().forward(request)
        response = answer.json()
        response["Failed"] = [*response.get("Failed", []), failed]
        answer.payload = json.dumps(response).encode()
        return answer


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


# Failures: retries through visibility, dead letters.


async def test_a_failing_message_backs_off_then_is_dead_lettered(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """A handler that always fails, maxReceiveCount 3, retry_base_delay 1 s.

    Each failure sets the message's visibility to the back-off, doubling: 1 s after the
    first receive, 2 s after the second (the queue's own timeout, 10 s, would be far
    longer), and the message is not back before that. The third receive is the last the
    redrive policy allows: the message ends in the dead-letter queue with the worker's
    failure record, and the source queue is empty.
    """
    queue = await sqs.create_queue(visibility_timeout=10, max_receive_count=3)
    dlq = await sqs.dlq_of(queue)
    await sqs.send(queue, ['{"order": 7}'])
    attempts: list[tuple[int, str, float]] = []
    proxy = BatchRecorder(sqs_server.endpoint_url)
    async with proxy:
        app = make_app(endpoint_url=proxy.url)

        @app.consumer(queue.name, wait_time=1, retry_base_delay=1, retry_max_delay=60)
        async def handle(message: Message) -> None:
            attempts.append((message.receive_count, message.receipt_handle, anyio.current_time()))
            raise ValueError("the order service is down")

        async with app:
            await eventually(lambda: stats_of(app).deleted == 1, within=20)
            stats = stats_of(app)
            assert app.state is WorkerState.RUNNING

    assert [count for count, _, _ in attempts] == [1, 2, 3]
    changes = proxy.visibility_changes_but_extensions_to(10)
    assert [[(e["ReceiptHandle"], e["VisibilityTimeout"]) for e in c.entries] for c in changes] == [
        [(attempts[0][1], 1)],
        [(attempts[1][1], 2)],
    ]
    for change, (_, _, back_at) in zip(changes, attempts[1:], strict=True):
        delay = change.entries[0]["VisibilityTimeout"]
        waited = back_at - change.at
        # Not back before its delay; then found by the next long poll (1 s) or so.
        assert delay - 0.05 <= waited <= delay + 2.0, (delay, waited)
    assert (stats.failed, stats.retried, stats.dead_lettered) == (3, 2, 1)
    assert await sqs.counts(queue) == (0, 0)
    [dead] = await sqs.drain_with_attributes(dlq)
    assert dead["Body"] == '{"order": 7}'
    record = json.loads(dead["MessageAttributes"]["aiosqsworker.failure"]["StringValue"])
    assert record["exception"] == "builtins.ValueError"
    assert record["attempts"] == 3


async def test_retry_with_a_delay_brings_the_message_back_after_that_delay(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """``raise Retry(delay=2)``: not back before ~1.5 s, then handled and deleted.

    The queue's visibility timeout is 30 s, so the message can only be back this soon if
    the worker set its visibility to the delay asked for (and it asks for exactly 2 s).
    """
    queue = await sqs.create_queue(visibility_timeout=30)
    [sent] = await sqs.send(queue, ["later"])
    attempts: list[tuple[str, int, float]] = []
    proxy = BatchRecorder(sqs_server.endpoint_url)
    async with proxy:
        app = make_app(endpoint_url=proxy.url)

        @app.consumer(queue.name, wait_time=1)
        async def handle(message: Message) -> None:
            attempts.append((message.message_id, message.receive_count, anyio.current_time()))
            if message.receive_count == 1:
                raise Retry(delay=2)

        async with app:
            await eventually(lambda: stats_of(app).deleted == 1, within=15)
            stats = stats_of(app)

    assert [(m, count) for m, count, _ in attempts] == [(sent, 1), (sent, 2)]
    gap = attempts[1][2] - attempts[0][2]
    assert 1.5 <= gap <= 4.5, gap
    [change] = proxy.visibility_changes_but_extensions_to(30)
    assert [e["VisibilityTimeout"] for e in change.entries] == [2]
    assert (stats.failed, stats.retried, stats.succeeded, stats.dead_lettered) == (1, 1, 1, 0)
    assert await sqs.counts(queue) == (0, 0)


class UnprintableError(Exception):
    """An exception whose ``str()`` itself fails, as a hand-written ``__str__`` can."""

    def __str__(self) -> str:
        raise RuntimeError("cannot describe this error")


async def test_raising_handlers_never_stop_the_worker(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """Mixed outcomes on one queue (maxReceiveCount 2): every message reaches its end.

    Kinds, three messages each: succeeds; fails once (TimeoutError) then succeeds; always
    fails (an ExceptionGroup, as a failed task group raises); a body that is not JSON
    (dead-lettered on its first receive); always raises an exception whose ``str()`` fails.
    Plus one ``Reject``. Succeeded ones are
    deleted, the others are in the dead-letter queue, the worker keeps running and still
    handles a message sent after all of it.
    """
    queue = await sqs.create_queue(visibility_timeout=10, max_receive_count=2)
    dlq = await sqs.dlq_of(queue)
    kinds = ["ok", "flaky", "broken", "garbage", "unprintable"]
    bodies = [
        f"not json #{n} {{" if kind == "garbage" else json.dumps({"kind": kind, "n": n})
        for n in range(3)
        for kind in kinds
    ]
    bodies.append(json.dumps({"kind": "reject", "n": 0}))
    await sqs.send(queue, bodies)
    calls: Counter[str] = Counter()
    succeeded: list[str] = []
    app = make_app()

    @app.consumer(queue.name, wait_time=1, retry_base_delay=1)
    async def handle(message: Message) -> None:
        calls[message.body] += 1
        kind = message.json()["kind"]
        if kind == "flaky" and message.receive_count == 1:
            raise TimeoutError("upstream timed out")
        if kind == "broken":
            raise ExceptionGroup("several failed", [ValueError("a"), KeyError("b")])
        if kind == "unprintable":
            raise UnprintableError()
        if kind == "reject":
            raise Reject("never valid")
        succeeded.append(message.body)

    expected_ok = [b for b in bodies if '"ok"' in b or '"flaky"' in b]
    expected_dead = [b for b in bodies if b not in expected_ok]
    async with app:
        await eventually(lambda: stats_of(app).deleted == len(bodies), within=20)
        assert app.state is WorkerState.RUNNING
        await sqs.send(queue, [json.dumps({"kind": "ok", "n": 99})])
        await eventually(lambda: stats_of(app).deleted == len(bodies) + 1, within=10)
        stats = stats_of(app)
        assert app.state is WorkerState.RUNNING

    assert sorted(succeeded) == sorted([*expected_ok, json.dumps({"kind": "ok", "n": 99})])
    for body in bodies:
        kind = "garbage" if body.startswith("not json") else json.loads(body)["kind"]
        # A Reject and a body that does not decode are final at once; the rest are retried.
        assert calls[body] == {"ok": 1, "reject": 1, "garbage": 1}.get(kind, 2), (body, calls[body])
    assert stats.dead_lettered == len(expected_dead)
    assert stats.succeeded == len(expected_ok) + 1
    assert await sqs.counts(queue) == (0, 0)
    dead = await sqs.drain_with_attributes(dlq)
    assert sorted(m["Body"] for m in dead) == sorted(expected_dead)
    records = {
        m["Body"]: json.loads(m["MessageAttributes"]["aiosqsworker.failure"]["StringValue"])
        for m in dead
    }
    unprintable = [r for body, r in records.items() if '"unprintable"' in body]
    assert len(unprintable) == 3
    assert {r["error"] for r in unprintable} == {"<exception str() failed>"}
    assert {r["exception"] for r in unprintable} == {f"{__name__}.UnprintableError"}


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


# Bodies that do not decode.


@pytest.mark.parametrize(
    "body",
    [
        "password=hunter2",
        "{'token': 'hunter2'}",
        '{"token": "hunter2"',
        "",
        "   ",
    ],
    ids=["text", "single-quotes", "truncated", "empty", "blank"],
)
def test_a_body_that_is_not_json_raises_a_clear_error(body: str) -> None:
    message = Message(
        message_id="3f1c8a7e-0b5d-4c1e-9a7b-2d6e5f4a3b2c",
        body=body,
        receipt_handle="AQEB-handle",
        queue="https://sqs.us-east-1.amazonaws.com/123456789012/orders",
    )
    with pytest.raises(MessageDecodeError) as info:
        message.json()
    text = str(info.value)
    assert "not valid JSON" in text
    assert message.message_id in text
    assert f"{len(body)} characters" in text
    assert "hunter2" not in text
    assert isinstance(info.value, ValueError)


async def test_a_body_that_is_not_json_is_dead_lettered_at_once_while_others_flow(
    make_app: Callable[..., App], sqs: SQSKit
) -> None:
    """`message.json()` on a body that is not JSON: the copy and its record are in the
    dead-letter queue after one receive, and ten good messages are handled meanwhile.

    Naive change it catches: treating a decode error as transient (retried until the redrive
    policy's count), or deleting the bad message without a copy.
    """
    queue = await sqs.create_queue(max_receive_count=3)
    dlq = await sqs.dlq_of(queue)
    [bad_id] = await sqs.send(queue, ["password=hunter2"])
    good_ids = await sqs.send(queue, (json.dumps({"n": n}) for n in range(10)))
    attempts: list[int] = []
    decoded: list[int] = []
    app = make_app()

    @app.consumer(queue.name, concurrency=1, wait_time=1, retry_base_delay=0, retry_max_delay=0)
    async def handle(message: Message) -> None:
        if message.message_id == bad_id:
            attempts.append(message.receive_count)
        decoded.append(message.json()["n"])

    with anyio.fail_after(40):
        async with app:
            await eventually(
                lambda: (
                    app.statistics()["handle"].succeeded == 10
                    and app.statistics()["handle"].dead_lettered == 1
                ),
                within=30,
                what="ten good messages handled and the bad one dead-lettered",
            )
    stats = app.statistics()["handle"]
    assert sorted(decoded) == list(range(10))
    assert attempts == [1], "a body that cannot decode was retried"
    assert stats.failed == 1
    assert stats.deleted == 11  # ten successes, and the original of the dead letter
    assert len(good_ids) == 10

    dead = await sqs.drain_with_attributes(dlq)
    assert [message["Body"] for message in dead] == ["password=hunter2"]
    record = json.loads(dead[0]["MessageAttributes"]["aiosqsworker.failure"]["StringValue"])
    assert record["exception"] == "aiosqsworker.MessageDecodeError"
    assert bad_id in record["error"]
    assert "hunter2" not in record["error"]
    assert await sqs.counts(queue) == (0, 0)


async def test_a_retry_without_end_is_capped_not_a_crash(
    make_app: Callable[..., App], sqs: SQSKit
) -> None:
    queue = await sqs.create_queue()
    [later] = await sqs.send(queue, ["later"])
    await sqs.send(queue, (str(n) for n in range(5)))
    app = make_app()

    @app.consumer(queue.name, concurrency=1, wait_time=1)
    async def handle(message: Message) -> None:
        if message.message_id == later:
            raise Retry(delay=math.inf)

    with anyio.fail_after(30):
        async with app:
            await eventually(
                lambda: (
                    app.statistics()["handle"].deleted == 5
                    and app.statistics()["handle"].retried == 1
                ),
                within=20,
            )
            assert app.state is WorkerState.RUNNING
    # Hidden for as long as SQS allows, not lost and not handled again.
    assert await sqs.counts(queue) == (0, 1)


async def test_a_retry_to_the_12_hour_cap_that_lingers_before_its_call_is_not_refused(
    make_app: Callable[..., App], sqs: SQSKit
) -> None:
    """A ``Retry(delay=math.inf)`` waits 2 s in the acker (``ack_linger=2``) before its call.

    Naive code it catches: cutting the delay to the 12-hour cap when the handler ends and
    sending that figure seconds later: SQS counts the cap when the call arrives, so it refuses
    the change (``Total VisibilityTimeout ... beyond the limit``), and on a loaded machine
    the plain linger of 50 ms was enough.
    """
    queue = await sqs.create_queue()
    await sqs.send(queue, ["later"])
    app = make_app()

    @app.consumer(queue.name, concurrency=1, wait_time=1, ack_linger=2)
    async def handle(message: Message) -> None:
        raise Retry(delay=math.inf)

    async with app:
        await eventually(lambda: app.statistics()["handle"].retried == 1, within=20)
        assert app.statistics()["handle"].visibility_failures == 0
    assert await sqs.counts(queue) == (0, 1)


# Bad input among good messages, and what the logs may show.


async def test_bad_input_takes_the_failure_path_and_logs_stay_clean(
    sqs: SQSKit,
    sqs_server: LocalSQSServer,
    make_app: Callable[..., App],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Malformed JSON, a blank body, a body of the queue's largest size, an attribute that
    is not UTF-8, among good messages.

    The bad ones fail with a clear log line naming the message and are dead-lettered after
    the redrive policy's receives; the big and the good ones are handled; polling stays at
    its idle pace. Nothing at INFO or above shows a body, a receipt handle or a credential.

    Naive changes it catches: logging the message itself at INFO ("received %r"; Message's
    repr hides the handle, so the body is what leaks); a failure path that stops the
    consumer on bad input.
    """
    access_key, secret_key = "AKIDLOGCHECK7Q2Z", "secret/LOGCHECK+k3y"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
    caplog.set_level(logging.INFO)
    queue = await sqs.create_queue(max_receive_count=2)
    attributes = await sqs.client.get_queue_attributes(
        QueueUrl=queue.url, AttributeNames=["MaximumMessageSize"]
    )
    largest = min(1024 * 1024, int(attributes["Attributes"]["MaximumMessageSize"]))
    filler = "BODY-SECRET-" * (largest // 12)
    big = json.dumps({"pad": filler})[: largest - 2] + '"}'
    assert len(big.encode()) <= largest
    good = [json.dumps({"n": n, "note": f"BODY-SECRET-{n}"}) for n in range(10)]
    [malformed, blank] = await sqs.send(queue, ['{"BODY-SECRET": ', " "])
    [not_utf8] = (
        (
            await sqs.client.send_message(
                QueueUrl=queue.url,
                MessageBody='{"n": 99}',
                MessageAttributes={
                    "blob": {"DataType": "Binary", "BinaryValue": b"\xff\xfeBODY-SECRET\xc3("}
                },
            )
        )["MessageId"],
    )
    with warnings.catch_warnings():
        # aiohttp warns of a request body over 1 MiB (this one, by its JSON framing).
        warnings.simplefilter("ignore", ResourceWarning)
        [big_id] = await sqs.send(queue, [big])
    good_ids = await sqs.send(queue, good)
    handles: list[str] = []
    handled: list[str] = []
    async with FaultProxy(sqs_server.endpoint_url) as proxy:
        app = make_app(endpoint_url=proxy.url)

        @app.consumer(queue.name, wait_time=1, retry_base_delay=0, retry_max_delay=0)
        async def handle(message: Message) -> None:
            handles.append(message.receipt_handle)
            message.json()
            blob = message.message_attributes.get("blob")
            if blob is not None:
                bytes(blob["BinaryValue"]).decode()  # a handler reading it as text
            handled.append(message.message_id)

        started = time.monotonic()
        async with app:
            await eventually(
                lambda: stats_of(app).succeeded == 11 and stats_of(app).dead_lettered == 3,
                within=100,
            )
            elapsed = time.monotonic() - started
            polls = proxy.requests["ReceiveMessage"]
    assert sorted(handled) == sorted([big_id, *good_ids])
    # About one poll per second per poller when idle (allowing for a second one): no tight loop.
    assert polls <= 2 * (elapsed + 1) * 3 + 10, (polls, elapsed)
    text = [
        record.getMessage() + (record.exc_text or "")
        for record in caplog.records
        if record.levelno >= logging.INFO
    ]
    for bad in (malformed, blank, not_utf8):
        assert any(
            f"handler failed on message {bad}" in line or f"moved message {bad}" in line
            for line in text
        ), bad
    for line in text:
        assert "BODY-SECRET" not in line, line
        assert access_key not in line, line
        assert secret_key not in line, line
        for receipt in handles:
            assert receipt not in line, line


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


# What a timeout tells: how long, and where, for async, thread and process handlers.


async def test_a_timeout_says_how_long_and_where_for_async_thread_and_process_handlers(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """An ``async``, a ``def`` and a ``run_in="process"`` handler each run past ``timeout=1``
    on their only allowed receive: each failure record says "timed out after 1 s
    (timeout=1)" with the handler's name, and its ``where`` is in the handler's module; so
    does the log line of each.

    Naive code it catches: letting anyio's bare ``TimeoutError`` through: a record with
    ``"error": ""`` and a ``where`` in anyio's ``fail_at``, which says neither how long nor
    which code ran out of time.
    """
    names = ("loop", "thread", "process")
    queues = {
        name: await sqs.create_queue(name, visibility_timeout=30, max_receive_count=1)
        for name in names
    }
    ids = {name: (await sqs.send(queue, hang(1, 4)))[0] for name, queue in queues.items()}
    ledger, log = tmp_path / "ledger", tmp_path / "stderr"
    env = offload_env(
        sqs_server,
        ledger,
        timeout="1",
        visibility="30",
        **{f"commands_{name}": queue.name for name, queue in queues.items()},
    )
    async with cli([SERVICE], env, log) as worker:
        for queue in queues.values():
            await counts_become(sqs, await sqs.dlq_of(queue), (1, 0))
        await stop(worker, log)
    functions = {
        "loop": "commands_on_the_loop",
        "thread": "commands_in_thread",
        "process": "commands_in_process",
    }
    # Where each was: the await in the async one, the sleep in the thread, the process's
    # handler itself (its child is killed, so only its definition is known).
    innermost = {
        "loop": "commands_on_the_loop",
        "thread": "_obey",
        "process": "commands_in_process",
    }
    text = log.read_text()
    for name, queue in queues.items():
        [record] = (await failure_records(sqs, queue)).values()
        function = functions[name]
        assert record["exception"] == "builtins.TimeoutError"
        assert record["error"] == (
            f"handler tests.apps.offload_service.{function} of consumer {function!r} "
            "timed out after 1 s (timeout=1)"
        ), record
        where = str(record["where"])
        assert where.split(":")[0].endswith("tests/apps/offload_service.py"), record
        assert where.endswith(f" in {innermost[name]}"), record
        line = next(line for line in text.splitlines() if f"on message {ids[name]}, at " in line)
        assert "timed out after 1 s (timeout=1)" in line
        assert line.endswith(where), line


# Through `python -m aiosqsworker` (the user module `tests.apps.misbehaving`): handlers that
# raise something odd, a delete whose answer was lost, a lease lost before its delete.


async def test_a_handler_that_cancels_itself_fails_its_message_and_the_slot_goes_on(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """Three handlers raise a CancelledError of their own making, at concurrency 3.

    Naive code it catches: treating every CancelledError as the framework's (re-raising
    it): each one ends a slot for good, and after three the worker handles nothing more
    while its probes still answer 200.
    """
    queue = await sqs.create_queue(visibility_timeout=30, max_receive_count=2)
    bad = await sqs.send(queue, orders("cancel_self", range(3)))
    good = await sqs.send(queue, orders("ok", range(3, 13)))
    ledger, log = tmp_path / "ledger", tmp_path / "log"
    async with cli([APP], env_for(sqs_server.endpoint_url, queue, ledger), log) as worker:
        await eventually(
            lambda: set(ids_of(read_ledger(ledger), "done")) >= set(good),
            within=30,
            what=f"the good messages handled after the bad ones; log:\n{tail(log)}",
        )
        await counts_become(sqs, queue, (0, 0))
        worker.send_signal(signal.SIGTERM)
        code, _ = await exit_code(worker, log, within=15)
    assert code == 0, tail(log)
    records = [failure_of(m) for m in await dead_letters(sqs, queue)]
    assert sorted(str(r["message_id"]) for r in records) == sorted(bad)
    assert all(str(r["exception"]).endswith(".CancelledError") for r in records), records
    text = log.read_text()
    assert "raised asyncio.CancelledError on message" in text
    assert "not a cancellation by the framework" in text
    assert ids_of(read_ledger(ledger), "done") == dict.fromkeys(good, 1)


@pytest.mark.parametrize(("do", "expected_code"), [("exit", 3), ("interrupt", 130)])
async def test_sys_exit_or_keyboard_interrupt_in_a_handler_drains_the_worker_first(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path, do: str, expected_code: int
) -> None:
    """A handler calls sys.exit(3) (or raises KeyboardInterrupt) while others run.

    Naive code it catches: letting the exception end the process at once: the other
    running and buffered messages stay invisible for their whole 30 s timeout and no
    acknowledgement is flushed. Here the worker drains gracefully, then exits with the code
    the handler asked for: every message not done is visible again at once.
    """
    queue = await sqs.create_queue(visibility_timeout=30)
    slow = await sqs.send(queue, orders("ok", range(2), sleep=1))
    [exiting] = await sqs.send(queue, orders(do, range(2, 3)))
    ledger, log = tmp_path / "ledger", tmp_path / "log"
    env = env_for(sqs_server.endpoint_url, queue, ledger, retry_base_delay="0")
    async with cli([APP], env, log) as worker:
        code, _ = await exit_code(worker, log, within=20)
    assert code == expected_code, tail(log)
    events = read_ledger(ledger)
    assert set(ids_of(events, "done")) == set(slow), "the running handlers were not let finish"
    await counts_become(sqs, queue, (1, 0))  # the exiting one: visible again, not stranded
    (left,) = await sqs.drain(queue)
    assert left["MessageId"] == exiting
    text = log.read_text()
    assert "stopping the worker gracefully" in text
    assert ("SystemExit" if do == "exit" else "KeyboardInterrupt") in text


async def test_a_poison_base_exception_under_workers_is_dead_lettered_alone(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """One message raises a BaseException subclass; four good ones share its workers.

    Naive code it catches: letting a non-Exception crash the worker process: each crash
    releases every message that worker held, raising their receive counts, until SQS's
    redrive moves the poison message and innocent ones to the dead-letter queue without a
    failure record. Here the poison message alone is retried and dead-lettered, with its
    record, and no worker restarts.
    """
    queue = await sqs.create_queue(visibility_timeout=30, max_receive_count=3)
    [poison] = await sqs.send(queue, orders("poison", range(1)))
    [ending] = await sqs.send(queue, orders("generator_exit", range(1, 2)))
    good = await sqs.send(queue, orders("ok", range(2, 6), sleep=0.2))
    ledger, log = tmp_path / "ledger", tmp_path / "log"
    env = env_for(sqs_server.endpoint_url, queue, ledger, retry_base_delay="0")
    async with cli([APP, "--workers", "2"], env, log) as supervisor:
        await counts_become(sqs, await sqs.dlq_of(queue), (2, 0))
        await counts_become(sqs, queue, (0, 0))
        supervisor.send_signal(signal.SIGTERM)
        code, _ = await exit_code(supervisor, log, within=20)
    assert code == 0, tail(log)
    records = [failure_of(m) for m in await dead_letters(sqs, queue)]
    letters = {str(r["message_id"]): r for r in records}
    assert set(letters) == {poison, ending}
    assert letters[poison]["exception"] == "tests.apps.misbehaving.Poison"
    assert str(letters[ending]["exception"]).endswith("GeneratorExit")
    assert ids_of(read_ledger(ledger), "done") == dict.fromkeys(good, 1)
    assert "died unexpectedly" not in log.read_text()


async def test_a_delete_whose_answer_was_lost_is_reported_as_unknown_not_as_failed(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """The first DeleteMessageBatch reaches the server, but its answer is lost (reset).

    Naive code it catches: reporting the retry's refusal (the handles are gone, because the
    first attempt deleted them) as "could not delete ... SQS will deliver it again", and
    counting the messages as succeeded and failed alike. Here the log says the outcome is
    unknown, and the final summary counts what really happened.
    """
    queue = await sqs.create_queue(visibility_timeout=30)
    ids = await sqs.send(queue, orders("ok", range(3)))
    ledger, log = tmp_path / "ledger", tmp_path / "log"
    async with FaultProxy(sqs_server.endpoint_url) as proxy:
        proxy.inject("DeleteMessageBatch", "lose_answer")
        env = env_for(proxy.url, queue, ledger, wait_time="1")
        async with cli([APP], env, log) as worker:
            await counts_become(sqs, queue, (0, 0))
            await eventually(lambda: proxy.requests["DeleteMessageBatch"] >= 2, within=10)
            worker.send_signal(signal.SIGTERM)
            code, _ = await exit_code(worker, log, within=15)
    assert code == 0, tail(log)
    assert ids_of(read_ledger(ledger), "done") == dict.fromkeys(ids, 1)
    text = log.read_text()
    assert "SQS will deliver it again" not in text
    if "outcome unknown" not in text:
        # A server that accepts a deleted message's handle again confirms the retry.
        assert "3 deleted" in text, tail(log)


async def test_a_success_whose_lease_was_lost_before_its_delete_is_not_counted_as_one(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """Three handlers succeed; SQS refuses one delete because the lease ran out meanwhile.

    Naive code it catches: counting `succeeded` when the handler returns: the worker's
    summary would say 3 succeeded although one message was never deleted and will come back.
    Here it says what happened: 2 succeeded, 2 deleted, 1 lease lost.
    """
    queue = await sqs.create_queue(visibility_timeout=2)
    await sqs.send(queue, orders("ok", range(3)))
    ledger, log = tmp_path / "ledger", tmp_path / "log"
    async with RefusingFirstDelete(sqs_server.endpoint_url) as proxy:
        env = env_for(proxy.url, queue, ledger, wait_time="1")
        async with cli([APP], env, log) as worker:
            await eventually(lambda: len(ids_of(read_ledger(ledger), "done")) >= 3, within=20)
            await eventually(lambda: proxy.refused, within=10)
            await logged(log, "before its delete was sent")
            worker.send_signal(signal.SIGTERM)
            code, _ = await exit_code(worker, log, within=15)
    assert code == 0, tail(log)
    summary = next(line for line in log.read_text().splitlines() if "stopped:" in line)
    assert "2 succeeded" in summary, summary
    assert "1 lease lost" in summary, summary


# A delete batch whose response lists failed entries.


@pytest.mark.parametrize("client", ["fast", "botocore", "aiohttp"])
async def test_failed_entries_of_a_delete_batch_are_counted_and_the_rest_deleted(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App], client: str
) -> None:
    """Two of six messages leave the queue while their handlers run: one delete batch fails
    for them and succeeds for the other four.

    The two are made visible again by the test's own client (as when a lease runs out) and
    the queue's redrive policy (maxReceiveCount 1) moves them to the dead-letter queue at
    the next receive. The worker's single DeleteMessageBatch for all six then comes back
    with the two under ``Failed`` (ReceiptHandleIsInvalid): counted as lost leases (their
    handlers succeeded, but the messages were no longer ours to delete), not as successes,
    not sent again, no crash; the worker goes on handling new messages.
    """
    # A long visibility timeout: after the first extension, none is due while the test runs.
    queue = await sqs.create_queue(visibility_timeout=60, max_receive_count=1)
    dlq = await sqs.dlq_of(queue)
    total = 6
    ids = await sqs.send(queue, (str(n) for n in range(total)))
    release = anyio.Event()
    running: dict[str, Message] = {}
    handled: Counter[str] = Counter()
    proxy = BatchRecorder(sqs_server.endpoint_url)
    async with proxy:
        app = make_app(endpoint_url=proxy.url, client=client)

        # The linger gathers the six deletes into one batch, with room for a busy machine.
        @app.consumer(queue.name, wait_time=1, ack_linger=2.0)
        async def handle(message: Message) -> None:
            handled[message.message_id] += 1
            if message.body.isdigit():
                running[message.message_id] = message
                await release.wait()

        async with app:
            await eventually(lambda: len(running) == total, within=10)
            # What an idle consumer's watch poll brought is extended at once: let that
            # extension happen and its calls end first, or one made after a victim is taken
            # hides it again (or, refused, loses its lease here).
            await eventually(
                lambda: (
                    stats_of(app).leases_extended > 0
                    and proxy.requests["ChangeMessageVisibilityBatch"]
                    == len(proxy.of("ChangeMessageVisibilityBatch"))
                ),
                within=10,
            )
            victims = [running[ids[1]], running[ids[4]]]
            for victim in victims:
                await sqs.client.change_message_visibility(
                    QueueUrl=queue.url, ReceiptHandle=victim.receipt_handle, VisibilityTimeout=0
                )
            # Any receive now moves them to the dead-letter queue (received once already).
            response = await sqs.client.receive_message(QueueUrl=queue.url, WaitTimeSeconds=0)
            assert not response.get("Messages")
            assert await sqs.counts(queue) == (0, total - 2)
            assert await sqs.counts(dlq) == (2, 0)
            release.set()
            await eventually(
                lambda: stats_of(app).deleted + stats_of(app).leases_lost == total, within=10
            )
            await anyio.sleep(1.0)  # room for a retry loop to show itself
            calls_after_failure = proxy.requests["DeleteMessageBatch"]
            [later] = await sqs.send(queue, ["later"])
            await eventually(
                lambda: stats_of(app).deleted + stats_of(app).leases_lost == total + 1,
                within=10,
            )
            stats = stats_of(app)
            assert app.state is WorkerState.RUNNING

    [batch, *rest] = proxy.of("DeleteMessageBatch")
    assert len(batch.entries) == total, "the six deletes did not share one batch"
    by_entry = {entry["Id"]: entry["ReceiptHandle"] for entry in batch.entries}
    failed = {by_entry[f["Id"]]: f["Code"] for f in batch.answer["Failed"]}
    assert failed == {victim.receipt_handle: "ReceiptHandleIsInvalid" for victim in victims}
    assert len(batch.answer["Successful"]) == total - 2
    assert calls_after_failure == 1
    assert [len(call.entries) for call in rest] == [1]
    assert handled == Counter([*ids, later])
    assert (stats.deleted, stats.leases_lost, stats.delete_failures) == (total - 1, 2, 0)
    assert stats.succeeded == total - 1  # what SQS confirmed deleted, not every return
    assert await sqs.counts(queue) == (0, 0)
    assert sorted(m["Body"] for m in await sqs.drain_with_attributes(dlq)) == ["1", "4"]


# Faults: a lease lost to an extension, deletes failing (a FaultProxy between the worker and
# the server).


async def test_a_lost_lease_cancels_its_handler(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """Extensions fail until the message times out, and another worker takes and deletes it.

    When the server then refuses the receipt handle, the handler is cancelled, the loss is
    counted, and the worker sends nothing more for the message. (The other worker deletes
    the message, because moto accepts any handle a message ever had for as long as the
    message exists; ministack refuses a superseded handle at once.)

    Naive change it catches: a lost lease that is only logged (the handler is not told and
    runs on, its message now someone else's).
    """
    queue = await sqs.create_queue()
    cancelled = anyio.Event()
    started = anyio.Event()
    async with FaultProxy(sqs_server.endpoint_url) as proxy:
        proxy.always("ChangeMessageVisibilityBatch", "status", status=500)
        app = make_app(endpoint_url=proxy.url)

        # Capacity 1: while the handler runs, the worker does not poll (and cannot take the
        # message back itself).
        @app.consumer(queue.name, concurrency=1, prefetch=0, wait_time=1, visibility_timeout=2)
        async def handle(message: Message) -> None:
            started.set()
            try:
                await anyio.sleep(60)
            except anyio.get_cancelled_exc_class():
                cancelled.set()
                raise

        async with app:
            await sqs.send(queue, bodies(1))
            with anyio.fail_after(20):
                await started.wait()
            stolen: list[dict[str, Any]] = []
            with anyio.fail_after(20):
                while not stolen:
                    response = await sqs.client.receive_message(
                        QueueUrl=queue.url, WaitTimeSeconds=1, VisibilityTimeout=60
                    )
                    stolen = response.get("Messages", [])
            await sqs.client.delete_message(
                QueueUrl=queue.url, ReceiptHandle=stolen[0]["ReceiptHandle"]
            )
            proxy.clear()
            with anyio.fail_after(20):
                await cancelled.wait()
            await eventually(lambda: stats_of(app).leases_lost == 1)
            await anyio.sleep(0.5)
            stats = stats_of(app)
    assert stats.succeeded == 0
    assert stats.failed == 0
    assert stats.deleted + stats.delete_failures + stats.released == 0  # nothing sent


async def test_failed_deletes_are_retried(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """DeleteMessageBatch fails with 500 and throttling several times in a row: retried.

    Naive change it catches: an acker that gives up a batch on the first error (messages
    come back and run twice).
    """
    queue = await sqs.create_queue()
    seen: Counter[str] = Counter()
    async with FaultProxy(sqs_server.endpoint_url) as proxy:
        proxy.inject("DeleteMessageBatch", "status", status=500, times=2)
        proxy.inject("DeleteMessageBatch", "throttle", times=2)
        app = make_app(endpoint_url=proxy.url)

        @app.consumer(queue.name, wait_time=1, ack_linger=0.2)
        async def handle(message: Message) -> None:
            seen[message.message_id] += 1

        async with app:
            ids = await sqs.send(queue, bodies(10))
            await eventually(lambda: stats_of(app).deleted == 10, within=30)
            stats = stats_of(app)
    assert proxy.faults_applied["DeleteMessageBatch:status"] == 2
    assert proxy.faults_applied["DeleteMessageBatch:throttle"] == 2
    assert stats.delete_failures == 0
    assert set(seen) == set(ids)
    assert max(seen.values()) == 1
    assert await sqs.counts(queue) == (0, 0)


async def test_partly_failed_delete_batches(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """A batch whose ``Failed`` list names one entry: retried if transient, else given up.

    A transient failure (InternalError, not the sender's fault) is sent again and the
    message deleted: handled once. A refused receipt handle is not sent again (it will not
    get better); the refusal is counted as a lost lease, and the message, still on the
    server, comes back after its visibility timeout and is handled and deleted a second
    time: the one
    duplicate, explained by the refused delete.

    Naive changes it catches: an acker that ignores ``Failed`` in a 200 response (the
    transiently failed message is handled twice); one that retries every failed entry (the
    refused handle is sent up to six times).
    """
    queue = await sqs.create_queue(visibility_timeout=2)
    seen: list[tuple[str, int]] = []
    proxy = PartialFailureProxy(sqs_server.endpoint_url)
    async with proxy:
        app = make_app(endpoint_url=proxy.url)

        @app.consumer(queue.name, wait_time=1, ack_linger=0.3)
        async def handle(message: Message) -> None:
            seen.append((message.message_id, message.receive_count))

        async with app:
            proxy.fail_next.append(("InternalError", False))
            first = await sqs.send(queue, bodies(5))
            await eventually(lambda: stats_of(app).deleted == 5, within=20)
            await anyio.sleep(2.5)  # a message whose delete was dropped would be back now
            assert sorted(m for m, _ in seen) == sorted(first), "transient failure not retried"
            assert stats_of(app).delete_failures == 0

            proxy.fail_next.append(("ReceiptHandleIsInvalid", True))
            handles_before = len(proxy.deleted_handles)
            second = await sqs.send(queue, bodies(5, start=5))
            await eventually(lambda: stats_of(app).leases_lost == 1, within=20)
            refused = proxy.deleted_handles[handles_before]
            await eventually(lambda: stats_of(app).deleted == 10, within=20)
            stats = stats_of(app)
    assert proxy.deleted_handles.count(refused) == 1, "a refused handle was sent again"
    handled = Counter(m for m, _ in seen)
    assert set(handled) == set(first) | set(second)
    twice = [m for m, count in handled.items() if count == 2]
    assert len(twice) == 1, handled
    assert max(handled.values()) == 2, handled
    assert (twice[0], 2) in seen  # the second time, it was a second receive
    assert (stats.leases_lost, stats.delete_failures) == (1, 0)
    assert await sqs.counts(queue) == (0, 0)


async def test_a_delete_with_a_stale_receipt_handle(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """A handler finishes after its message was received by someone else: a stale delete.

    Servers differ here (so does SQS's own documentation): ministack refuses the handle
    (``ReceiptHandleIsInvalid`` under ``Failed``), moto deletes the message anyway. Either
    way: no crash, no retry loop, the answer counted, and the worker goes on with the next
    message.

    Naive change it catches (on a server that refuses stale handles): an acker that retries
    refused receipt handles.
    """
    queue = await sqs.create_queue()
    release = anyio.Event()
    seen: list[str] = []
    async with FaultProxy(sqs_server.endpoint_url) as proxy:
        proxy.always("ChangeMessageVisibilityBatch", "status", status=500)
        app = make_app(endpoint_url=proxy.url)

        @app.consumer(queue.name, concurrency=1, prefetch=0, wait_time=1, visibility_timeout=2)
        async def handle(message: Message) -> None:
            seen.append(message.message_id)
            if len(seen) == 1:
                await release.wait()

        async with app:
            [stale, *_] = await sqs.send(queue, bodies(1))
            await eventually(lambda: len(seen) == 1, within=20)
            stolen: list[dict[str, Any]] = []
            with anyio.fail_after(20):
                while not stolen:
                    response = await sqs.client.receive_message(
                        QueueUrl=queue.url, WaitTimeSeconds=1, VisibilityTimeout=60
                    )
                    stolen = response.get("Messages", [])
            deletes_before = proxy.requests["DeleteMessageBatch"]
            release.set()  # the handler ends before the lease keeper notices the loss
            await eventually(
                lambda: stats_of(app).deleted + stats_of(app).leases_lost == 1, within=20
            )
            await anyio.sleep(1.0)  # room for a retry loop to show itself
            deletes = proxy.requests["DeleteMessageBatch"] - deletes_before
            proxy.clear()
            [fresh] = await sqs.send(queue, bodies(1, start=1))
            await eventually(lambda: fresh in seen, within=20)
            assert app.state is WorkerState.RUNNING
            stats = stats_of(app)
    assert stolen[0]["MessageId"] == stale
    assert deletes == 1, "the stale delete was sent again"
    if server_kind() == "ministack":
        # ministack refuses a receipt handle that is no longer the latest: a lost lease.
        assert (stats.leases_lost, stats.delete_failures) == (1, 0)
        assert await sqs.counts(queue) == (0, 1)
    else:
        # moto accepts any handle it ever issued, and deletes the message.
        assert (stats.leases_lost, stats.delete_failures) == (0, 0)
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
