"""Tracing: a span per handled message, continuing the producer's trace."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from aiosqsworker import App, Message
from aiosqsworker.testing import call_consumer, make_message
from aiosqsworker.tracing import ProducerContext, opentelemetry_middleware

from .kit import SQSKit, eventually

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


async def test_a_span_per_message_continues_the_senders_trace(
    spans: InMemorySpanExporter,
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    app = App(
        middleware=[opentelemetry_middleware(tracer_provider=provider, producer_context="parent")]
    )

    @app.consumer("orders")
    async def handle(message: Message) -> None:
        assert trace.get_current_span().get_span_context().trace_id == int(TRACE_ID, 16)

    message = make_message("hello", message_attributes={"traceparent": PARENT})
    outcome = await call_consumer(handle, message, app=app)
    assert outcome.action == "ack", outcome.error
    (span,) = spans.get_finished_spans()
    assert span.name == "test process"
    assert span.kind is trace.SpanKind.CONSUMER
    assert span.context is not None
    assert span.context.trace_id == int(TRACE_ID, 16)
    assert span.parent is not None
    assert span.parent.span_id == int("00f067aa0ba902b7", 16)
    assert span.attributes is not None
    assert span.attributes["messaging.message.id"] == message.message_id


async def test_by_default_the_span_links_to_the_senders_context_in_a_trace_of_its_own(
    spans: InMemorySpanExporter,
) -> None:
    """The default, as OpenTelemetry's messaging conventions advise: the consumer span starts
    its own trace (or continues the context it runs in) and links to the send.

    Naive code it catches: the producer's context used as the parent whatever the option (a
    message retried for a day stretches the producer's trace); a link to an invalid
    context when the message carries none.
    """
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    app = App(middleware=[opentelemetry_middleware(tracer_provider=provider)])

    @app.consumer("orders")
    async def handle(message: Message) -> None:
        assert trace.get_current_span().get_span_context().trace_id != int(TRACE_ID, 16)

    outcome = await call_consumer(
        handle, make_message("hello", message_attributes={"traceparent": PARENT}), app=app
    )
    assert outcome.action == "ack", outcome.error
    outcome = await call_consumer(handle, make_message("no context"), app=app)
    assert outcome.action == "ack", outcome.error
    linked, alone = spans.get_finished_spans()
    for span in (linked, alone):
        assert span.parent is None
        assert span.context is not None
        assert span.context.trace_id != int(TRACE_ID, 16)
    (link,) = linked.links
    assert link.context.trace_id == int(TRACE_ID, 16)
    assert link.context.span_id == int("00f067aa0ba902b7", 16)
    assert not alone.links


async def test_a_linked_span_is_the_child_of_the_context_the_handler_runs_in(
    spans: InMemorySpanExporter,
) -> None:
    """A span of the host's (a test, an embedding service) around the call is the consumer
    span's parent; the producer's context is the link. Naive code it catches: a consumer
    span forced to be a root (context=an empty Context), cutting the host's trace."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    app = App(middleware=[opentelemetry_middleware(tracer_provider=provider)])

    @app.consumer("orders")
    async def handle(message: Message) -> None:
        pass

    with provider.get_tracer("test").start_as_current_span("host") as host:
        message = make_message("hello", message_attributes={"traceparent": PARENT})
        outcome = await call_consumer(handle, message, app=app)
    assert outcome.action == "ack", outcome.error
    consumer = next(s for s in spans.get_finished_spans() if s.name == "test process")
    assert consumer.parent is not None
    assert consumer.parent.span_id == host.get_span_context().span_id
    assert [link.context.trace_id for link in consumer.links] == [int(TRACE_ID, 16)]


def test_producer_context_must_be_link_or_parent() -> None:
    with pytest.raises(ValueError, match="'link' or 'parent'"):
        opentelemetry_middleware(producer_context="child")  # type: ignore[arg-type]


class BrokenPropagator(TraceContextTextMapPropagator):
    """A propagator that raises on every extract: a misconfigured or buggy one."""

    def extract(self, carrier: Any, context: Any = None, getter: Any = None) -> Any:
        raise RuntimeError("propagator broken")


@pytest.mark.parametrize("producer_context", ["link", "parent"])
async def test_a_broken_propagator_never_decides_the_outcome_with_either_producer_context(
    spans: InMemorySpanExporter, producer_context: ProducerContext
) -> None:
    """The producer's context is read while the span opens, under the guard that logs a
    tracing failure and runs the handler without its span, for a link and a parent alike.

    Naive code it catches: the context extracted before that guard (for the parent, or for
    the link), so a raising propagator fails every message its handler would have handled.
    """
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    app = App(
        middleware=[
            opentelemetry_middleware(tracer_provider=provider, producer_context=producer_context)
        ]
    )
    handled: list[str] = []

    @app.consumer("orders")
    async def handle(message: Message) -> None:
        handled.append(message.message_id)

    message = make_message("x", message_attributes={"traceparent": PARENT})
    before = propagate.get_global_textmap()
    propagate.set_global_textmap(BrokenPropagator())
    try:
        outcome = await call_consumer(handle, message, app=app)
    finally:
        propagate.set_global_textmap(before)
    assert outcome.action == "ack", outcome.error
    assert handled == [message.message_id]
    assert spans.get_finished_spans() == ()


async def test_a_failing_handler_marks_its_span_as_an_error(
    spans: InMemorySpanExporter,
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    app = App(middleware=[opentelemetry_middleware(tracer_provider=provider)])

    @app.consumer("orders")
    async def handle(message: Message) -> None:
        raise ValueError("boom")

    outcome = await call_consumer(handle, make_message("x"), app=app)
    assert outcome.action == "retry"
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is trace.StatusCode.ERROR
    assert any(event.name == "exception" for event in span.events)


async def test_a_trace_continues_from_app_send_to_the_handler(
    spans: InMemorySpanExporter, sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """A request span sends a message; the consumer's span is its child, in the same trace,
    with nothing set up on the sending side but OpenTelemetry itself.

    Naive code it catches: a send that carries no context (each consumer span starts a new
    trace), or one that replaces a traceparent the sender set itself.
    """
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("test")
    queue = await sqs.create_queue()
    app = make_app(
        middleware=[opentelemetry_middleware(tracer_provider=provider, producer_context="parent")]
    )
    seen: list[int] = []

    @app.consumer(queue.name, wait_time=1)
    async def handle(message: Message) -> None:
        seen.append(trace.get_current_span().get_span_context().trace_id)

    async with app:
        with tracer.start_as_current_span("checkout") as checkout:
            await app.send(queue.name, {"order": 1})
            await app.send(queue.name, {"order": 2}, attributes={"traceparent": PARENT})
        await eventually(lambda: len(seen) == 2)
    request = checkout.get_span_context()
    consumed = {
        span.attributes["messaging.message.id"]: span
        for span in spans.get_finished_spans()
        if span.kind is trace.SpanKind.CONSUMER and span.attributes
    }
    assert len(consumed) == 2
    parents = sorted(
        (span.context.trace_id, span.parent.span_id)
        for span in consumed.values()
        if span.context is not None and span.parent is not None
    )
    assert parents == sorted(
        [(request.trace_id, request.span_id), (int(TRACE_ID, 16), int("00f067aa0ba902b7", 16))]
    )
    assert sorted(seen) == sorted([request.trace_id, int(TRACE_ID, 16)])
