"""aiosqsworker: an asyncio framework for consuming Amazon SQS queues.

```python
from aiosqsworker import consumer, Message

@consumer("orders", concurrency=50, visibility_timeout=30)
async def handle(message: Message) -> None:
    order = message.json()
```

Run it with ``python -m aiosqsworker myservice.orders``, or embed an `App` in an asyncio
service with ``async with app:``.

``import aiosqsworker`` loads none of the engine: each public name is imported from its
module the first time it is used (PEP 562), and kept. Type checkers and editors read the
imports under ``TYPE_CHECKING`` below.
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from ._app import App
    from ._config import AppConfig, Breaker, ConsumerConfig, ConsumerSettings, Middleware
    from ._consumer.stats import ConsumerStatistics
    from ._errors import (
        AccessDeniedError,
        AioSQSWorkerError,
        ConfigurationError,
        CredentialsError,
        CredentialsUnavailableError,
        DependencyDown,
        HandlerProcessError,
        HandlerSignatureError,
        MessageDecodeError,
        PartialBatchFailure,
        PayloadError,
        PayloadNotFoundError,
        QueueNotFoundError,
        ReceiptHandleInvalidError,
        Reject,
        Retry,
        SQSError,
        TransientSQSError,
    )
    from ._logging import log_to
    from ._message import Message
    from ._producer import Producer, SendOptions
    from ._registry import ConsumerSpec, consumer
    from ._sqs.base import BatchEntryFailure, BatchResult, SendBatchResult, SQSClient
    from ._sqs.errors import Endpoint
    from ._worker import WorkerState

__version__ = "0.1.0"

__all__ = [
    "AccessDeniedError",
    "AioSQSWorkerError",
    "App",
    "AppConfig",
    "BatchEntryFailure",
    "BatchResult",
    "Breaker",
    "ConfigurationError",
    "ConsumerConfig",
    "ConsumerSettings",
    "ConsumerSpec",
    "ConsumerStatistics",
    "CredentialsError",
    "CredentialsUnavailableError",
    "DependencyDown",
    "Endpoint",
    "HandlerProcessError",
    "HandlerSignatureError",
    "Message",
    "MessageDecodeError",
    "Middleware",
    "PartialBatchFailure",
    "PayloadError",
    "PayloadNotFoundError",
    "Producer",
    "QueueNotFoundError",
    "ReceiptHandleInvalidError",
    "Reject",
    "Retry",
    "SQSClient",
    "SQSError",
    "SendBatchResult",
    "SendOptions",
    "TransientSQSError",
    "WorkerState",
    "__version__",
    "consumer",
    "log_to",
]

#: The module that defines each public name, imported the first time the name is used; the
#: other names of `__all__` are the exceptions of `._errors`.
_HOMES: dict[str, tuple[str, ...]] = {
    "._app": ("App",),
    "._config": ("AppConfig", "Breaker", "ConsumerConfig", "ConsumerSettings", "Middleware"),
    "._consumer.stats": ("ConsumerStatistics",),
    "._logging": ("log_to",),
    "._message": ("Message",),
    "._producer": ("Producer", "SendOptions"),
    "._registry": ("ConsumerSpec", "consumer"),
    "._sqs.base": ("BatchEntryFailure", "BatchResult", "SendBatchResult", "SQSClient"),
    "._sqs.errors": ("Endpoint",),
    "._worker": ("WorkerState",),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

if not _typing.TYPE_CHECKING:  # at run time only: to a type checker, a typo stays an error

    def __getattr__(name: str) -> object:
        module = _HOME_OF.get(name, "._errors" if name in __all__ else None)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(_importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
