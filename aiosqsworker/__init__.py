"""aiosqsworker: an asyncio framework for consuming Amazon SQS queues.

```python
from aiosqsworker import consumer, Message

@consumer("orders", concurrency=50, visibility_timeout=30)
async def handle(message: Message) -> None:
    order = message.json()
```

Run it with ``python -m aiosqsworker myservice.orders``, or embed an `App` in an asyncio
service with ``async with app:``.
"""

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
