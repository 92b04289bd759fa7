"""OpenTelemetry tracing: a span per handled message, continuing the producer's trace.

```python
from aiosqsworker import App
from aiosqsworker.tracing import opentelemetry_middleware

app = App(middleware=[opentelemetry_middleware()])
```

Each handler call runs inside a CONSUMER span named ``<queue> process``, with the messaging
semantic-convention attributes. When the sender propagated its context in the message's
String attributes (``traceparent``/``tracestate`` with the default W3C propagator, or
whatever propagator is configured), the span continues that trace. A handler's exception
is recorded on the span and sets its status to error. A batch consumer gets one span per
call, linked to each message's producer context.

Needs the ``otel`` extra (opentelemetry-api; configure an SDK as usual to export spans).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ._config import Middleware
from ._message import Message

__all__ = ["carrier_of", "opentelemetry_middleware"]


def carrier_of(message: Message) -> dict[str, str]:
    """The message's String attributes, where propagators look for a trace context."""
    carrier: dict[str, str] = {}
    for name, value in message.message_attributes.items():
        if isinstance(value, Mapping) and str(value.get("DataType", "")).startswith("String"):
            text = value.get("StringValue")
            if isinstance(text, str):
                carrier[name] = text
    return carrier


def _queue_name(message: Message) -> str:
    return message.queue.rstrip("/").rpartition("/")[2] or message.queue


def opentelemetry_middleware(tracer_provider: Any = None) -> Middleware:
    """Middleware that traces every handler call (see the module's documentation)."""
    try:
        from opentelemetry import propagate, trace
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("tracing needs OpenTelemetry: pip install 'aiosqsworker[otel]'") from exc
    tracer = trace.get_tracer("aiosqsworker", tracer_provider=tracer_provider)

    async def middleware(item: Any, call_next: Callable[[Any], Awaitable[object]]) -> object:
        if isinstance(item, list):
            messages: list[Message] = item
            links = [
                trace.Link(span_context)
                for message in messages
                if (
                    span_context := trace.get_current_span(
                        propagate.extract(carrier_of(message))
                    ).get_span_context()
                ).is_valid
            ]
            name = _queue_name(messages[0]) if messages else "batch"
            with tracer.start_as_current_span(
                f"{name} process",
                kind=trace.SpanKind.CONSUMER,
                links=links,
                attributes={
                    "messaging.system": "aws_sqs",
                    "messaging.destination.name": name,
                    "messaging.operation.type": "process",
                    "messaging.batch.message_count": len(messages),
                },
            ):
                return await call_next(item)
        message: Message = item
        name = _queue_name(message)
        with tracer.start_as_current_span(
            f"{name} process",
            context=propagate.extract(carrier_of(message)),
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "aws_sqs",
                "messaging.destination.name": name,
                "messaging.operation.type": "process",
                "messaging.message.id": message.message_id,
                "aws.sqs.receive_count": message.receive_count,
            },
        ):
            return await call_next(item)

    return middleware
