"""Send on success: messages a handler sends only if it succeeds, before its delete.

```python
from aiosqsworker import App, Message

app = App()

@app.consumer("orders", outbox=True)
async def handle(message: Message) -> None:
    message.outbox.send("invoices", {"order": message.json()["id"]})
    message.outbox.send("emails", {"to": "customer"})
```

`message.outbox.send` takes what `App.send` takes (`SendOptions`) and only buffers. Once
the handler has returned, the consumer sends what it buffered, in order, and only then
queues the message's delete. A handler that raises, times out or is cancelled sends
nothing; a send that fails fails the attempt (`OutboxSendError`): the message is retried,
not deleted. A send to a FIFO queue without a deduplication id gets one derived from the
message's id and the send's position (``<message id>-0``, ``-1``, ...), so that a retried
attempt's sends are the same messages to SQS (within its five-minute deduplication window).

Available with ``@consumer(..., outbox=True)`` to handlers that run in this process
(``async def`` on the loop, or ``def`` in a thread).
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any

from ._errors import ConfigurationError
from ._producer import SendOptions, fifo_send_problem
from .tracing import with_trace_context

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._message import Message

__all__ = ["Outbox", "OutboxSendError", "current_outbox", "fifo_deduplication_id"]


class OutboxSendError(Exception):
    """A send buffered in a handler's outbox failed after the handler succeeded: the
    message is retried (its outbox is sent again on the next attempt)."""


def fifo_deduplication_id(message_id: str, index: int) -> str:
    """The deduplication id of a message's `index`-th outbox send to a FIFO queue: the same
    on every attempt, different for every send."""
    return f"{message_id}-{index}"


class Outbox:
    """The sends one handler attempt has buffered (`message.outbox`)."""

    def __init__(self, message: Message) -> None:
        self.message_id = message.message_id
        self.sends: list[tuple[str, object, SendOptions]] = []
        self.open = True

    def send(self, queue: str, body: object, **options: Unpack[SendOptions]) -> None:
        """Buffer a send to `queue` (name or URL), made if the handler succeeds."""
        if not self.open:
            raise RuntimeError(
                f"message {self.message_id}: its handler's attempt is over (it returned, "
                "failed or was cancelled): message.outbox.send() is for the handler's own run"
            )
        problem = fifo_send_problem(
            queue,
            group_id=options.get("group_id"),
            delay=options.get("delay", 0),
            deduplication_id=options.get("deduplication_id"),
        )
        if problem is not None:
            raise ConfigurationError(problem)
        if queue.endswith(".fifo") and options.get("deduplication_id") is None:
            options["deduplication_id"] = fifo_deduplication_id(self.message_id, len(self.sends))
        # The handler's trace context, not the one the sends are made in.
        options["attributes"] = with_trace_context(options.get("attributes"))
        self.sends.append((queue, body, options))

    def __len__(self) -> int:
        return len(self.sends)


_CURRENT: contextvars.ContextVar[Outbox | None] = contextvars.ContextVar(
    "aiosqsworker_outbox", default=None
)


def current_outbox(message: Message) -> Outbox:
    """The outbox of `message`'s running handler (what `Message.outbox` returns)."""
    outbox = _CURRENT.get()
    if outbox is None or outbox.message_id != message.message_id:
        raise RuntimeError(
            f"message {message.message_id} has no outbox here: message.outbox is there while "
            "its handler runs, for a consumer with outbox=True (@consumer(..., outbox=True)) "
            "whose handler runs in this process"
        )
    return outbox


def enter(outbox: Outbox) -> contextvars.Token[Outbox | None]:
    return _CURRENT.set(outbox)


def leave(token: contextvars.Token[Any]) -> None:
    _CURRENT.reset(token)
