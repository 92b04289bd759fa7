"""A queue's name read from its URL: one reading for the producer, the tracing, the CLI and the
benchmarks' responder."""

from __future__ import annotations

from aiosqsworker._sqs.urls import queue_name


def test_a_queue_url_names_its_last_segment() -> None:
    """Catches a reading that keeps the account id or the host (splitting on the first ``/``)."""
    assert queue_name("https://sqs.eu-west-1.amazonaws.com/123456789012/jobs") == "jobs"
    assert queue_name("http://127.0.0.1:5000/123456789012/orders.fifo") == "orders.fifo"


def test_a_trailing_slash_does_not_empty_the_name() -> None:
    """Catches a reading that takes the segment after a trailing ``/`` (an empty name)."""
    assert queue_name("http://127.0.0.1:5000/123456789012/jobs/") == "jobs"


def test_a_bare_name_is_its_own_name() -> None:
    """Catches a reading that returns an empty name for a string with no ``/``."""
    assert queue_name("jobs") == "jobs"
