"""The pipeline end to end: back-pressure and leases (retries, dead letters and batch acks
are in `test_page_failures_and_retries.py`, with the page they check).

Each scenario runs a real worker against the test server over HTTP and checks what the
server shows as well as what the worker counted. A 2 s visibility timeout where leases are
the point, one-second long polls and a handful of messages keep each within a few seconds.
Those marked ``also_in_memory`` run on the in-memory SQS too (see `conftest.py`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import anyio
import pytest

from aiosqsworker import App, ConsumerStatistics, Message

from .kit import SQSKit, eventually, stats_of


def held(stats: ConsumerStatistics) -> int:
    """Messages received and not finished (handed back, retried, or succeeded) yet."""
    return stats.received - stats.succeeded - stats.failed - stats.released


async def every(interval: float, action: Callable[[], None]) -> None:
    """Call `action` every `interval` s until cancelled (a sampler run beside a scenario)."""
    while True:
        action()
        await anyio.sleep(interval)


# (1) Back-pressure.


@pytest.mark.also_in_memory
async def test_blocked_handlers_hold_at_most_concurrency_plus_prefetch_messages(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """Handlers blocked: the worker holds C + P messages and leaves the rest on the server.

    While every handler is blocked, C messages run, P wait in the buffer, no more are
    received, and the server shows exactly C + P in flight (kept so past the visibility
    timeout by lease extensions) and the others visible for other workers. Sampled
    throughout the run, including the drain after the release: never more than C + P held.
    """
    concurrency, prefetch, total = 3, 2, 20
    limit = concurrency + prefetch
    queue = await sqs.create_queue(visibility_timeout=2)
    ids = await sqs.send(queue, (str(n) for n in range(total)))
    release = anyio.Event()
    seen: Counter[str] = Counter()
    held_samples: list[int] = []
    in_flight_samples: list[int] = []
    app = make_app()

    @app.consumer(queue.name, concurrency=concurrency, prefetch=prefetch, wait_time=1)
    async def handle(message: Message) -> None:
        seen[message.message_id] += 1
        await release.wait()

    def sample() -> None:
        stats = stats_of(app)
        held_samples.append(held(stats))
        in_flight_samples.append(stats.in_flight)

    async with app, anyio.create_task_group() as tg:
        tg.start_soon(every, 0.01, sample)
        await eventually(lambda: stats_of(app).in_flight >= limit, within=10)
        server_counts: list[tuple[int, int]] = []
        for _ in range(7):  # 3 s: past the 2 s visibility timeout
            server_counts.append(await sqs.counts(queue))
            await anyio.sleep(0.5)
        blocked = stats_of(app)
        release.set()
        await eventually(lambda: stats_of(app).deleted == total, within=20)
        tg.cancel_scope.cancel()

    assert (blocked.running, blocked.buffered, blocked.received) == (concurrency, prefetch, limit)
    assert blocked.leases_extended > 0
    assert server_counts == [(total - limit, limit)] * len(server_counts)
    assert len(held_samples) > 50
    assert max(held_samples) == limit
    assert max(in_flight_samples) == limit
    assert set(seen) == set(ids)
    assert max(seen.values()) == 1
    assert await sqs.counts(queue) == (0, 0)


# (2) and (7) Leases.


async def test_a_job_three_times_longer_than_its_visibility_timeout_runs_once(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """A 6 s job on a queue whose visibility timeout is 2 s: extended, never redelivered.

    The worker has free slots all along, so a message that became visible again would be
    received a second time; the server is watched meanwhile and must show it in flight.
    """
    queue = await sqs.create_queue(visibility_timeout=2)
    [sent] = await sqs.send(queue, ["long job"])
    calls: list[tuple[str, int]] = []
    app = make_app()

    @app.consumer(queue.name, wait_time=1)
    async def handle(message: Message) -> None:
        calls.append((message.message_id, message.receive_count))
        await anyio.sleep(6)

    async with app:
        await eventually(lambda: len(calls) == 1, within=10)
        server_counts: list[tuple[int, int]] = []
        while stats_of(app).succeeded == 0:
            server_counts.append(await sqs.counts(queue))
            await anyio.sleep(0.5)
        await eventually(lambda: stats_of(app).deleted == 1, within=10)
        stats = stats_of(app)

    assert calls == [(sent, 1)]
    assert len(server_counts) >= 5
    assert set(server_counts) == {(0, 1)}
    assert stats.leases_extended >= 2  # 2 s + 2 x 2 s is the least that covers 6 s
    assert (stats.leases_lost, stats.lease_extension_errors) == (0, 0)
    assert await sqs.counts(queue) == (0, 0)


async def test_prefetched_messages_keep_their_leases_while_they_wait(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """One slot, five prefetched, 1.5 s jobs, 2 s visibility: the last waits 7.5 s buffered.

    The buffered messages' leases are extended too: the server never shows one visible
    again, and every message is handled exactly once, in its first delivery.
    """
    total = 6
    queue = await sqs.create_queue(visibility_timeout=2)
    ids = await sqs.send(queue, (str(n) for n in range(total)))
    calls: list[tuple[str, int]] = []
    app = make_app()

    @app.consumer(queue.name, concurrency=1, prefetch=5, wait_time=1)
    async def handle(message: Message) -> None:
        calls.append((message.message_id, message.receive_count))
        await anyio.sleep(1.5)

    async with app:
        await eventually(lambda: stats_of(app).running == 1, within=10)
        assert (stats_of(app).received, stats_of(app).buffered) == (total, total - 1)
        server_counts: list[tuple[int, int]] = []
        while stats_of(app).succeeded < total:
            server_counts.append(await sqs.counts(queue))
            await anyio.sleep(0.25)
        await eventually(lambda: stats_of(app).deleted == total, within=10)
        stats = stats_of(app)

    assert sorted(calls) == sorted((message_id, 1) for message_id in ids)
    assert len(server_counts) >= 10
    assert all(visible == 0 for visible, _ in server_counts), server_counts
    # Waiting 1.5 s to 7.5 s against a 2 s timeout: at least ten extensions between them.
    assert stats.leases_extended >= 10
    assert (stats.received, stats.leases_lost) == (total, 0)
    assert await sqs.counts(queue) == (0, 0)


@pytest.mark.also_in_memory
async def test_free_handlers_do_not_wait_for_a_full_batch_of_room(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """One long job must not hold back the next message while other handlers are free."""
    queue = await sqs.create_queue()
    await sqs.send(queue, ["slow"])
    handled_at: dict[str, float] = {}
    app = make_app()

    @app.consumer(queue.name, concurrency=3, prefetch=0, wait_time=2)
    async def handle(message: Message) -> None:
        if message.body == "slow":
            await anyio.sleep(6)
        handled_at[message.body] = anyio.current_time()

    async with app:
        await eventually(lambda: app.statistics()["handle"].running == 1)
        sent_at = anyio.current_time()
        await sqs.send(queue, ["fast"])
        await eventually(lambda: "fast" in handled_at, within=10)
        assert handled_at["fast"] - sent_at < 3, "the fast message waited for the slow job"
        app.stop(force=True)
