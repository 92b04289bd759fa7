"""Outcomes: what a handler's ending means for each of its messages. Pure decisions only.

| the handler...                              | outcome                                        |
|---------------------------------------------|------------------------------------------------|
| returns                                     | ACK: deleted (batched)                         |
| raises `Retry(delay=d)`                     | RETRY: visible again after d seconds           |
| raises any other exception, or times out    | RETRY after a back-off exponential in the      |
|                                             | receive count; on the last receive the queue's |
|                                             | redrive policy allows, DEAD_LETTER instead     |
| raises `Reject(reason)`, or the body does   | DEAD_LETTER now (RETRY after the longest       |
| not decode (`MessageDecodeError`)           | back-off if there is no dead-letter queue)     |
| is cancelled by a forced shutdown           | RELEASE: visible again at once                 |
| loses its lease (handle no longer valid)    | LOST: cancelled; nothing more is sent          |

A batch handler decides per message: those it returns (or names in `PartialBatchFailure`)
failed, the others succeeded; any other exception fails the whole batch.

A body that does not decode fails the same way on every receive, so it is permanent like a
`Reject`, unless the consumer says ``on_decode_error="retry"``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Sequence

from .._backoff import backoff
from .._config import ConsumerConfig, DecodeErrorAction
from .._errors import MessageDecodeError, PartialBatchFailure, PayloadNotFoundError, Reject, Retry
from .._message import Message
from .._sqs.limits import MAX_VISIBILITY

__all__ = [
    "Outcome",
    "batch_failures",
    "dead_letter_reason",
    "decide",
    "is_permanent",
    "retry_delay",
    "retry_delay_for",
    "within_visibility_cap",
]


class Outcome(enum.Enum):
    ACK = "ack"
    RETRY = "retry"
    DEAD_LETTER = "dead-letter"
    RELEASE = "release"
    LOST = "lost"


def is_permanent(
    error: BaseException | None, *, on_decode_error: DecodeErrorAction = "dead-letter"
) -> bool:
    """Whether no retry can help: a `Reject`, or a body that does not decode."""
    if isinstance(error, Reject):
        return True
    return on_decode_error == "dead-letter" and isinstance(error, MessageDecodeError)


def decide(
    error: BaseException | None,
    *,
    lost: bool = False,
    cancelled: bool = False,
    last_attempt: bool = False,
    has_dead_letter_queue: bool = False,
    on_decode_error: DecodeErrorAction = "dead-letter",
) -> Outcome:
    """The outcome of one message, from how its handler ended."""
    if lost:
        return Outcome.LOST
    if cancelled:
        return Outcome.RELEASE
    if error is None:
        return Outcome.ACK
    if isinstance(error, Retry):
        return Outcome.RETRY
    permanent = is_permanent(error, on_decode_error=on_decode_error)
    if has_dead_letter_queue and (permanent or last_attempt):
        return Outcome.DEAD_LETTER
    return Outcome.RETRY


def dead_letter_reason(error: BaseException) -> str:
    """The ``reason`` of a dead letter's failure record."""
    if isinstance(error, Reject):
        return error.reason
    if isinstance(error, PayloadNotFoundError):
        return "its payload in S3 does not exist"
    if isinstance(error, MessageDecodeError):
        return "its body does not decode"
    return "last attempt failed"


def retry_delay(
    receive_count: int,
    base: float,
    cap: float,
    *,
    held_for: float = 0.0,
    jitter: Callable[[], float] | None = None,
) -> int:
    """Seconds before a failed message is visible again.

    Doubles with each receive from `base`, capped at `cap`, with "equal jitter" (between half
    and all of it) so that a burst of failures does not come back as a burst. Rounded up to
    SQS's whole seconds, and kept within the 12 hours SQS allows a message to stay invisible
    counting the `held_for` seconds it has been held already.
    """
    delay = backoff(max(receive_count, 1) - 1, base=base, cap=cap, jitter=jitter)
    return within_visibility_cap(delay, held_for)


def retry_delay_for(
    error: BaseException | None,
    receive_count: int,
    config: ConsumerConfig,
    *,
    held_for: float = 0.0,
    jitter: Callable[[], float] | None = None,
) -> int:
    """The delay of a RETRY outcome: what `Retry(delay=)` asks for; the longest back-off for
    a permanent failure (`is_permanent`) with nowhere to go; otherwise the back-off of
    `retry_delay`."""
    if isinstance(error, Retry):
        return within_visibility_cap(error.delay, held_for)
    if is_permanent(error, on_decode_error=config.on_decode_error):
        return within_visibility_cap(config.retry_max_delay, held_for)
    return retry_delay(
        receive_count,
        config.retry_base_delay,
        config.retry_max_delay,
        held_for=held_for,
        jitter=jitter,
    )


def within_visibility_cap(delay: float, held_for: float) -> int:
    """`delay` in SQS's whole seconds, cut so the message is not held past 12 hours."""
    # min() first: math.ceil(math.inf) raises, and Retry(delay=math.inf) is valid.
    return max(0, min(math.ceil(min(delay, MAX_VISIBILITY)), MAX_VISIBILITY - math.ceil(held_for)))


def batch_failures(
    messages: Sequence[Message], returned: object, error: BaseException | None
) -> dict[str, BaseException | None]:
    """Per message id of a batch: the error it failed with, or None if it succeeded.

    A batch handler reports failures by returning the failed messages (or their ids), or by
    raising `PartialBatchFailure`; any other exception fails every message.
    """
    if error is not None and not isinstance(error, PartialBatchFailure):
        return {message.message_id: error for message in messages}
    named: Iterable[object] = ()
    cause: BaseException = error if error is not None else PartialBatchFailure(())
    if isinstance(error, PartialBatchFailure):
        named = error.failed
    elif returned is not None and not isinstance(returned, str | bytes):
        named = returned if isinstance(returned, Iterable) else ()
    failed_ids = {item.message_id if isinstance(item, Message) else str(item) for item in named}
    own = error.errors if isinstance(error, PartialBatchFailure) else {}
    return {
        message.message_id: (
            own.get(message.message_id, cause) if message.message_id in failed_ids else None
        )
        for message in messages
    }
