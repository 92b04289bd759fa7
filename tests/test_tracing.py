"""Tracing: a span per handled message, continuing the producer's trace."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aiosqsworker import App, Message
from aiosqsworker.testing import call_consumer, make_message
from aiosqsworker.tracing import opentelemetry_middleware

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
    app = App(middleware=[opentelemetry_middleware(tracer_provider=provider)])

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
