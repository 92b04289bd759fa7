"""Leases that hold where the event loop cannot keep them: a loop blocked by its own handler,
and visibility windows shorter than the keeper's lead time.

Each scenario runs two workers on one queue: the app under test in the test's event loop,
and a second one on an event loop of its own, in a thread (`SecondWorker`), which receives
whatever the first one lets go. Each docstring names the naive code the scenario catches.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import anyio
import pytest

from aiosqsworker import App, ConsumerStatistics, Message
from aiosqsworker.testing import LocalSQSServer

from .kit import REGION, SQSKit, eventually, stats_of

#: (worker, message id, receive count, time.monotonic() at the start) per handler run.
Run = tuple[str, str, int, float]


class SecondWorker:
    """Another worker on the same queue, on its own event loop in a thread, started once
    `start_after` is set (so that the first worker receives the message first)."""

    def __init__(
        self,
        endpoint_url: str,
        queue: str,
        runs: list[Run],
        *,
        visibility_timeout: int,
        start_after: threading.Event | None = None,
        job_seconds: float = 0.0,
    ) -> None:
        self._endpoint_url = endpoint_url
        self._queue = queue
        self._runs = runs
        self._visibility_timeout = visibility_timeout
        self._start_after = start_after
        self._job_seconds = job_seconds
        self._stop = threading.Event()
        self.statistics: dict[str, ConsumerStatistics] = {}
        self._thread = threading.Thread(target=self._main, name="second-worker", daemon=True)

    def __enter__(self) -> SecondWorker:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the second worker did not stop"

    def _main(self) -> None:
        if self._start_after is not None and not self._start_after.wait(timeout=60):
            return
        anyio.run(self._run)

    async def _run(self) -> None:
        app = App(region=REGION, endpoint_url=self._endpoint_url, shutdown_timeout=10)

        @app.consumer(
            self._queue, wait_time=1, visibility_timeout=self._visibility_timeout, concurrency=5
        )
        async def handle(message: Message) -> None:
            self._runs.append(
                ("second", message.message_id, message.receive_count, time.monotonic())
            )
            await anyio.sleep(self._job_seconds)

        async with app:
            await anyio.to_thread.run_sync(self._stop.wait)
            self.statistics = app.statistics()


# An async handler that blocks the loop.

BLOCK = 15.0


@pytest.mark.slow
@pytest.mark.parametrize("client", ["fast", "botocore", "aiohttp"])
async def test_leases_hold_while_an_async_handler_blocks_the_loop(
    sqs: SQSKit,
    sqs_server: LocalSQSServer,
    make_app: Callable[..., App],
    client: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An ``async`` handler calls ``time.sleep(15)`` on a 5 s visibility timeout, a second
    worker polling the queue all along: the message runs once, on the first worker, and is
    deleted; the lease keeper's thread extended it while the loop could not, and says so
    once the loop turns again. The watchdog still names the handler blocking the loop.

    Naive code it catches: leases kept by the event loop alone (the keeper's task never runs
    while the handler blocks: the lease runs out at 5 s and the second worker runs the
    message again, 2 to 4 times in 15 s); and a thread that stops extending after its first
    call, or that signs differently from the client in use.
    """
    caplog.set_level(logging.INFO, logger="aiosqsworker")
    queue = await sqs.create_queue(visibility_timeout=5)
    runs: list[Run] = []
    blocking = threading.Event()
    app = make_app(client=client)

    @app.consumer(queue.name, wait_time=1, visibility_timeout=5)
    async def handle(message: Message) -> None:
        runs.append(("first", message.message_id, message.receive_count, time.monotonic()))
        blocking.set()
        time.sleep(BLOCK)  # noqa: ASYNC251 - the misbehaviour under test

    with SecondWorker(
        sqs_server.endpoint_url, queue.name, runs, visibility_timeout=5, start_after=blocking
    ):
        async with app:
            [message_id] = await sqs.send(queue, ["job"])
            await eventually(lambda: stats_of(app).deleted == 1, within=BLOCK + 20)
            extended = stats_of(app).leases_extended
        await anyio.sleep(6)  # the second worker polls on, past another visibility window
    assert [(worker, id_, count) for worker, id_, count, _ in runs] == [("first", message_id, 1)]
    assert extended >= 3  # about one extension a second after the first, for 15 s
    assert stats_of(app).leases_lost == 0
    lines = [record.getMessage() for record in caplog.records]
    assert any("consumer 'handle'" in line for line in lines if "has not turned" in line)
    handed_back = [line for line in lines if "the lease keeper's thread extended" in line]
    assert len(handed_back) == 1, handed_back
    assert await sqs.counts(queue) == (0, 0)


