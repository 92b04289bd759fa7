"""The one exception tree of aiosqsworker.

```
AioSQSWorkerError
├── ConfigurationError            an invalid setting (also a ValueError)
├── HandlerSignatureError         a handler the framework cannot call (also a TypeError)
├── MessageDecodeError            a body that does not decode (also a ValueError)
├── HandlerProcessError           a run_in="process" job that could not run or report back
├── PayloadError                  an S3 payload could not be stored, fetched or deleted
│   └── PayloadNotFoundError      its object or bucket is gone (also a MessageDecodeError)
└── SQSError                      SQS said no, or could not be reached
    ├── QueueNotFoundError        the queue does not exist at that region/endpoint
    ├── CredentialsError          no credentials, or credentials SQS refused
    ├── AccessDeniedError         credentials accepted, action not allowed
    ├── ReceiptHandleInvalidError the message is no longer ours (deleted, or re-received)
    └── TransientSQSError         worth retrying: throttling, 5xx, connection trouble
        └── CredentialsUnavailableError  the credentials could not be fetched for now
```

`Retry`, `Reject`, `PartialBatchFailure` and `DependencyDown` are not errors of the framework:
they are control flow a handler raises to choose what happens to its messages. Every
exception here survives pickling with its fields, so that a handler run in a child process
can raise them too.

Errors raised by botocore and aiohttp never leave `_sqs/`: `map_sqs_errors` and
`map_s3_errors` turn them into this tree at the boundary, so the rest of the code (and users)
catch only these.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "AccessDeniedError",
    "AioSQSWorkerError",
    "ConfigurationError",
    "CredentialsError",
    "CredentialsUnavailableError",
    "DependencyDown",
    "HandlerProcessError",
    "HandlerSignatureError",
    "MessageDecodeError",
    "PartialBatchFailure",
    "PayloadError",
    "PayloadNotFoundError",
    "QueueNotFoundError",
    "ReceiptHandleInvalidError",
    "Reject",
    "Retry",
    "SQSError",
    "TransientSQSError",
]


class AioSQSWorkerError(Exception):
    """Base class of every error aiosqsworker raises."""


class ConfigurationError(AioSQSWorkerError, ValueError):
    """A setting is out of range or of the wrong type."""


class HandlerSignatureError(AioSQSWorkerError, TypeError):
    """A handler is not a coroutine function, or takes arguments the framework cannot give."""


class MessageDecodeError(AioSQSWorkerError, ValueError):
    """A message body could not be decoded (for example, it is not JSON).

    The same body never decodes on another try, so by default the message goes to the
    dead-letter queue on its first failure, with its failure record (a consumer's
    ``on_decode_error="retry"`` retries it instead). It is never deleted without a copy.

    Attributes:
        handler_site: where the handler whose parameters asked for the type is defined
            (``path:line in name``): the failure record's ``where``, for the decoding code
            is the framework's, and the fix is in the handler or the sender.
    """

    handler_site: str | None = None


class PayloadError(AioSQSWorkerError):
    """A message's S3 payload could not be stored, fetched or deleted.

    `code` is S3's error code when S3 answered (``None`` for connection trouble), `bucket`
    and `key` name the object.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        bucket: str | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.bucket = bucket
        self.key = key


class PayloadNotFoundError(PayloadError, MessageDecodeError):
    """A message points to an S3 object (or bucket) that does not exist.

    No retry brings the body back, so it is handled like a body that does not decode.
    """


class HandlerProcessError(AioSQSWorkerError):
    """A ``run_in="process"`` job did not come back: its process died or was killed, or the
    call or its outcome could not cross to or from the process.

    Raised in place of the handler's own outcome, it is an ordinary failure: the message is
    retried and, on its last attempt, dead-lettered with this error in its failure record.
    """


class SQSError(AioSQSWorkerError):
    """SQS refused a request or could not be reached.

    `code` is the AWS error code when SQS answered (``None`` for connection trouble) and
    `operation` the API action that failed.
    """

    def __init__(self, message: str, *, code: str | None = None, operation: str | None = None):
        super().__init__(message)
        self.code = code
        self.operation = operation

    def __reduce__(self) -> tuple[Any, ...]:
        rebuild = functools.partial(type(self), code=self.code, operation=self.operation)
        return rebuild, self.args


