"""Helpers for testing code built on aiosqsworker.

Your service's own App, its consumers unchanged, runs against SQS in memory with
`in_memory`; `settled()` waits until everything sent has been handled:

```python
async with in_memory(app) as test:
    await app.send("orders", {"id": 1})
    await test.settled()
```

Without any server, `call_consumer` runs a consumer on a fabricated message (`make_message`)
and says what the framework would do with it: acknowledge it, retry it after which delay,
dead-letter it or release it:

```python
outcome = await call_consumer(handle_order, make_message({"id": 1}))
assert outcome.action == "ack"
```

Without a server process, `MemorySQS` is SQS in memory behind the framework's client
protocol: ``App(client=MemorySQS())`` runs consumers end to end in milliseconds, with SQS's
visibility, redrive, FIFO and batch rules, on the event loop's clock or a `ManualClock`.

Against a real SQS-protocol server, `run_until_empty` runs an app until its queues are empty
("burst" mode), so a test can send, run and assert deterministically. The pytest plugin
(``aiosqsworker.pytest_plugin``, loaded automatically) provides the fixtures
``local_sqs_server`` and ``sqs_queue``.

`LocalSQSServer` runs the project's local SQS server (the one the command line's
``local-server`` runs), moto's with SQS's delivery guarantees (install the ``server`` extra:
``pip install 'aiosqsworker[server]'``), in a subprocess on a free loopback port;
`FaultProxy` (`testing.faultproxy`) sits between a client and it to inject faults.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import anyio

from .._app import App
from .._config import Breaker, ConsumerConfig
from .._consumer.breaker import CircuitBreaker
from .._consumer.call import handler_call
from .._consumer.deadletter import DeadLetterQueue
from .._consumer.outcomes import (
    Outcome,
    batch_failures,
    decide,
    retry_delay_for,
)
from .._consumer.procpool import ProcessPool
from .._consumer.slots import cancelled_by_framework
from .._localsqs import LOCAL_CREDENTIALS, LocalSQSServer, free_port
from .._message import Message
from .._producer import SendOptions, encode_attributes, encode_body
from .._registry import ConsumerSpec, default_registry
from .._run.burst import wait_until_empty
from .clock import Clock, ManualClock, RealClock
from .faultproxy import Answer, FaultProxy, ProxiedRequest
from .harness import InMemoryApp, in_memory
from .memory import MemorySQS, QueueCounts, QueuedMessage

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "LOCAL_CREDENTIALS",
    "Answer",
    "Clock",
    "FaultProxy",
    "HandlerOutcome",
    "InMemoryApp",
    "LocalSQSServer",
    "ManualClock",
    "MemorySQS",
    "ProxiedRequest",
    "QueueCounts",
    "QueuedMessage",
    "RealClock",
    "call_consumer",
    "free_port",
    "in_memory",
    "make_message",
    "run_until_empty",
]


def make_message(
    body: object = "",
    *,
    message_id: str | None = None,
    receive_count: int = 1,
    attributes: Mapping[str, str] | None = None,
    message_attributes: Mapping[str, object] | None = None,
    group_id: str | None = None,
    queue: str = "https://sqs.us-east-1.amazonaws.com/123456789012/test",
) -> Message:
    """A Message as a consumer would receive it; `body` is encoded as `Producer.send` does."""
    system = {
        "ApproximateReceiveCount": str(receive_count),
        "SentTimestamp": str(int(time.time() * 1000)),
        **(attributes or {}),
    }
    if group_id is not None:
        system["MessageGroupId"] = group_id
    return Message(
        message_id=message_id or str(uuid.uuid4()),
        body=encode_body(body),
        receipt_handle=f"test-receipt-{uuid.uuid4()}",
        queue=queue,
        attributes=system,
        message_attributes=encode_attributes(message_attributes),
    )


@dataclass(frozen=True)
class HandlerOutcome:
    """What the framework would do with a message after its handler ran.

    Attributes:
        action: "ack" (deleted), "retry" (visible again later), "dead-letter" (moved to the
            dead-letter queue with a failure record, then deleted) or "release" (visible
            again at once).
        delay: for a retry, the most seconds before the message is visible again (a failure
            back-off is jittered between `min_delay` and `delay`; a `Retry` is exact).
        min_delay: the least such delay.
        error: the exception the handler raised, if any.
        returned: what the handler returned.
        sent: for a consumer with ``outbox=True``, what its outbox sent once the handler
            succeeded: ``(queue, body, options)`` in order (nothing after a failure).
    """

    action: Literal["ack", "retry", "dead-letter", "release"]
    delay: int | None = None
    min_delay: int | None = None
    error: BaseException | None = None
    returned: object = None
    sent: tuple[tuple[str, object, dict[str, object]], ...] = ()


def _spec_of(target: object, app: App | None) -> ConsumerSpec:
    """The registered spec of a handler (the app's, else the default registry's)."""
    if isinstance(target, ConsumerSpec):
        return target
    registered: list[ConsumerSpec] = [
        *(app.consumers if app is not None else ()),
        *default_registry,
    ]
    for spec in registered:
        if spec.handler is target:
            return spec
    if not callable(target):
        raise TypeError(f"{target!r} is not a handler")
    return ConsumerSpec.build(target, ConsumerConfig(queue="test"))


def _held_for(spec: ConsumerSpec, error: BaseException) -> int | None:
    """The seconds before a message is back when its failure opens the consumer's circuit
    breaker, as the slots hold it (after the next probe, never dead-lettered for it); None
    when the failure does not say the dependency is down."""
    breaker = CircuitBreaker(
        spec.config.breaker or Breaker(),
        consumer=spec.name,
        on_open=_nothing,
        on_probe=_nothing,
        on_close=_nothing,
        quiet=True,  # its "polling paused" would be news of a worker that is not running
    )
    try:
        return breaker.held_delay(error, 0)
    finally:
        breaker.close()  # no probe comes: the call is over


def _nothing() -> None:
    pass


async def call_consumer(
    target: object,
    message: Message,
    *,
    app: App | None = None,
    max_receive_count: int | None = None,
    dead_letter_queue: bool = True,
) -> HandlerOutcome:
    """Run a consumer's handler on `message` as the framework would, without any server.

    `target` is a handler decorated with `@consumer` (or `@app.consumer`, then pass `app` so
    that its middleware runs too), a `ConsumerSpec`, or any handler. The call is the one
    the worker's slots make: typed bodies are decoded, middleware and `timeout=` apply; a
    plain ``def`` runs in a thread, and a ``run_in="process"`` handler in a process of its
    own, started for the call. Whatever the handler raises is the message's failure; a batch
    consumer gets ``[message]``, and the message failed if the handler returns it. A failure
    that opens the consumer's circuit breaker (`DependencyDown`, `Breaker(trip_on=...)`) is
    a ``"retry"`` after the next probe, never a dead letter, as in the worker.
    `max_receive_count` stands for the queue's RedrivePolicy: on that receive a failure is
    dead-lettered. The queue is taken to have a dead-letter queue, as every queue should,
    so a `Reject` is ``"dead-letter"``; with ``dead_letter_queue=False`` (and no
    ``dead_letter_queue=`` on the consumer) it is a ``"retry"`` after the longest back-off,
    as the framework does without one.
    """
    spec = _spec_of(target, app)
    config = spec.config
    error: BaseException | None = None
    returned: object = None
    sent: list[tuple[str, object, dict[str, object]]] = []

    async def record(queue: str, body: object, **options: Unpack[SendOptions]) -> str:
        sent.append((queue, body, dict(options)))
        return f"outbox-{len(sent)}"

    async with AsyncExitStack() as stack:
        processes = None
        if spec.run_in == "process":  # a pool of one for the call: the message is pickled
            processes = await stack.enter_async_context(ProcessPool(1))
        call = handler_call(
            spec,
            middleware=app.config.middleware if app is not None else (),
            processes=processes,
            send=record,
        )
        try:
            returned = await call([message] if config.batch else message)
        except BaseException as exc:  # whatever a handler raises is its message's failure
            if isinstance(exc, asyncio.CancelledError) and cancelled_by_framework():
                raise  # the test itself is cancelled
            error = exc
    if config.batch:  # the messages it returned (or named) failed, the others succeeded
        error = batch_failures([message], returned, error)[message.message_id]
    held = _held_for(spec, error) if error is not None else None
    if held is not None:
        return HandlerOutcome("retry", held, held, error, returned)
    dead_letters = None
    if (
        dead_letter_queue
        or max_receive_count is not None  # a RedrivePolicy names a dead-letter queue
        or config.dead_letter_queue is not None
    ):
        dead_letters = DeadLetterQueue(message.queue, max_receive_count)
    outcome = decide(
        error,
        last_attempt=dead_letters is not None and dead_letters.is_last_attempt(message),
        has_dead_letter_queue=dead_letters is not None,
        on_decode_error=config.on_decode_error,
    )
    if outcome is Outcome.ACK:
        return HandlerOutcome("ack", returned=returned, sent=tuple(sent))
    if outcome is Outcome.DEAD_LETTER:
        return HandlerOutcome("dead-letter", error=error, returned=returned)
    count = message.receive_count
    return HandlerOutcome(
        "retry",
        retry_delay_for(error, count, config, jitter=lambda: 1.0),
        retry_delay_for(error, count, config, jitter=lambda: 0.0),
        error,
        returned,
    )


async def run_until_empty(app: App, *, within: float = 60.0, check_every: float = 0.2) -> None:
    """Run `app` until every consumer's queue is empty and nothing is in flight ("burst").

    Empty means SQS counts no visible, in-flight or delayed message for any of the app's
    queues, twice in a row: a message waiting out a retry back-off is in flight, so a test
    that sends, runs and asserts sees every retry through. Raises TimeoutError after
    `within` seconds. ``python -m aiosqsworker MODULE --burst`` is the same mode.
    """
    with anyio.fail_after(within):
        async with app:
            await wait_until_empty(app, check_every=check_every)