@pytest.mark.slow
async def test_a_loop_blocked_past_the_limit_lets_its_leases_go_with_one_line(
    sqs: SQSKit,
    sqs_server: LocalSQSServer,
    make_app: Callable[..., App],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``blocked_loop_limit=3``, a 2 s visibility timeout, and an ``async`` handler that
    blocks the loop for 10 s: the lease holds for the first 3 s (longer than its window),
    then one error line says the worker is stuck and lets its leases go, and the second
    worker receives the message (its second receive) while the first is still blocked.

    Naive code it catches: a thread that keeps the leases of a wedged worker forever (its
    messages would never reach a healthy worker), or that lets them go without a word, or
    that logs once per lease or per tick.
    """
    caplog.set_level(logging.INFO, logger="aiosqsworker")
    queue = await sqs.create_queue(visibility_timeout=2)
    runs: list[Run] = []
    blocking = threading.Event()
    app = make_app(blocked_loop_limit=3)

    @app.consumer(queue.name, wait_time=1, visibility_timeout=2)
    async def handle(message: Message) -> None:
        runs.append(("first", message.message_id, message.receive_count, time.monotonic()))
        blocking.set()
        time.sleep(10)  # noqa: ASYNC251 - the misbehaviour under test
        runs.append(("first-ended", message.message_id, 0, time.monotonic()))

    with SecondWorker(
        sqs_server.endpoint_url, queue.name, runs, visibility_timeout=30, start_after=blocking
    ):
        async with app:
            [message_id] = await sqs.send(queue, ["job"])
            await eventually(lambda: any(run[0] == "first-ended" for run in runs), within=40)
        await eventually(lambda: any(run[0] == "second" for run in runs), within=10)
        await anyio.sleep(2)
    by_worker = {worker: (id_, count, at) for worker, id_, count, at in runs}
    _, _, started = by_worker["first"]
    _, _, ended = by_worker["first-ended"]
    second_id, second_count, second_at = by_worker["second"]
    assert (second_id, second_count) == (message_id, 2)
    assert started + 3 - 0.2 <= second_at < ended, (started, second_at, ended)
    stuck = [r for r in caplog.records if "this worker is stuck" in r.getMessage()]
    assert len(stuck) == 1, [r.getMessage() for r in stuck]
    assert stuck[0].levelno == logging.ERROR
    assert "blocked_loop_limit=3" in stuck[0].getMessage()
    assert "1 lease" in stuck[0].getMessage()
    assert await sqs.counts(queue) == (0, 0)


# Windows shorter than the keeper's lead time (Shoryuken #1021).


@pytest.mark.slow
async def test_a_one_second_visibility_timeout_is_extended_and_nothing_runs_twice(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """A queue whose VisibilityTimeout is 1 s, consumers asking for 1 s too, two workers,
    and jobs of 4 s: every lease holds (extended several times a second), each message runs
    once, none is lost.

    Naive code it catches: a keeper that starts extending a fixed 1-2 s before expiry (on a
    1 s window: before the message was even received, so never, or in a busy loop), or
    whose time box for a call is longer than the window it protects.
    """
    queue = await sqs.create_queue(visibility_timeout=1)
    runs: list[Run] = []
    app = make_app()

    @app.consumer(queue.name, wait_time=1, visibility_timeout=1, concurrency=5)
    async def handle(message: Message) -> None:
        runs.append(("first", message.message_id, message.receive_count, time.monotonic()))
        await anyio.sleep(4)

    second = SecondWorker(
        sqs_server.endpoint_url, queue.name, runs, visibility_timeout=1, job_seconds=4
    )
    with second:
        async with app:
            ids = await sqs.send(queue, [f"job {n}" for n in range(6)])
            await eventually(lambda: len(runs) >= len(ids), within=20)
            await anyio.sleep(6)  # every job ends; anything let go would run again meanwhile
            first = stats_of(app)
    ran = sorted(id_ for _, id_, _, _ in runs)
    assert ran == sorted(ids), runs
    assert {count for _, _, count, _ in runs} == {1}
    assert first.leases_lost == 0
    assert first.leases_extended >= 4 * first.succeeded
    assert second.statistics["handle"].leases_lost == 0
    assert await sqs.counts(queue) == (0, 0)
