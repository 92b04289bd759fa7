"""Servers that differ from SQS: the framework notices, says so once, and loses nothing.

A `FaultProxy` whose `forward` changes the answers plays the server that differs, in front
of the suite's own server, so that each scenario runs against moto and ministack alike.
Each docstring names the naive code the test exists to catch.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable

import anyio
import pytest

from aiosqsworker import App, Message, Reject
from aiosqsworker._sqs.redrive import FAILURE_ATTRIBUTE
from aiosqsworker.testing import Answer, FaultProxy, LocalSQSServer, ProxiedRequest

from .kit import SQSKit, eventually, eventually_async

NO_COUNT_WARNING = "returns no ApproximateReceiveCount"


class UncountedProxy(FaultProxy):
    """Answers ReceiveMessage as local-aws-sqs does: without ApproximateReceiveCount."""

    async def forward(self, request: ProxiedRequest) -> Answer:
        answer = await super().forward(request)
        if request.action != "ReceiveMessage" or answer.status != 200:
            return answer
        received = answer.json()
        for message in received.get("Messages", []):
            message.get("Attributes", {}).pop("ApproximateReceiveCount", None)
        return Answer(answer.status, answer.reason, answer.headers, json.dumps(received).encode())


@pytest.mark.parametrize("server_counts", [True, False], ids=["counts", "no-counts"])
async def test_a_server_without_receive_counts_is_named_once_and_left_to_its_redrive(
    sqs: SQSKit,
    sqs_server: LocalSQSServer,
    make_app: Callable[..., App],
    caplog: pytest.LogCaptureFixture,
    server_counts: bool,
) -> None:
    """Without ApproximateReceiveCount every receive looks like the first.

    Catches `Message.receive_count` defaulting to 1 in silence: the worker then believes it
    dead-letters failures with a record while the server's redrive moves them without one,
    writes ``"attempts": 1`` into the record of a rejected message, and says nothing. With
    the counts, the framework dead-letters on the last attempt itself, with its record.
    """
    caplog.set_level(logging.WARNING, logger="aiosqsworker")
    queue = await sqs.create_queue(max_receive_count=2, visibility_timeout=5)
    dlq = await sqs.dlq_of(queue)
    await sqs.send(queue, ["poison", "reject", "a", "b", "c"])
    calls: Counter[str] = Counter()

    proxy_kind = FaultProxy if server_counts else UncountedProxy
    async with proxy_kind(sqs_server.endpoint_url) as proxy:
        app = make_app(endpoint_url=proxy.url)

        @app.consumer(queue.name, concurrency=1, wait_time=1, retry_base_delay=0, retry_max_delay=0)
        async def handle(message: Message) -> None:
            calls[message.body] += 1
            if message.body == "poison":
                raise ValueError("cannot digest poison")
            if message.body == "reject":
                raise Reject("no such customer")

        async def both_dead_lettered() -> bool:
            return (await sqs.counts(dlq))[0] == 2

        with anyio.fail_after(40):
            async with app:
                await eventually(lambda: app.statistics()["handle"].succeeded == 3, within=30)
                await eventually_async(both_dead_lettered, within=30, every=0.2)
        stats = app.statistics()["handle"]

    letters = {letter["Body"]: letter for letter in await sqs.drain_with_attributes(dlq)}
    assert set(letters) == {"poison", "reject"}
    assert await sqs.counts(queue) == (0, 0)
    rejected_record = json.loads(
        letters["reject"]["MessageAttributes"][FAILURE_ATTRIBUTE]["StringValue"]
    )
    assert rejected_record["exception"] == "aiosqsworker.Reject"
    warnings = [r for r in caplog.records if NO_COUNT_WARNING in r.getMessage()]
    assert calls["poison"] == 2  # the first receive, and the last the redrive policy allows
    if server_counts:
        assert not warnings
        assert "to the dead-letter queue after 1 attempt (aiosqsworker.Reject:" in caplog.text
        assert rejected_record["attempts"] == 1
        assert FAILURE_ATTRIBUTE in letters["poison"].get("MessageAttributes", {})
        assert stats.dead_lettered == 2
    else:
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert rejected_record["attempts"] is None  # not a made-up 1
        # Moved by the server's redrive, without a record: the framework never claimed it.
        assert FAILURE_ATTRIBUTE not in letters["poison"].get("MessageAttributes", {})
        assert stats.dead_lettered == 1
