"""Shutdown of an embedded App: what runs finishes, what waits goes back, nothing is stranded:
what the page `docs/shutdown.md` documents (the command line's quick stop and `--burst` are
in `test_quick_stop.py`).

Every scenario runs against the real local server, on a queue whose visibility timeout (30 s)
is far longer than the test: a message the server shows as visible right after a stop was
released with visibility 0, not left to time out. Those marked ``also_in_memory`` run on
the in-memory SQS too (see `conftest.py`). The last ones run `python -m aiosqsworker` on the
user modules `tests.apps.misbehaving` and `tests.apps.offload_service`.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import anyio
import pytest

from aiosqsworker import App, ConsumerStatistics, Message, WorkerState
from aiosqsworker._consumer.receiver import WATCH_VISIBILITY
from aiosqsworker._run.burst import BURST_FAILED
from aiosqsworker.testing import FaultProxy, LocalSQSServer

from .clikit import cli, counts_become, exit_code, ids_of, read_ledger, tail
from .kit import Queue, SQSKit, eventually, eventually_async
from .test_offload import SERVICE, offload_env, read_events, runs
from .test_robustness import APP, env_for, orders
from .test_stuck_handlers import hang

LONG_VISIBILITY = 30


def _stats(app: App) -> ConsumerStatistics:
    return app.statistics()["handle"]


def _state(app: App) -> WorkerState:
    """The app's state, read anew (not narrowed by an earlier assertion)."""
    return app.state


def _forced(app: App) -> bool:
    return app.forced


async def _counts_are(sqs: SQSKit, queue: Queue, expected: tuple[int, int]) -> None:
    async def check() -> bool:
        return await sqs.counts(queue) == expected

    await eventually_async(check, within=15, every=0.1)


def _never_called(signum: int, frame: object) -> None:
    raise AssertionError(f"signal {signum} reached the test's own handler")


@contextmanager
def sentinel_signal_handlers() -> Iterator[dict[int, object]]:
    """Put recognisable handlers on SIGTERM and SIGINT; give back what was there before."""
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    for signum in previous:
        signal.signal(signum, _never_called)
    try:
        yield dict.fromkeys(previous, _never_called)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _signal_handlers() -> dict[int, object]:
    return {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}


