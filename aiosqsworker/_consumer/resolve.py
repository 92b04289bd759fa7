"""What the handler sees: a message whose body is in S3 arrives with that body.

The engine keeps the message as SQS holds it (a pointer stays a pointer: its dead-letter copy
points to the same object, and the object can be deleted once the message is), and only the
call into the middleware and the handler gets the full body. The fetch runs in the message's
handler slot, so:

- its lease is held meanwhile (the slot holds the message, the lease keeper extends it);
- polling never waits for S3, and the consumer's `concurrency` bounds the S3 GETs too;
- a missing object is an exception of that message's call: an ordinary outcome, with its
  failure record, dead-lettered at once as a body that does not decode
  (`PayloadNotFoundError`); the other messages go on.

A batch handler gets the messages whose bodies came, and the others fail each with their
own error (`PartialBatchFailure.errors`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from .._errors import PartialBatchFailure
from .._message import Message
from .._sqs.payloads import PayloadStore, has_pointer
from .outcomes import batch_failures

__all__ = ["resolving_payloads"]

Call = Callable[[Any], Awaitable[object]]


def resolving_payloads(store: PayloadStore, call: Call, *, batch: bool) -> Call:
    """`call` preceded by fetching the S3 payload of each message that points to one."""
    if batch:

        async def call_with_bodies(messages: list[Message]) -> object:
            if not any(has_pointer(message.message_attributes) for message in messages):
                return await call(messages)
            return await _call_batch(store, call, messages)

        return call_with_bodies

    # Not a coroutine of its own: most messages carry their body, and their call should
    # not hold one more frame for as long as the handler runs.
    def call_with_body(message: Message) -> Awaitable[object]:
        attributes = message.message_attributes
        if attributes and has_pointer(attributes):
            return _call_resolved(store, call, message)
        return call(message)

    return call_with_body


async def _call_resolved(store: PayloadStore, call: Call, message: Message) -> object:
    return await call(await store.resolve(message))


async def _call_batch(store: PayloadStore, call: Call, messages: list[Message]) -> object:
    resolved: dict[str, Message] = {}
    unfetched: dict[str, BaseException] = {}

    async def fetch(message: Message) -> None:
        try:
            resolved[message.message_id] = await store.resolve(message)
        except Exception as exc:  # noqa: BLE001 - a failure of that one message
            unfetched[message.message_id] = exc

    async with anyio.create_task_group() as group:
        for message in messages:
            group.start_soon(fetch, message)
    if not unfetched:
        return await call([resolved[message.message_id] for message in messages])
    ready = [resolved[m.message_id] for m in messages if m.message_id in resolved]
    returned: object = None
    error: BaseException | None = None
    if ready:
        try:
            returned = await call(ready)
        except Exception as exc:  # noqa: BLE001 - sorted per message below
            error = exc
    errors: dict[str, BaseException] = dict(unfetched)
    for message_id, failure in batch_failures(ready, returned, error).items():
        if failure is not None:
            errors[message_id] = failure
    first = next(iter(unfetched.values()))
    raise PartialBatchFailure(
        list(errors),
        reason=f"{len(unfetched)} payloads could not be fetched: {first}",
        errors=errors,
    )
