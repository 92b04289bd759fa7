"""The circuit breaker: a dependency down for 20 s pauses the consumer instead of burning
every message's receive count toward the dead-letter queue.

The scenario runs a real worker against the test server over HTTP (and the in-memory SQS),
with a handler whose dependency is down for 20 s from its first call.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable
from functools import partial

import aiohttp
import anyio
import pytest

from aiosqsworker import App, Breaker, ConfigurationError, DependencyDown, Message
from aiosqsworker._run.metrics import serve_metrics

from .kit import SQSKit, eventually

OUTAGE = 20.0


@pytest.mark.also_in_memory
async def test_a_dependency_down_for_20_s_pauses_the_consumer_and_burns_no_receive_count(
    sqs: SQSKit, make_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    """30 messages, a queue whose redrive allows 3 receives, a dependency down for 20 s
    from the first handler call. While it is down only the probes run (one at a time,
    cool-downs of 2, 4 and 8 s) and only they are received; once it is back every message
    is handled exactly once, none is dead-lettered, and the breaker is visible in the
    statistics, /readyz, /metrics and the log meanwhile.

    Catches a breaker that does not pause polling (every message would be received, fail
    and come back, reaching the redrive's 3 receives and the dead-letter queue within the
    20 s), one that lets more than one probe through, and a framework that dead-letters a
    message on its last receive when its failure was the dependency's.
    """
    queue = await sqs.create_queue(max_receive_count=3)
    ids = await sqs.send(queue, (str(n) for n in range(30)))
    app = make_app()
    down_until: float | None = None
    starts: list[tuple[float, str, int]] = []  # (when, message id, receive count)
    succeeded: Counter[str] = Counter()

    @app.consumer(
        queue.name,
        concurrency=3,
        wait_time=1,
        breaker=Breaker(cooldown=2, max_cooldown=8),
    )
    async def handle(message: Message) -> None:
        nonlocal down_until
        at = time.monotonic()
        starts.append((at, message.message_id, message.receive_count))
        if down_until is None:
            down_until = at + OUTAGE
        await anyio.sleep(0.05)
        if time.monotonic() < down_until:
            raise DependencyDown("the payments API")
        succeeded[message.message_id] += 1

    caplog.set_level(logging.INFO, logger="aiosqsworker")
    async with app, anyio.create_task_group() as tg:
        port = await tg.start(partial(serve_metrics, app, port=0))
        await eventually(lambda: app.statistics()["handle"].breaker == "open", within=20)
        assert down_until is not None
        await anyio.sleep(1.5)  # polls open at the trip have come back (wait_time=1)
        received_after_trip = app.statistics()["handle"].received
        async with aiohttp.ClientSession() as session:
            ready = await session.get(f"http://127.0.0.1:{port}/readyz")
            assert ready.status == 503
            assert "circuit breaker open: handle" in await ready.text()
            metrics = await (await session.get(f"http://127.0.0.1:{port}/metrics")).text()
        labels = f'consumer="handle",queue="{queue.name}"'
        assert f'aiosqsworker_breaker_state{{{labels},state="open"}} 1.0' in metrics
        assert f"aiosqsworker_breaker_trips_total{{{labels}}} 1.0" in metrics
        await anyio.sleep(max(0.0, down_until - time.monotonic()))
        received_while_down = app.statistics()["handle"].received - received_after_trip
        await eventually(lambda: len(succeeded) == len(ids), within=30, what="all handled")
        stats = app.statistics()["handle"]
        tg.cancel_scope.cancel()

    first_start = starts[0][0]
    back_at = down_until
    assert back_at is not None
    late_starts = [at for at, _, _ in starts if first_start + 1.5 <= at < back_at]
    assert 1 <= len(late_starts) <= 3, f"only the probes ran while down: {late_starts}"
    assert all(b - a >= 1.5 for a, b in itertools.pairwise(late_starts)), late_starts
    assert received_while_down <= len(late_starts), "only the probes were received"
    assert set(succeeded) == set(ids)
    assert set(succeeded.values()) == {1}
    assert stats.dead_lettered == 0
    assert max(count for _, _, count in starts) <= 3, "no message reached the redrive"
    assert await sqs.drain(await sqs.dlq_of(queue)) == []
    assert stats.breaker == "closed"
    assert stats.breaker_trips == 1
    assert stats.breaker_held >= 1 + len(late_starts) - 1
    messages = [record.getMessage() for record in caplog.records]
    assert any("circuit breaker open" in text for text in messages)
    assert any("circuit breaker closed" in text for text in messages)


async def test_failures_of_one_kind_within_a_window_open_the_breaker(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """Breaker(failures=3, window=30): the third ConnectionError opens it; the first two
    were ordinary failures (retried), and a probe after the cool-down closes it.

    Catches a window that counts every exception class together, or never trips.
    """
    queue = await sqs.create_queue()
    await sqs.send(queue, (str(n) for n in range(3)))
    app = make_app()
    calls = 0

    @app.consumer(
        queue.name,
        concurrency=1,
        wait_time=1,
        retry_base_delay=0.5,
        retry_max_delay=1,
        breaker=Breaker(failures=3, window=30, cooldown=1),
    )
    async def handle(message: Message) -> None:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise ConnectionError("refused")

    async with app:
        await eventually(lambda: app.statistics()["handle"].breaker_trips == 1, within=20)
        await eventually(lambda: app.statistics()["handle"].succeeded == 3, within=20)
        stats = app.statistics()["handle"]
    assert stats.breaker == "closed"
    assert stats.breaker_held == 1, "only the failure that tripped it was held"


def test_breaker_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="did you mean 'cooldown'"):
        Breaker(cooldwn=5)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="max_cooldown=1 is invalid"):
        Breaker(cooldown=5, max_cooldown=1)
    with pytest.raises(ConfigurationError, match="trip_on="):
        Breaker(trip_on=["ConnectionError"])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="breaker="):
        App().consumer("q", breaker=5)  # type: ignore[arg-type]
    assert Breaker(trip_on=OSError).trip_on == (OSError,)