@pytest.mark.also_in_memory
async def test_graceful_stop_finishes_running_handlers_and_releases_the_buffered(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    queue = await sqs.create_queue(visibility_timeout=LONG_VISIBILITY)
    ids = await sqs.send(queue, (str(n) for n in range(10)))
    started: list[str] = []
    finished: list[str] = []
    cancelled: list[str] = []
    gate = anyio.Event()
    app = make_app()

    # Capacity 3 + 7 = 10, one poller: one poll takes all ten; while messages wait in the
    # buffer and fewer than a batch of slots is free, no further poll opens, so nothing can
    # be in a poll when the stop comes.
    # A linger of 10 s: only the flush on shutdown can delete the finished ones in time.
    @app.consumer(queue.name, concurrency=3, prefetch=7, wait_time=1, ack_linger=10)
    async def handle(message: Message) -> None:
        started.append(message.message_id)
        try:
            await gate.wait()
        except BaseException:
            cancelled.append(message.message_id)
            raise
        finished.append(message.message_id)

    async with app:
        await eventually(
            lambda: _stats(app).running == 3 and _stats(app).buffered == 7,
            what="3 handlers running, 7 messages buffered",
        )
        app.stop()
        assert _state(app) is WorkerState.STOPPING
        # The 7 buffered messages come back at once, while the 3 handlers still run.
        await _counts_are(sqs, queue, (7, 3))
        assert not finished
        assert not cancelled
        assert _state(app) is WorkerState.STOPPING
        stopping_since = time.monotonic()
        gate.set()
    stopped_in = time.monotonic() - stopping_since

    assert _state(app) is WorkerState.STOPPED
    assert sorted(finished) == sorted(started)
    assert len(started) == 3
    assert not cancelled
    assert stopped_in < 5, f"the deletes waited for their linger: {stopped_in:.1f} s"
    stats = _stats(app)
    assert (stats.received, stats.succeeded, stats.deleted, stats.released) == (10, 3, 3, 7)
    # Nothing invisible: the finished ones are deleted, the others are ready for anyone.
    assert await sqs.counts(queue) == (7, 0)
    left = await sqs.drain(queue)
    assert {m["MessageId"] for m in left} == set(ids) - set(started)
    assert all(m["Attributes"]["ApproximateReceiveCount"] == "2" for m in left)


async def test_a_handler_past_the_shutdown_timeout_is_cancelled_and_released(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    queue = await sqs.create_queue(visibility_timeout=LONG_VISIBILITY)
    quick_id, slow_id = await sqs.send(queue, ["quick", "slow"])
    gate = anyio.Event()
    events: list[tuple[str, str]] = []
    app = make_app(shutdown_timeout=1)

    @app.consumer(queue.name, concurrency=2, prefetch=0, wait_time=1)
    async def handle(message: Message) -> None:
        try:
            if message.body == "slow":
                await anyio.sleep_forever()
            await gate.wait()
        except BaseException:
            events.append(("cancelled", message.body))
            raise
        events.append(("finished", message.body))

    async with app:
        await eventually(lambda: _stats(app).running == 2, what="both handlers running")
        app.stop()
        stopping_since = time.monotonic()
        gate.set()  # the quick one may finish now; the slow one never does by itself
    stopped_in = time.monotonic() - stopping_since

    assert events == [("finished", "quick"), ("cancelled", "slow")]
    assert 0.9 < stopped_in < 6, f"stopped in {stopped_in:.1f} s with a 1 s shutdown timeout"
    stats = _stats(app)
    assert (stats.succeeded, stats.deleted, stats.released) == (1, 1, 1)
    assert await sqs.counts(queue) == (1, 0)
    (left,) = await sqs.drain(queue)
    assert left["MessageId"] == slow_id != quick_id


@pytest.mark.also_in_memory
async def test_a_second_stop_forces_running_handlers_to_end_now(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    queue = await sqs.create_queue(visibility_timeout=LONG_VISIBILITY)
    ids = await sqs.send(queue, (str(n) for n in range(5)))
    cancelled: list[str] = []
    app = make_app(shutdown_timeout=60)

    @app.consumer(queue.name, concurrency=3, prefetch=2, wait_time=1)
    async def handle(message: Message) -> None:
        try:
            await anyio.sleep_forever()
        except BaseException:
            cancelled.append(message.message_id)
            raise

    async with app:
        await eventually(
            lambda: _stats(app).running == 3 and _stats(app).buffered == 2,
            what="3 handlers running, 2 messages buffered",
        )
        app.stop()
        # The graceful stop has begun (the buffered two are back) and waits for the handlers.
        await _counts_are(sqs, queue, (2, 3))
        assert not cancelled
        assert _state(app) is WorkerState.STOPPING
        assert not _forced(app)
        forced_at = time.monotonic()
        app.stop(force=True)
    stopped_in = time.monotonic() - forced_at

    assert stopped_in < 5, f"a forced stop took {stopped_in:.1f} s"
    assert _forced(app)
    assert _state(app) is WorkerState.STOPPED
    assert len(cancelled) == 3
    assert _stats(app).released == 5
    assert await sqs.counts(queue) == (5, 0)
    assert {m["MessageId"] for m in await sqs.drain(queue)} == set(ids)


@pytest.mark.also_in_memory
async def test_the_app_runs_in_the_background_of_async_with_without_touching_signals(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    queue = await sqs.create_queue(visibility_timeout=LONG_VISIBILITY)
    app = make_app()
    handled: Counter[str] = Counter()
    seen_in_handlers: list[dict[int, object]] = []
    ping = anyio.Event()
    pong = anyio.Event()

    @app.consumer(queue.name, concurrency=4, prefetch=0, wait_time=1)
    async def handle(message: Message) -> None:
        seen_in_handlers.append(_signal_handlers())
        if message.body == "ping":
            ping.set()
            await pong.wait()  # answered by the host's own task, in the same event loop
        handled[message.body] += 1

    with sentinel_signal_handlers() as sentinels:
        async with app, anyio.create_task_group() as host:
            assert _state(app) is WorkerState.RUNNING
            assert _signal_handlers() == sentinels

            async def host_work() -> None:
                await ping.wait()
                pong.set()

            host.start_soon(host_work)
            # The host sends through the running app's client while it consumes.
            sent = [await app.send(queue.name, body) for body in ("ping", "a", "b", "c")]
            await eventually(lambda: sum(handled.values()) == 4, what="4 messages handled")
            assert _signal_handlers() == sentinels
        assert _state(app) is WorkerState.STOPPED
        assert _signal_handlers() == sentinels
    assert len(set(sent)) == 4
    assert handled == {"ping": 1, "a": 1, "b": 1, "c": 1}
    assert seen_in_handlers
    assert all(seen == sentinels for seen in seen_in_handlers)
    assert await sqs.counts(queue) == (0, 0)


@pytest.mark.also_in_memory
async def test_run_in_a_task_group_until_another_task_calls_stop(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    queue = await sqs.create_queue(visibility_timeout=LONG_VISIBILITY)
    ids = await sqs.send(queue, (str(n) for n in range(20)))
    app = make_app()
    handled: Counter[str] = Counter()
    states: list[WorkerState] = []
    run_returned = anyio.Event()

    @app.consumer(queue.name, concurrency=5, prefetch=5, wait_time=1)
    async def handle(message: Message) -> None:
        states.append(app.state)
        await anyio.sleep(0.01)
        handled[message.message_id] += 1

    async def run_app() -> None:
        await app.run()
        run_returned.set()

    async def controller() -> None:
        await eventually(lambda: app.state is WorkerState.RUNNING, what="running")
        await eventually(lambda: _stats(app).deleted == 20, what="20 messages deleted")
        assert not run_returned.is_set()
        app.stop()

    with sentinel_signal_handlers() as sentinels:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_app)
            tg.start_soon(controller)
            await eventually(lambda: app.state is WorkerState.RUNNING, what="running")
            assert _signal_handlers() == sentinels
        assert _signal_handlers() == sentinels
    assert run_returned.is_set()
    assert _state(app) is WorkerState.STOPPED
    assert set(states) == {WorkerState.RUNNING}
    assert set(handled) == set(ids)
    assert max(handled.values()) == 1
    assert await sqs.counts(queue) == (0, 0)


async def test_a_cancelled_host_still_releases_and_flushes(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    queue = await sqs.create_queue(visibility_timeout=LONG_VISIBILITY)
    await sqs.send(queue, ["quick", "stuck"])
    app = make_app()

    # A linger of 10 s: the quick one's delete is only sent in time by the shielded flush.
    @app.consumer(queue.name, concurrency=2, prefetch=0, wait_time=1, ack_linger=10)
    async def handle(message: Message) -> None:
        if message.body == "stuck":
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(app.run)
        await eventually(
            lambda: (
                app.state is WorkerState.RUNNING
                and _stats(app).succeeded == 1
                and _stats(app).running == 1
            ),
            what="the quick one done, the stuck one running",
        )
        cancelled_at = time.monotonic()
        tg.cancel_scope.cancel()
    stopped_in = time.monotonic() - cancelled_at

    assert stopped_in < 5
    assert _state(app) is WorkerState.STOPPED
    stats = _stats(app)
    assert (stats.deleted, stats.released) == (1, 1)
    assert await sqs.counts(queue) == (1, 0)
    (left,) = await sqs.drain(queue)
    assert left["Body"] == "stuck"


async def test_a_poll_open_at_the_stop_finishes_and_what_it_brings_is_released(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """A busy poll (its poller was started because a poll came back full) is open at the
    stop; a message arrives meanwhile.

    Naive code it catches: giving up every open poll at a stop: this one asked for the full
    visibility timeout, and the message it takes would stay hidden for 30 s. A busy poll is
    let finish (it waits at most BUSY_WAIT), and what it brings is released at once.
    """
    queue = await sqs.create_queue(visibility_timeout=LONG_VISIBILITY)
    await sqs.send(queue, ["slow"])
    gate = anyio.Event()
    async with FaultProxy(sqs_server.endpoint_url) as proxy:  # counts the polls sent
        app = make_app(endpoint_url=proxy.url)

        # Two slots, one message per poll: two pollers. The second poll reaches the server
        # half a second after the first (never two scans at once: see the module's notes),
        # so the first takes the slow message (a full poll: the second poller starts busy)
        # and the second stays in its long poll (BUSY_WAIT, 2 s) on the then empty queue.
        # It is the only poll open: the first waits for room.
        proxy.inject("ReceiveMessage", "latency", seconds=0)
        proxy.inject("ReceiveMessage", "latency", seconds=0.5)

        @app.consumer(queue.name, concurrency=2, prefetch=0, max_messages=1, wait_time=10)
        async def handle(message: Message) -> None:
            assert message.body == "slow"
            await gate.wait()

        async with app:
            await eventually(
                lambda: (
                    _stats(app).running == 1
                    and _stats(app).polls == 1
                    and proxy.requests["ReceiveMessage"] == 2
                ),
                what="one handler running and exactly one poll open",
            )
            app.stop()
            (late_id,) = await sqs.send(queue, ["late"])  # during the drain
            await eventually(lambda: _stats(app).released == 1, what="the late one released")
            # Visible again at once, while the slow handler still holds its own message.
            assert await sqs.counts(queue) == (1, 1)
            assert _stats(app).running == 1
            gate.set()
        assert proxy.requests["ReceiveMessage"] == 2  # no poll began after the stop
    stats = _stats(app)
    assert (stats.received, stats.deleted, stats.released) == (2, 1, 1)
    assert await sqs.counts(queue) == (1, 0)
    (left,) = await sqs.drain(queue)
    assert left["MessageId"] == late_id


@asynccontextmanager
async def an_idle_consumer_polling(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App], wait_time: int
) -> AsyncIterator[tuple[App, Queue]]:
    """A running app whose one consumer has a long poll of `wait_time` seconds open."""
    queue = await sqs.create_queue(visibility_timeout=LONG_VISIBILITY)
    async with FaultProxy(sqs_server.endpoint_url) as proxy:
        app = make_app(endpoint_url=proxy.url)

        @app.consumer(queue.name, concurrency=1, prefetch=0, max_messages=1, wait_time=wait_time)
        async def handle(message: Message) -> None:
            raise AssertionError("started after the stop")

        async with app:
            await eventually(lambda: proxy.requests["ReceiveMessage"] == 1, what="a long poll open")
            assert _stats(app).polls == 0
            yield app, queue


async def test_a_graceful_stop_gives_up_an_idle_poll_at_once_and_hides_nothing_for_long(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """An idle consumer is stopped with its 20 s long poll open; a message arrives meanwhile.

    Naive code it catches: waiting for the open poll (the stop takes up to 20 s), or giving
    up a poll that asked for the full visibility timeout (the server hands the message to a
    poll whose client is gone, and it stays invisible for 30 s here). An idle consumer's
    poll is a watch poll: the stop gives it up at once, and what it may take is visible
    again within WATCH_VISIBILITY seconds.
    """
    async with an_idle_consumer_polling(sqs, sqs_server, make_app, 20) as (app, queue):
        app.stop()
        stopping_since = time.monotonic()
    stopped_in = time.monotonic() - stopping_since
    assert stopped_in < 2, f"the stop took {stopped_in:.1f} s"
    assert _state(app) is WorkerState.STOPPED
    # The server may still hold the given-up poll open, and hand it this message.
    (late_id,) = await sqs.send(queue, ["late"])
    sent_at = time.monotonic()
    (left,) = await sqs.drain_once_back(queue)
    hidden_for = time.monotonic() - sent_at
    assert hidden_for < WATCH_VISIBILITY + 2, f"the late message was hidden {hidden_for:.1f} s"
    assert left["MessageId"] == late_id


async def test_a_forced_stop_abandons_an_open_long_poll_at_once(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """A forced stop does not wait out a 20 s poll."""
    wait_time = 20
    async with an_idle_consumer_polling(sqs, sqs_server, make_app, wait_time) as (app, queue):
        app.stop(force=True)
        stopping_since = time.monotonic()
    stopped_in = time.monotonic() - stopping_since
    assert stopped_in < 5, f"the forced stop waited {stopped_in:.1f} s for a {wait_time} s poll"
    assert _state(app) is WorkerState.STOPPED
    assert await sqs.counts(queue) == (0, 0)


# Cancelled from outside, stopped before it started.


async def test_cancelling_the_task_that_runs_the_app_releases_buffered_messages(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    queue = await sqs.create_queue(visibility_timeout=60)
    await sqs.send(queue, (str(n) for n in range(6)))
    started = anyio.Event()
    app = make_app()

    @app.consumer(queue.name, concurrency=1, prefetch=5, wait_time=1)
    async def handle(message: Message) -> None:
        started.set()
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(app.run)
        await started.wait()
        await eventually(lambda: app.statistics()["handle"].buffered == 5)
        tg.cancel_scope.cancel()  # the host gives up on it: no stop(), no drain

    # Released (visibility 0), not left hidden for the 60 s visibility timeout: the one that
    # was running and the five that were buffered alike.
    assert await sqs.counts(queue) == (6, 0)


async def test_a_stop_before_the_run_begins_ends_that_run_at_once(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    queue = await sqs.create_queue()
    app = make_app()

    @app.consumer(queue.name, wait_time=1)
    async def handle(message: Message) -> None:
        pass

    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg:
            tg.start_soon(app.run)
            app.stop()  # before run() has even created its worker
    assert app.state.value == "stopped"


# Through `python -m aiosqsworker`: handlers that never return (an async one is cancelled at
# the shutdown timeout; a def one's thread cannot be stopped, and the drained worker exits).


async def test_a_handler_that_never_returns_is_cancelled_and_released_on_sigterm(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """A handler hangs forever (no timeout=); SIGTERM with a 2 s shutdown timeout.

    Naive code it catches: waiting for running handlers without a bound (the worker never
    exits), or exiting without releasing (the message is hidden for its 30 s timeout).
    """
    queue = await sqs.create_queue(visibility_timeout=30)
    [hanging] = await sqs.send(queue, orders("hang", range(1)))
    ledger, log = tmp_path / "ledger", tmp_path / "log"
    env = env_for(sqs_server.endpoint_url, queue, ledger, wait_time="1")
    async with cli([APP, "--shutdown-timeout", "2"], env, log) as worker:
        await eventually(lambda: hanging in ids_of(read_ledger(ledger), "start"), within=20)
        worker.send_signal(signal.SIGTERM)
        code, took = await exit_code(worker, log, within=15)
    assert code == 0, tail(log)
    assert took < 8, f"the stop took {took:.1f} s"
    assert await sqs.counts(queue) == (1, 0)  # released: visible at once
    assert hanging in ids_of(read_ledger(ledger), "cancel")
    assert "1 handler still running after 2 s: cancelling them" in log.read_text()


@pytest.mark.parametrize("mode", ["sigterm", "burst", "workers"])
async def test_a_drained_worker_exits_though_a_def_handler_never_returns(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path, mode: str
) -> None:
    """A ``def`` handler sleeps for an hour; the worker drains (SIGTERM with
    ``--shutdown-timeout 3``, alone or as one of ``--workers 2``, or ``--burst`` once its
    timeout of 1 s dead-lettered the message) and must then exit, saying which handler it
    left running.

    Naive code it catches: returning from the run and letting the interpreter end as usual:
    it waits at exit for every thread still running, so the drained worker hangs until the
    handler returns (an hour): a pod runs to its grace period, ``--burst`` never ends, the
    supervisor of ``--workers`` waits for its worker.
    """
    queue = await sqs.create_queue(visibility_timeout=30, max_receive_count=1)
    [stuck] = await sqs.send(queue, hang(1, 3600))
    ledger, log = tmp_path / "ledger", tmp_path / "stderr"
    settings = {"commands_thread": queue.name, "visibility": "30"}
    args = {
        "sigterm": [SERVICE, "--shutdown-timeout", "3"],
        "workers": [SERVICE, "--shutdown-timeout", "3", "--workers", "2"],
        "burst": [SERVICE, "--burst"],
    }[mode]
    if mode == "burst":
        settings["timeout"] = "1"
    async with cli(args, offload_env(sqs_server, ledger, **settings), log) as worker:
        await eventually(lambda: stuck in runs(read_events(ledger), "start"), within=30)
        if mode != "burst":
            worker.send_signal(signal.SIGTERM)
        code, took = await exit_code(worker, log, within=20)
    # --burst exits BURST_FAILED: its one message failed (timed out) and was dead-lettered
    assert code == (BURST_FAILED if mode == "burst" else 0), tail(log)
    assert took < (12 if mode == "burst" else 10), f"exited {took:.1f} s after the stop"
    text = log.read_text()
    lines = [line for line in text.splitlines() if "it abandoned still running" in line]
    assert len(lines) == 1, tail(log)
    assert (
        "1 handler thread it abandoned still running (a thread cannot be stopped): handler "
        "tests.apps.offload_service.commands_in_thread of consumer 'commands_in_thread' (1)"
    ) in lines[0]
    if mode == "burst":  # timed out on its only allowed receive: dead-lettered
        await counts_become(sqs, await sqs.dlq_of(queue), (1, 0))
    else:  # cancelled at the shutdown timeout: released, visible again at once
        assert await sqs.counts(queue) == (1, 0)
