"""OpenTelemetry tracing: a span per handled message, continuing the producer's trace.

```python
from aiosqsworker import App
from aiosqsworker.tracing import opentelemetry_middleware

app = App(middleware=[opentelemetry_middleware()])
```

Each handler call runs inside a CONSUMER span named ``<queue> process``, with the messaging
semantic-convention attributes. When the sender propagated its context in the message's
String attributes (``traceparent``/``tracestate`` with the default W3C propagator, or
whatever propagator is configured), the span is **linked** to it: it starts a trace of its
own (or continues the context current where the handler runs), and the link leads back to
the send, as OpenTelemetry's messaging conventions advise (a message handled an hour later,
or retried five times, does not stretch the producer's trace). With
``producer_context="parent"`` the span is the send's child instead, in the producer's
trace. A handler's exception is recorded on the span and sets its status to error. A batch
consumer gets one span per call, linked to each message's producer context. Tracing that
fails (a propagator, span processor or exporter that raises, with either option) is logged
and leaves the message to its handler: it never fails a message its handler handled.

The sending side needs no setup: with OpenTelemetry installed, `App.send` and
`Producer.send` add the current context to the message's attributes (`with_trace_context`),
so a handler's span continues the trace the send was part of.

Needs the ``otel`` extra (opentelemetry-api; configure an SDK as usual to export spans).
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from types import ModuleType
from typing import Any, Literal

from ._config import Middleware
from ._message import Message
from ._sqs.urls import queue_name

__all__ = ["carrier_of", "opentelemetry_middleware", "with_trace_context"]

logger = logging.getLogger("aiosqsworker.tracing")

#: SQS's limit on a message's attributes, less one left for an S3 pointer's size.
_MOST_ATTRIBUTES_WITH_CONTEXT = 9


@functools.cache
def _propagate() -> ModuleType | None:
    """OpenTelemetry's propagation API, loaded on the first send; None when not installed."""
    try:
        return importlib.import_module("opentelemetry.propagate")
    except ImportError:
        return None


def with_trace_context(attributes: Mapping[str, object] | None) -> Mapping[str, object] | None:
    """`attributes` plus the current trace context (``traceparent``...), when there is one.

    Attributes the sender set are never replaced, and the context is left out rather than
    push a message past SQS's ten attributes (nine, leaving room for an S3 pointer).
    """
    propagate = _propagate()
    if propagate is None:
        return attributes
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    given = attributes or {}
    added = {name: value for name, value in carrier.items() if name not in given}
    if not added or len(given) + len(added) > _MOST_ATTRIBUTES_WITH_CONTEXT:
        return attributes
    return {**given, **added}


def carrier_of(message: Message) -> dict[str, str]:
    """The message's String attributes, where propagators look for a trace context."""
    carrier: dict[str, str] = {}
    for name, value in message.message_attributes.items():
        if isinstance(value, Mapping) and str(value.get("DataType", "")).startswith("String"):
            text = value.get("StringValue")
            if isinstance(text, str):
                carrier[name] = text
    return carrier


def _close(span: AbstractContextManager[object], error: BaseException | None) -> None:
    """End `span` (recording the handler's `error`); its own failure is only logged."""
    try:
        span.__exit__(type(error) if error else None, error, error.__traceback__ if error else None)
    # Not BaseException: a cancellation that comes now must not be swallowed. The handler's
    # own error, re-raised from here, is raised by the caller.
    except Exception as exc:  # noqa: BLE001
        if exc is not error:
            _tracing_failed(exc)


def _tracing_failed(exc: BaseException) -> None:
    logger.warning(
        "tracing failed, the message is handled without its span: %s: %s", type(exc).__name__, exc
    )


#: How a consumer span relates to the producer's context: a link, or its parent.
ProducerContext = Literal["link", "parent"]


def opentelemetry_middleware(
    tracer_provider: Any = None, *, producer_context: ProducerContext = "link"
) -> Middleware:
    """Middleware that traces every handler call (see the module's documentation).

    `producer_context` is ``"link"`` (the default: the span links to the send) or
    ``"parent"`` (the span is the send's child, in its trace).
    """
    if producer_context not in ("link", "parent"):
        raise ValueError(
            f"producer_context={producer_context!r} is invalid: it must be 'link' or 'parent'"
        )
    try:
        from opentelemetry import propagate, trace
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("tracing needs OpenTelemetry: pip install 'aiosqsworker[otel]'") from exc
    tracer = trace.get_tracer("aiosqsworker", tracer_provider=tracer_provider)
    as_parent = producer_context == "parent"

    def _sent_from(message: Message) -> Any:
        """The producer's span context carried by `message` (invalid when none)."""
        return trace.get_current_span(propagate.extract(carrier_of(message))).get_span_context()

    def open_span(item: Any) -> AbstractContextManager[object]:
        if isinstance(item, list):
            messages: list[Message] = item
            links = [
                trace.Link(span_context)
                for message in messages
                if (span_context := _sent_from(message)).is_valid
            ]
            name = queue_name(messages[0].queue) if messages else "batch"
            return tracer.start_as_current_span(
                f"{name} process",
                kind=trace.SpanKind.CONSUMER,
                links=links,
                attributes={
                    "messaging.system": "aws_sqs",
                    "messaging.destination.name": name,
                    "messaging.operation.type": "process",
                    "messaging.batch.message_count": len(messages),
                },
            )
        message: Message = item
        name = queue_name(message.queue)
        sent_from = propagate.extract(carrier_of(message))
        span_context = trace.get_current_span(sent_from).get_span_context()
        return tracer.start_as_current_span(
            f"{name} process",
            context=sent_from if as_parent else None,
            links=[trace.Link(span_context)] if span_context.is_valid and not as_parent else [],
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "aws_sqs",
                "messaging.destination.name": name,
                "messaging.operation.type": "process",
                "messaging.message.id": message.message_id,
                "aws.sqs.receive_count": message.receive_count,
            },
        )

    async def middleware(item: Any, call_next: Callable[[Any], Awaitable[object]]) -> object:
        # A span that cannot be opened or closed (a broken propagator, span processor or
        # exporter) is logged and left out: tracing never decides a message's outcome.
        try:
            span = open_span(item)
            span.__enter__()
        except Exception as exc:  # noqa: BLE001 - tracing's own failure
            _tracing_failed(exc)
            return await call_next(item)
        try:
            result = await call_next(item)
        except BaseException as exc:
            _close(span, exc)
            raise
        _close(span, None)
        return result

    return middleware
