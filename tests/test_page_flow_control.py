"""Flow control on a real server: rate limits, pause and resume, live concurrency, polling,
as the page `docs/flow-control.md` documents them.

Each scenario runs a worker against the test server over HTTP and checks what the server
shows (visible and in-flight counts, requests seen by a counting proxy) as well as what the
handlers saw. Counts and ratios have generous margins: the machine may be loaded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import partial

import aiohttp
import anyio
import pytest

from aiosqsworker import App, ConfigurationError, ConsumerStatistics, Message
from aiosqsworker._consumer.stats import Counters
from aiosqsworker._run.metrics import serve_metrics
from aiosqsworker._run.progress import format_progress
from aiosqsworker.testing import FaultProxy, LocalSQSServer

from .kit import Queue, SQSKit, eventually, eventually_async, stats_of


async def sample(interval: float, action: Callable[[], None]) -> None:
    """Call `action` every `interval` s until cancelled (a sampler beside a scenario)."""
    while True:
        action()
        await anyio.sleep(interval)


# (1) Rate limits.


async def test_a_rate_limit_paces_starts_and_receives_no_faster_than_it_starts(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """150 messages at max_rate=20 start over 6-10 s, never more than ~24 in any second.

    Catches a limit applied after ReceiveMessage (a semaphore or sleep around the handler):
    with concurrency 50 the worker would hold 60 messages unstarted that other workers could
    take; here at most a second's worth (20) waits, and the server never shows many more
    than that in flight. Catches a limit in the poller alone, too: a poll of ten arriving
    late beside the next one would start 30 in one second.
    """
    total, rate = 150, 20
    queue = await sqs.create_queue()
    await sqs.send(queue, (str(n) for n in range(total)))
    app = make_app()
    starts: list[float] = []
    unstarted: list[int] = []

    @app.consumer(queue.name, concurrency=50, wait_time=1, max_rate=rate)
    async def handle(message: Message) -> None:
        starts.append(anyio.current_time())

    async with app, anyio.create_task_group() as sampler:
        sampler.start_soon(sample, 0.05, lambda: unstarted.append(stats_of(app).buffered))
        await eventually(lambda: stats_of(app).deleted == total, within=40)
        assert stats_of(app).max_rate == rate
        sampler.cancel_scope.cancel()
    assert len(starts) == total
    span = starts[-1] - starts[0]
    assert 6.0 <= span <= 10.0, f"150 starts at 20/s took {span:.1f} s"
    after_first = [t for t in starts if t >= starts[0] + 1.0]
    busiest = max(sum(1 for t in after_first if s <= t < s + 1.0) for s in after_first)
    assert busiest <= 24, f"{busiest} starts in one second at max_rate=20"
    assert max(unstarted) <= rate, "more than a second's worth received ahead of the rate"
    assert await sqs.counts(queue) == (0, 0)


async def test_a_rate_limited_consumer_leaves_the_backlog_to_others(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """A slow-rate consumer holds about a second's worth; the rest stays visible.

    Catches prefetching to the consumer's full room (concurrency 50 + prefetch 10) whatever
    its rate: 60 messages invisible to every other worker for as long as they wait.
    """
    queue = await sqs.create_queue()
    await sqs.send(queue, (str(n) for n in range(60)))
    app = make_app()

    @app.consumer(queue.name, concurrency=50, wait_time=1, max_rate=2)
    async def handle(message: Message) -> None:
        pass

    async with app:
        await eventually(lambda: stats_of(app).succeeded >= 4, within=20)
        visible, in_flight = await sqs.counts(queue)
        held = stats_of(app).received - stats_of(app).succeeded
    assert held <= 3, f"{held} received and not started at max_rate=2"
    assert in_flight <= 6
    assert visible >= 50


# (2) Pause and resume.


async def test_a_paused_consumer_leaves_new_messages_visible_until_resumed(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """Paused: 20 messages sent stay visible and none is handled; resumed: all 20 are.

    Catches a pause that only stops the handlers (the polls go on receiving, and the
    messages sit invisible in the buffer), and one that cancels the open long poll (what
    SQS hands it then stays invisible for the visibility timeout).
    """
    queue = await sqs.create_queue()
    app = make_app()
    handled: Counter[str] = Counter()

    @app.consumer(queue.name, wait_time=1)
    async def handle(message: Message) -> None:
        handled[message.message_id] += 1

    async with app, anyio.create_task_group() as tg:
        port = await tg.start(partial(serve_metrics, app, port=0))
        await eventually(lambda: stats_of(app).polls >= 1)
        app.pause()
        assert stats_of(app).paused
        ids = await sqs.send(queue, (str(n) for n in range(20)))
        polls = stats_of(app).polls
        await anyio.sleep(2.5)  # past the open poll's wait: what it took is handed back
        assert handled == Counter()
        assert stats_of(app).polls <= polls + 1, "a paused consumer started polls"
        await eventually_async(lambda: _counts_are(sqs, queue, (20, 0)), within=10)
        async with aiohttp.ClientSession() as session:
            ready = await session.get(f"http://127.0.0.1:{port}/readyz")
            assert ready.status == 200
            assert "paused: handle" in await ready.text()
            metrics = await (await session.get(f"http://127.0.0.1:{port}/metrics")).text()
        assert f'aiosqsworker_paused{{consumer="handle",queue="{queue.name}"}} 1.0' in metrics

        app.resume()
        await eventually(lambda: stats_of(app).deleted == 20, within=20)
        assert not stats_of(app).paused
        tg.cancel_scope.cancel()
    assert handled == Counter(ids), "each message handled once, after the resume"
    assert await sqs.counts(queue) == (0, 0)


async def _counts_are(sqs: SQSKit, queue: Queue, expected: tuple[int, int]) -> bool:
    return await sqs.counts(queue) == expected


async def test_pausing_releases_the_buffer_and_lets_running_handlers_finish(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """At the pause, 2 handlers run and 4 messages wait: those 4 are visible again at once,
    the 2 finish and are deleted, and nothing else is received until the resume.

    Catches a pause that keeps the buffered messages (invisible, unstarted, for as long as
    the pause lasts) or that cancels the running handlers.
    """
    queue = await sqs.create_queue(visibility_timeout=30)
    ids = await sqs.send(queue, (str(n) for n in range(10)))
    app = make_app()
    release = anyio.Event()
    handled: Counter[str] = Counter()

    @app.consumer(queue.name, concurrency=2, prefetch=4, wait_time=1)
    async def handle(message: Message) -> None:
        await release.wait()
        handled[message.message_id] += 1

    async with app:
        await eventually(lambda: stats_of(app).running == 2 and stats_of(app).buffered == 4)
        app.pause()
        assert stats_of(app).buffered == 0
        # The visibility timeout is 30 s: only the release can make them visible this soon.
        await eventually_async(lambda: _counts_are(sqs, queue, (8, 2)), within=10)
        release.set()
        await eventually(lambda: stats_of(app).deleted == 2)
        await anyio.sleep(1.5)
        assert await sqs.counts(queue) == (8, 0)
        assert sum(handled.values()) == 2
        assert stats_of(app).released == 4
        app.resume()
        await eventually(lambda: stats_of(app).deleted == 10, within=20)
    assert set(handled) == set(ids)
    assert await sqs.counts(queue) == (0, 0)


async def test_a_consumer_paused_before_the_run_starts_paused(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    queue = await sqs.create_queue()
    await sqs.send(queue, ["a", "b"])
    app = make_app()
    handled: list[str] = []

    @app.consumer(queue.name, wait_time=1)
    async def handle(message: Message) -> None:
        handled.append(message.body)

    app.pause("handle")
    async with app:
        assert stats_of(app).paused
        await anyio.sleep(1.5)
        assert handled == []
        assert stats_of(app).polls == 0
        app.resume("handle")
        await eventually(lambda: stats_of(app).deleted == 2)
    assert sorted(handled) == ["a", "b"]


async def test_flow_controls_asked_during_a_run_hold_for_the_next_run(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """A consumer paused, and its concurrency changed, while the app runs: its next run starts
    paused and with that concurrency, until resumed.

    Naive code it catches: the asks kept by the run's worker alone (or the app told only of
    those made between runs), so that a restarted app forgets a pause an operator made and
    polls a queue it was told to leave alone.
    """
    queue = await sqs.create_queue()
    app = make_app()
    handled: list[str] = []

    @app.consumer(queue.name, concurrency=2, wait_time=1)
    async def handle(message: Message) -> None:
        handled.append(message.body)

    async with app:
        app.set_concurrency("handle", 7)
        app.pause("handle")
        assert (stats_of(app).paused, stats_of(app).concurrency) == (True, 7)
    await sqs.send(queue, ["a", "b"])
    async with app:
        assert (stats_of(app).paused, stats_of(app).concurrency) == (True, 7)
        await anyio.sleep(1.5)
        assert handled == []
        assert stats_of(app).polls == 0
        app.resume("handle")
        await eventually(lambda: stats_of(app).deleted == 2)
        assert stats_of(app).concurrency == 7
    assert sorted(handled) == ["a", "b"]


# (3) Live concurrency.


async def test_concurrency_grows_and_shrinks_under_load_and_loses_nothing(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """From 2 to 20 to 3 handlers while 120 messages flow: every one handled once.

    Catches a shrink that cancels running handlers (their messages would be released and
    handled twice), one that lets the slots already made go on past the new limit, and a
    growth that only takes effect at the next run.
    """
    total = 120
    queue = await sqs.create_queue()
    ids = await sqs.send(queue, (str(n) for n in range(total)))
    app = make_app()
    handled: Counter[str] = Counter()
    running = 0
    most: Counter[str] = Counter()
    phase = "start"

    @app.consumer(queue.name, concurrency=2, wait_time=1)
    async def handle(message: Message) -> None:
        nonlocal running
        running += 1
        most[phase] = max(most[phase], running)
        await anyio.sleep(0.3)
        running -= 1
        handled[message.message_id] += 1

    async with app:
        await eventually(lambda: sum(handled.values()) >= 10)
        phase = "grown"
        app.set_concurrency("handle", 20)
        assert stats_of(app).concurrency == 20
        await eventually(lambda: sum(handled.values()) >= 70, within=30)
        app.set_concurrency("handle", 3)
        # Running handlers finish; from then on no more than three run at once.
        await eventually(lambda: running <= 3)
        phase = "shrunk"
        await eventually(lambda: stats_of(app).deleted == total, within=60)
    assert most["start"] <= 2
    assert most["grown"] >= 12, f"the grown limit was not used: {most['grown']} at once"
    assert most["shrunk"] <= 3
    assert handled == Counter(ids), "a message lost or handled twice"
    assert stats_of(app).released == 0, "a handler was cancelled"
    assert await sqs.counts(queue) == (0, 0)


async def test_flow_controls_name_the_consumer_and_the_range() -> None:
    app = App(region="us-east-1")

    @app.consumer("orders", name="orders")
    async def handle(message: Message) -> None:
        pass

    with pytest.raises(ConfigurationError, match=r"no consumer is named 'order' .*'orders'"):
        app.pause("order")
    with pytest.raises(ConfigurationError, match=r"no consumer is named 'billing'.*: orders"):
        app.resume("billing")
    with pytest.raises(ConfigurationError, match=r"concurrency=0 is invalid.*from 1 to 10000"):
        app.set_concurrency("orders", 0)
    with pytest.raises(ConfigurationError, match="did you mean 'orders'"):
        app.set_concurrency("ordres", 5)


# (4) Adaptive polling.


async def test_an_idle_consumer_keeps_one_poll_and_widens_for_a_burst(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """Concurrency 100, idle: one ReceiveMessage per wait_time, not eleven; a message sent
    then starts at once; a burst widens the polling, and idle again it narrows back to one.

    Catches a fixed number of pollers sized to the room (11 here: 11 requests per wait_time
    on an empty queue), and a width that widens one poll per round trip.
    """
    wait_time = 2
    queue = await sqs.create_queue()
    async with FaultProxy(sqs_server.endpoint_url) as proxy:
        app = make_app(endpoint_url=proxy.url)
        started: list[float] = []
        widths: list[int] = []

        @app.consumer(queue.name, concurrency=100, wait_time=wait_time)
        async def handle(message: Message) -> None:
            started.append(anyio.current_time())
            await anyio.sleep(0.5)

        async with app, anyio.create_task_group() as sampler:
            await anyio.sleep(0.5)
            before = proxy.requests["ReceiveMessage"]
            idle = 3 * wait_time
            await anyio.sleep(idle)
            polls = proxy.requests["ReceiveMessage"] - before
            assert polls <= 1.5 * idle / wait_time + 1, f"{polls} polls in {idle} s idle"
            assert stats_of(app).polling_width == 1

            sent_at = anyio.current_time()
            await sqs.send(queue, ["first"])
            await eventually(lambda: len(started) == 1)
            assert started[0] - sent_at < wait_time / 2, "the open poll did not answer at once"

            sampler.start_soon(sample, 0.02, lambda: widths.append(stats_of(app).polling_width))
            await sqs.send(queue, (str(n) for n in range(200)))
            await eventually(lambda: stats_of(app).deleted == 201, within=30)
            assert max(widths) >= 5, f"polling stayed {max(widths)} wide for a burst of 200"
            await eventually(lambda: stats_of(app).polling_width == 1, within=6 * wait_time)
            sampler.cancel_scope.cancel()


# (5) What the progress line says.


def test_the_progress_line_shows_the_flow_controls() -> None:
    counters = Counters(succeeded=10, deleted=10)
    flows = {"orders": (20, True, 1), "billing": (None, False, 4)}
    current = {
        name: ConsumerStatistics.capture(
            name,
            "q",
            counters,
            buffered=0,
            concurrency=10,
            max_rate=rate,
            paused=paused,
            polling_width=width,
        )
        for name, (rate, paused, width) in flows.items()
    }
    line = format_progress({}, current, 1.0, {})
    orders, billing = line.split(" | ")
    assert orders.endswith(", paused, at most 20/s, 1 poll")
    assert billing.endswith("10 ok, 0 failed, 4 polls")