class QueueNotFoundError(SQSError):
    """The queue does not exist at the region and endpoint in use."""


class CredentialsError(SQSError):
    """No AWS credentials were found, or SQS refused the ones given."""


class AccessDeniedError(SQSError):
    """The credentials are valid but not allowed to perform the action on the queue."""


class ReceiptHandleInvalidError(SQSError):
    """The receipt handle is no longer valid: the message was deleted or received again."""


class TransientSQSError(SQSError):
    """A failure that is worth retrying after a back-off: throttling, 5xx, a dropped connection."""


class CredentialsUnavailableError(TransientSQSError):
    """The credentials could not be fetched or refreshed for now (a credentials endpoint
    down, STS unreachable): the call was not sent.

    Retried like any transient error; an outage that lasts `credentials_outage_limit`
    seconds becomes a `CredentialsError`.
    """


class Retry(Exception):
    """Raise from a handler to make the message visible again after `delay` seconds.

    ```python
    @consumer("orders")
    async def handle(message: Message) -> None:
        if not ready():
            raise Retry(delay=30)
    ```

    The delay is rounded up to whole seconds (SQS's unit) and capped so that the message's
    total invisibility stays within SQS's 12-hour limit.
    """

    def __init__(self, delay: float = 0.0) -> None:
        if not isinstance(delay, int | float) or math.isnan(delay) or delay < 0:
            raise ConfigurationError(
                f"Retry(delay={delay!r}): delay must be a number of seconds >= 0"
            )
        super().__init__(f"retry requested in {delay:g} s")
        self.delay = float(delay)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.delay,)


class DependencyDown(Exception):
    """Raise from a handler when something it needs is down: the consumer's circuit breaker
    opens (polling pauses for a cool-down, buffered messages are released) and the message
    is retried after the cool-down without counting toward dead-lettering.

    ```python
    @consumer("orders", breaker=Breaker(cooldown=20))
    async def handle(message: Message) -> None:
        try:
            await payments.charge(message.json())
        except PaymentsUnavailable as exc:
            raise DependencyDown("payments") from exc
    ```

    Without `breaker=` on the consumer, the default `Breaker()` settings apply.
    """

    def __init__(self, dependency: str = "a dependency") -> None:
        super().__init__(f"{dependency} is down")
        self.dependency = dependency

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.dependency,)


class Reject(Exception):
    """Raise from a handler to give up on the message now: no retry.

    The message goes to the dead-letter queue at once (the queue's redrive target, or the
    consumer's `dead_letter_queue`), carrying the failure record, and is then deleted. With
    no dead-letter queue to go to, it is retried after `retry_max_delay` instead (a rejected
    message is never deleted without a copy), and an error says why.
    """

    def __init__(self, reason: str = "rejected by the handler") -> None:
        super().__init__(reason)
        self.reason = reason


class PartialBatchFailure(Exception):
    """Raise from a batch handler to fail some of its messages; the others are deleted.

    `failed` holds the failed messages (or their message ids). Returning the same list from
    the handler does the same without raising. `errors` may give a failed message (by id) an
    exception of its own: what decides its outcome and goes in its failure record, instead of
    this one.
    """

    def __init__(
        self,
        failed: Iterable[object],
        reason: str = "some messages failed",
        *,
        errors: Mapping[str, BaseException] | None = None,
    ) -> None:
        super().__init__(reason)
        self.failed = list(failed)
        self.errors = dict(errors or {})

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.failed, *self.args)


def leaf_errors(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """Every exception a (nested) exception group carries, in order."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        current = pending.pop(0)
        if isinstance(current, BaseExceptionGroup):
            pending[:0] = current.exceptions
        else:
            leaves.append(current)
    return leaves


def single_error(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The exception a task group's `ExceptionGroup` stands for, if it stands for one.

    Task groups wrap even a lone error; users should see `QueueNotFoundError`, not a group.
    That is the one leaf, or one of them when every leaf is one of the framework's errors (two
    pollers that learn at once that their queue is gone).
    """
    leaves = leaf_errors(group)
    if len(leaves) == 1 or (leaves and all(isinstance(e, AioSQSWorkerError) for e in leaves)):
        return leaves[-1]
    return None
