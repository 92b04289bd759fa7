"""The engine's side of the outbox: a handler's buffered sends, made once it succeeded.

`with_outbox` wraps a consumer's call (only for ``outbox=True``: nothing per message
otherwise): it gives the handler an `Outbox`, and after the handler returned sends what it
buffered, in order, before the slot queues the delete. A failed send is the attempt's
failure (`OutboxSendError`): the message is retried, never deleted without its sends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from .._message import Message
from .._producer import SendOptions
from ..outbox import Outbox, OutboxSendError, enter, leave

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Send", "with_outbox"]

Call = Callable[[Any], Awaitable[object]]


class Send(Protocol):
    """How the sends go out: `Worker.send`."""

    def __call__(
        self, queue: str, body: object, **options: Unpack[SendOptions]
    ) -> Awaitable[str]: ...


def with_outbox(call: Call, send: Send) -> Call:
    """`call` with an outbox for its handler, sent once it returned."""

    async def call_with_outbox(message: Message) -> object:
        outbox = Outbox(message)
        token = enter(outbox)
        try:
            result = await call(message)
        finally:
            outbox.open = False
            leave(token)
        for index, (queue, body, options) in enumerate(outbox.sends):
            await _send(send, message, index, len(outbox), queue, body, options)
        return result

    return call_with_outbox


async def _send(
    send: Send,
    message: Message,
    index: int,
    total: int,
    queue: str,
    body: object,
    options: SendOptions,
) -> None:
    try:
        await send(queue, body, **options)
    except Exception as exc:
        raise OutboxSendError(
            f"message {message.message_id}: outbox send {index + 1} of {total} to {queue} "
            f"failed ({type(exc).__name__}: {exc}); the message is retried, and its outbox "
            "sent again"
        ) from exc
