"""Bugs other SQS consumers shipped, checked here: what holds, kept holding by a test.

- Two receipts of one message deleted in one batch (a duplicate delivery whose two copies
  finish together) failed the whole batch with ``BatchEntryIdsNotDistinct`` in Spring Cloud
  AWS (#1634), whose entry ids were the message ids.
- An exception in an interceptor or an observation hook stopped polling (sqs-consumer #771)
  or acknowledgement (Spring Cloud AWS #1430).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Literal

import anyio
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from aiosqsworker import App, Message
from aiosqsworker.testing import Answer, FaultProxy, LocalSQSServer, ProxiedRequest
from aiosqsworker.tracing import opentelemetry_middleware

from .kit import REGION, SQSKit, eventually

Client = Literal["fast", "botocore"]
CLIENTS = [pytest.param("fast", id="fast"), pytest.param("botocore", id="botocore")]


class DeleteRecorder(FaultProxy):
    """Forwards everything; keeps each DeleteMessageBatch's entries and its answer."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.deletes: list[tuple[list[dict[str, Any]], dict[str, Any]]] = []

    async def forward(self, request: ProxiedRequest) -> Answer:
        answer = await super().forward(request)
        if request.action == "DeleteMessageBatch":
            self.deletes.append((request.json()["Entries"], answer.json()))
        return answer


@pytest.mark.parametrize("client", CLIENTS)
async def test_two_receipts_of_one_message_in_one_delete_batch(
    client: Client, sqs: SQSKit, sqs_server: LocalSQSServer
) -> None:
    """A message delivered twice to one worker (its first copy made visible again while
    its handler runs); both copies finish together and are deleted in one batch call.

    The batch call succeeds as a whole and the message is gone; the stale receipt's entry is
    at most refused on its own (counted as a lost lease, not a delete failure).

    Naive code it catches: entry ids taken from the message id (Spring Cloud AWS #1634):
    two entries with one id, and SQS refuses the whole batch with BatchEntryIdsNotDistinct.
    """
    queue = await sqs.create_queue()
    [message_id] = await sqs.send(queue, ['{"n": 1}'])
    copies: list[str] = []
    both_running = anyio.Event()
    async with DeleteRecorder(sqs_server.endpoint_url) as proxy:
        app = App(region=REGION, endpoint_url=proxy.url, client=client, shutdown_timeout=5)

        @app.consumer(queue.name, concurrency=2, wait_time=1)
        async def handle(message: Message) -> None:
            copies.append(message.receipt_handle)
            if len(copies) == 1:
                # A first poll asks for a short visibility, which the lease keeper extends at
                # once: let it, or it would extend a handle that is stale by then.
                with anyio.move_on_after(5):
                    while not app.statistics()["handle"].leases_extended:  # noqa: ASYNC110
                        await anyio.sleep(0.05)
                # A duplicate delivery: the first copy visible again while it runs.
                await sqs.sqs.change_visibility_batch(queue.url, [("0", message.receipt_handle, 0)])
            else:
                both_running.set()
            with anyio.fail_after(20):
                await both_running.wait()

        def both_settled() -> bool:
            stats = app.statistics()["handle"]
            return stats.deleted + stats.leases_lost >= 2

        async with app:
            await eventually(both_settled, within=30)
        stats = app.statistics()["handle"]
    assert len(copies) == 2
    assert copies[0] != copies[1]
    together = [
        (entries, answer)
        for entries, answer in proxy.deletes
        if {entry["ReceiptHandle"] for entry in entries} == set(copies)
    ]
    assert together, f"the two copies were not deleted in one call: {proxy.deletes}"
    entries, answer = together[0]
    assert len({entry["Id"] for entry in entries}) == len(entries)
    # The current receipt deletes the message. The stale one is either accepted (moto) or
    # refused on its own as no longer valid (ministack, as SQS may): never the whole batch.
    id_of = {entry["ReceiptHandle"]: entry["Id"] for entry in entries}
    assert id_of[copies[1]] in {entry["Id"] for entry in answer.get("Successful", [])}
    assert [f["Code"] for f in answer.get("Failed", [])] in ([], ["ReceiptHandleIsInvalid"])
    assert stats.delete_failures == 0
    assert (stats.deleted, stats.leases_lost) in ((2, 0), (1, 1))
    assert await sqs.counts(queue) == (0, 0)
    assert message_id  # one message, two receipts


class FailingExporter(SpanExporter):
    """An exporter whose backend is down, and a processor that lets that surface."""

    def export(self, spans: Any) -> SpanExportResult:
        raise ConnectionError("collector unreachable")


class RaisingProcessor(SimpleSpanProcessor):
    """Span processors should not raise; a broken one does, at every span's start and end."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        raise RuntimeError("span processor broken at start")

    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("span processor broken at end")


async def test_errors_in_middleware_and_tracing_hooks_never_stop_polling_or_leases(
    sqs: SQSKit, sqs_server: LocalSQSServer
) -> None:
    """Middleware that raises before or after the handler on some messages, and a tracer
    whose span processor raises at every span: 30 messages, one handler of which outlives
    its 4 s visibility timeout.

    Polling goes on (every message is handled), the long handler's lease is extended (it
    runs once), a message whose middleware raised is retried and then handled; a broken
    tracer does not decide a message's outcome (its handler ran once, it is deleted).

    Naive code it catches: an exception of a middleware or hook escaping the handler slot
    (the consumer's task group fails: polling and lease extension stop, sqs-consumer #771);
    a tracing middleware whose span errors fail a message that its handler handled (it is
    handled again and again, Spring Cloud AWS #1430).
    """
    queue = await sqs.create_queue(visibility_timeout=4)
    ids = await sqs.send(queue, [json.dumps({"n": n}) for n in range(30)])
    slow = ids[0]
    raise_before = set(ids[1:4])
    raise_after = set(ids[4:7])
    calls: Counter[str] = Counter()
    handled: Counter[str] = Counter()

    async def flaky_metrics(message: Any, call_next: Any) -> object:
        calls[message.message_id] += 1
        first_time = calls[message.message_id] == 1
        if first_time and message.message_id in raise_before:
            raise RuntimeError("metrics hook failed before the handler")
        result = await call_next(message)
        if first_time and message.message_id in raise_after:
            raise RuntimeError("metrics hook failed after the handler")
        return result

    provider = TracerProvider()
    provider.add_span_processor(RaisingProcessor(FailingExporter()))
    app = App(
        region=REGION,
        endpoint_url=sqs_server.endpoint_url,
        shutdown_timeout=10,
        middleware=[opentelemetry_middleware(tracer_provider=provider), flaky_metrics],
    )

    @app.consumer(queue.name, concurrency=5, wait_time=1, retry_base_delay=0, retry_max_delay=0)
    async def handle(message: Message) -> None:
        handled[message.message_id] += 1
        if message.message_id == slow:
            await anyio.sleep(7)

    async with app:
        await eventually(lambda: app.statistics()["handle"].deleted >= 30, within=60)
        stats = app.statistics()["handle"]
    assert set(handled) == set(ids)
    assert handled[slow] == 1
    assert stats.leases_extended >= 1
    assert stats.leases_lost == 0
    # Raised before the handler: it never ran the first time. After: it ran twice.
    assert all(handled[i] == 1 for i in raise_before)
    assert all(handled[i] == 2 for i in raise_after)
    assert [i for i in ids if i not in raise_after and handled[i] != 1] == []
    assert stats.failed == len(raise_before) + len(raise_after)
    assert await sqs.counts(queue) == (0, 0)
