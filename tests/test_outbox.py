"""Send on success: a handler's outbox is sent only once it succeeded, before its delete."""

from __future__ import annotations

import json
from collections.abc import Callable

import anyio
import pytest

from aiosqsworker import App, Message
from aiosqsworker._errors import ConfigurationError
from aiosqsworker.testing import (
    Answer,
    FaultProxy,
    LocalSQSServer,
    ProxiedRequest,
    call_consumer,
    make_message,
)

from .kit import SQSKit, eventually


class RecordingProxy(FaultProxy):
    """Passes everything on, keeping the order of sends and deletes; fails the SendMessageBatch
    calls numbered in `refuse` (1 for the first) with an entry SQS refused for good."""

    def __init__(self, upstream: str, *, refuse: tuple[int, ...] = ()) -> None:
        super().__init__(upstream)
        self.calls: list[tuple[str, list[str]]] = []  # (action, bodies or receipt handles)
        self._refuse = refuse
        self._sends = 0

    async def forward(self, request: ProxiedRequest) -> Answer:
        if request.action == "SendMessageBatch":
            self._sends += 1
            entries = request.json()["Entries"]
            if self._sends in self._refuse:
                failed = [
                    {"Id": e["Id"], "Code": "InvalidParameterValue", "SenderFault": True}
                    for e in entries
                ]
                return Answer.of_json({"Successful": [], "Failed": failed})
            self.calls.append((request.action, [e["MessageBody"] for e in entries]))
        elif request.action == "DeleteMessageBatch":
            entries = request.json()["Entries"]
            self.calls.append((request.action, [e["ReceiptHandle"] for e in entries]))
        return await super().forward(request)


async def test_a_failed_attempt_sends_nothing_and_a_successful_one_sends_before_its_delete(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """The first attempt buffers two sends and fails: nothing reaches the target. The retry
    buffers the same two and succeeds: both are sent, then the message is deleted.

    Naive code it catches: sends made as the handler calls them (the failed attempt's two
    arrive, four in all); sends made after the delete is queued (a crash between the two
    loses them); a successful attempt's sends dropped.
    """
    source, target = await sqs.create_queue("source"), await sqs.create_queue("target")
    attempts: list[int] = []
    failed = anyio.Event()
    async with RecordingProxy(sqs_server.endpoint_url) as proxy:
        app = make_app(endpoint_url=proxy.url)

        @app.consumer(source.name, name="orders", wait_time=1, outbox=True)
        async def handle(message: Message) -> None:
            attempts.append(message.receive_count)
            message.outbox.send(target.name, {"invoice": 1})
            message.outbox.send(target.name, {"email": 1})
            if len(attempts) == 1:
                failed.set()
                raise RuntimeError("fails after two sends")

        async with app:
            await sqs.send(source, ["order 1"])
            with anyio.fail_after(10):
                await failed.wait()
            await anyio.sleep(0.5)
            assert await sqs.counts(target) == (0, 0)
            await eventually(lambda: app.statistics()["orders"].succeeded == 1)
    assert attempts == [1, 2]
    sent = sorted(json.dumps(json.loads(m["Body"])) for m in await sqs.drain(target))
    assert sent == ['{"email": 1}', '{"invoice": 1}']
    actions = [action for action, _ in proxy.calls]
    assert actions == ["SendMessageBatch", "SendMessageBatch", "DeleteMessageBatch"]
    assert proxy.calls[0][1] == ['{"invoice": 1}']  # in the order the handler buffered them


async def test_a_retried_outbox_is_deduplicated_on_a_fifo_target(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """The first send reaches the FIFO target, the second is refused: the message is
    retried, not deleted, and its retry sends both again with the same deduplication ids,
    so the target holds each once.

    Naive code it catches: a random (or missing) deduplication id (the first send arrives
    twice); a message deleted although its outbox failed (the second send never arrives).
    """
    source = await sqs.create_queue("source")
    target = await sqs.create_fifo_queue("target")
    attempts: list[str] = []
    async with RecordingProxy(sqs_server.endpoint_url, refuse=(2,)) as proxy:
        app = make_app(endpoint_url=proxy.url)

        @app.consumer(source.name, name="orders", wait_time=1, outbox=True, retry_base_delay=0)
        async def handle(message: Message) -> None:
            attempts.append(message.message_id)
            message.outbox.send(target.name, "first", group_id="g")
            message.outbox.send(target.name, "second", group_id="g")

        async with app:
            await sqs.send(source, ["order 1"])
            await eventually(lambda: app.statistics()["orders"].succeeded == 1)
            stats = app.statistics()["orders"]
    assert len(attempts) == 2
    assert stats.failed == 1
    received = await sqs.drain(target)
    assert [m["Body"] for m in received] == ["first", "second"]
    message_id = attempts[0]
    assert [m["Attributes"]["MessageDeduplicationId"] for m in received] == [
        f"{message_id}-0",
        f"{message_id}-1",
    ]


def test_the_outbox_is_there_only_for_a_consumer_that_asked_for_it() -> None:
    with pytest.raises(RuntimeError, match=r"outbox=True"):
        make_message("x").outbox.send("q", "body")
    app = App()
    with pytest.raises(ConfigurationError, match="not to batch=True"):
        app.consumer("q", batch=True, outbox=True)


def test_a_fifo_send_without_a_group_is_refused_when_buffered() -> None:
    """A mistake in a send is the handler's own error, where it made it, not a failure
    after the handler returned."""
    from aiosqsworker.outbox import Outbox

    outbox = Outbox(make_message("x"))
    with pytest.raises(ConfigurationError, match="group_id"):
        outbox.send("target.fifo", "body")
    assert len(outbox) == 0


def test_a_deduplication_id_for_a_standard_queue_is_refused_when_buffered() -> None:
    """The same for a deduplication id given for a standard queue: refused at the send,
    not when the outbox is sent after the handler succeeded (a failure then retries the
    message for a mistake in the code). Naive change it catches: checking the send's
    group and delay when buffered but leaving its deduplication id to the flush."""
    from aiosqsworker.outbox import Outbox

    outbox = Outbox(make_message("x"))
    with pytest.raises(ConfigurationError, match=r"deduplication_id=\.\.\. is for FIFO queues"):
        outbox.send("invoices", "body", deduplication_id="invoice-7")
    assert len(outbox) == 0


async def test_call_consumer_reports_what_the_outbox_sent() -> None:
    """A user's unit test sees the sends of a successful call, and none of a failed one."""
    app = App()

    @app.consumer("orders", outbox=True)
    async def handle(message: Message) -> None:
        message.outbox.send("invoices.fifo", message.body, group_id="g")
        if message.body == "fail":
            raise RuntimeError("after its send")

    message = make_message("ok")
    ok = await call_consumer(handle, message, app=app)
    assert ok.action == "ack", ok.error
    assert ok.sent == (
        (
            "invoices.fifo",
            "ok",
            {"group_id": "g", "deduplication_id": f"{message.message_id}-0", "attributes": None},
        ),
    )
    failed = await call_consumer(handle, make_message("fail"), app=app)
    assert failed.action == "retry"
    assert failed.sent == ()
