"""The pipeline end to end: back-pressure, leases, retries, dead letters, batch acks.

Each scenario runs a real worker against the test server over HTTP and checks what the
server shows as well as what the worker counted. A 2 s visibility timeout where leases are
the point, one-second long polls and a handful of messages keep each within a few seconds;
where a retry delay is the point, the queue's own timeout is made much longer than that
delay, so that only the worker's visibility change can bring the message back in time.
Those marked ``also_in_memory`` run on the in-memory SQS too (see `conftest.py`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from aiosqsworker import App, ConsumerStatistics, Message, Reject, Retry, WorkerState
from aiosqsworker.testing import Answer, FaultProxy, LocalSQSServer, ProxiedRequest

from .kit import SQSKit, eventually


def stats_of(app: App, name: str = "handle") -> ConsumerStatistics:
    return app.statistics()[name]


def held(stats: ConsumerStatistics) -> int:
    """Messages received and not finished (handed back, retried, or succeeded) yet."""
    return stats.received - stats.succeeded - stats.failed - stats.released


async def every(interval: float, action: Callable[[], None]) -> None:
    """Call `action` every `interval` s until cancelled (a sampler run beside a scenario)."""
    while True:
        action()
        await anyio.sleep(interval)


@dataclass(frozen=True)
class Exchange:
    """One batch call as the server saw and answered it."""

    action: str
    at: float  # on the event loop's clock, when the request reached the proxy
    entries: list[dict[str, Any]]
    answer: dict[str, Any]


class BatchRecorder(FaultProxy):
    """Forwards every request unchanged and records each batch delete and visibility change.

    Nothing is injected: `exchanges` shows what the worker asked the server and what the
    server answered, in order.
    """

    RECORDED = ("DeleteMessageBatch", "ChangeMessageVisibilityBatch")

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.exchanges: list[Exchange] = []

    def of(self, action: str) -> list[Exchange]:
        return [exchange for exchange in self.exchanges if exchange.action == action]

    def visibility_changes_but_extensions_to(self, visibility: int) -> list[Exchange]:
        """The visibility changes a worker made, without its extensions to `visibility`:
        what an idle consumer's watch poll brings (asked for with a 5 s visibility) is
        extended to the full timeout at once."""
        return [
            change
            for change in self.of("ChangeMessageVisibilityBatch")
            if any(entry["VisibilityTimeout"] != visibility for entry in change.entries)
        ]

    async def forward(self, request: ProxiedRequest) -> Answer:
        at = anyio.current_time()
        answer = await super().forward(request)
        if request.action in self.RECORDED:
            entries = request.json()["Entries"]
            self.exchanges.append(Exchange(request.action, at, entries, answer.json()))
        return answer


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


# (3), (4) and (6) Failures: retries through visibility, dead letters.


async def test_a_failing_message_backs_off_then_is_dead_lettered(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """A handler that always fails, maxReceiveCount 3, retry_base_delay 1 s.

    Each failure sets the message's visibility to the back-off, doubling: 1 s after the
    first receive, 2 s after the second (the queue's own timeout, 10 s, would be far
    longer), and the message is not back before that. The third receive is the last the
    redrive policy allows: the message ends in the dead-letter queue with the worker's
    failure record, and the source queue is empty.
    """
    queue = await sqs.create_queue(visibility_timeout=10, max_receive_count=3)
    dlq = await sqs.dlq_of(queue)
    await sqs.send(queue, ['{"order": 7}'])
    attempts: list[tuple[int, str, float]] = []
    proxy = BatchRecorder(sqs_server.endpoint_url)
    async with proxy:
        app = make_app(endpoint_url=proxy.url)

        @app.consumer(queue.name, wait_time=1, retry_base_delay=1, retry_max_delay=60)
        async def handle(message: Message) -> None:
            attempts.append((message.receive_count, message.receipt_handle, anyio.current_time()))
            raise ValueError("the order service is down")

        async with app:
            await eventually(lambda: stats_of(app).deleted == 1, within=20)
            stats = stats_of(app)
            assert app.state is WorkerState.RUNNING

    assert [count for count, _, _ in attempts] == [1, 2, 3]
    changes = proxy.visibility_changes_but_extensions_to(10)
    assert [[(e["ReceiptHandle"], e["VisibilityTimeout"]) for e in c.entries] for c in changes] == [
        [(attempts[0][1], 1)],
        [(attempts[1][1], 2)],
    ]
    for change, (_, _, back_at) in zip(changes, attempts[1:], strict=True):
        delay = change.entries[0]["VisibilityTimeout"]
        waited = back_at - change.at
        # Not back before its delay; then found by the next long poll (1 s) or so.
        assert delay - 0.05 <= waited <= delay + 2.0, (delay, waited)
    assert (stats.failed, stats.retried, stats.dead_lettered) == (3, 2, 1)
    assert await sqs.counts(queue) == (0, 0)
    [dead] = await sqs.drain_with_attributes(dlq)
    assert dead["Body"] == '{"order": 7}'
    record = json.loads(dead["MessageAttributes"]["aiosqsworker.failure"]["StringValue"])
    assert record["exception"] == "builtins.ValueError"
    assert record["attempts"] == 3


async def test_retry_with_a_delay_brings_the_message_back_after_that_delay(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """``raise Retry(delay=2)``: not back before ~1.5 s, then handled and deleted.

    The queue's visibility timeout is 30 s, so the message can only be back this soon if
    the worker set its visibility to the delay asked for (and it asks for exactly 2 s).
    """
    queue = await sqs.create_queue(visibility_timeout=30)
    [sent] = await sqs.send(queue, ["later"])
    attempts: list[tuple[str, int, float]] = []
    proxy = BatchRecorder(sqs_server.endpoint_url)
    async with proxy:
        app = make_app(endpoint_url=proxy.url)

        @app.consumer(queue.name, wait_time=1)
        async def handle(message: Message) -> None:
            attempts.append((message.message_id, message.receive_count, anyio.current_time()))
            if message.receive_count == 1:
                raise Retry(delay=2)

        async with app:
            await eventually(lambda: stats_of(app).deleted == 1, within=15)
            stats = stats_of(app)

    assert [(m, count) for m, count, _ in attempts] == [(sent, 1), (sent, 2)]
    gap = attempts[1][2] - attempts[0][2]
    assert 1.5 <= gap <= 4.5, gap
    [change] = proxy.visibility_changes_but_extensions_to(30)
    assert [e["VisibilityTimeout"] for e in change.entries] == [2]
    assert (stats.failed, stats.retried, stats.succeeded, stats.dead_lettered) == (1, 1, 1, 0)
    assert await sqs.counts(queue) == (0, 0)


class UnprintableError(Exception):
    """An exception whose ``str()`` itself fails, as a hand-written ``__str__`` can."""

    def __str__(self) -> str:
        raise RuntimeError("cannot describe this error")


async def test_raising_handlers_never_stop_the_worker(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """Mixed outcomes on one queue (maxReceiveCount 2): every message reaches its end.

    Kinds, three messages each: succeeds; fails once (TimeoutError) then succeeds; always
    fails (an ExceptionGroup, as a failed task group raises); a body that is not JSON
    (dead-lettered on its first receive); always raises an exception whose ``str()`` fails.
    Plus one ``Reject``. Succeeded ones are
    deleted, the others are in the dead-letter queue, the worker keeps running and still
    handles a message sent after all of it.
    """
    queue = await sqs.create_queue(visibility_timeout=10, max_receive_count=2)
    dlq = await sqs.dlq_of(queue)
    kinds = ["ok", "flaky", "broken", "garbage", "unprintable"]
    bodies = [
        f"not json #{n} {{" if kind == "garbage" else json.dumps({"kind": kind, "n": n})
        for n in range(3)
        for kind in kinds
    ]
    bodies.append(json.dumps({"kind": "reject", "n": 0}))
    await sqs.send(queue, bodies)
    calls: Counter[str] = Counter()
    succeeded: list[str] = []
    app = make_app()

    @app.consumer(queue.name, wait_time=1, retry_base_delay=1)
    async def handle(message: Message) -> None:
        calls[message.body] += 1
        kind = message.json()["kind"]
        if kind == "flaky" and message.receive_count == 1:
            raise TimeoutError("upstream timed out")
        if kind == "broken":
            raise ExceptionGroup("several failed", [ValueError("a"), KeyError("b")])
        if kind == "unprintable":
            raise UnprintableError()
        if kind == "reject":
            raise Reject("never valid")
        succeeded.append(message.body)

    expected_ok = [b for b in bodies if '"ok"' in b or '"flaky"' in b]
    expected_dead = [b for b in bodies if b not in expected_ok]
    async with app:
        await eventually(lambda: stats_of(app).deleted == len(bodies), within=20)
        assert app.state is WorkerState.RUNNING
        await sqs.send(queue, [json.dumps({"kind": "ok", "n": 99})])
        await eventually(lambda: stats_of(app).deleted == len(bodies) + 1, within=10)
        stats = stats_of(app)
        assert app.state is WorkerState.RUNNING

    assert sorted(succeeded) == sorted([*expected_ok, json.dumps({"kind": "ok", "n": 99})])
    for body in bodies:
        kind = "garbage" if body.startswith("not json") else json.loads(body)["kind"]
        # A Reject and a body that does not decode are final at once; the rest are retried.
        assert calls[body] == {"ok": 1, "reject": 1, "garbage": 1}.get(kind, 2), (body, calls[body])
    assert stats.dead_lettered == len(expected_dead)
    assert stats.succeeded == len(expected_ok) + 1
    assert await sqs.counts(queue) == (0, 0)
    dead = await sqs.drain_with_attributes(dlq)
    assert sorted(m["Body"] for m in dead) == sorted(expected_dead)
    records = {
        m["Body"]: json.loads(m["MessageAttributes"]["aiosqsworker.failure"]["StringValue"])
        for m in dead
    }
    unprintable = [r for body, r in records.items() if '"unprintable"' in body]
    assert len(unprintable) == 3
    assert {r["error"] for r in unprintable} == {"<exception str() failed>"}
    assert {r["exception"] for r in unprintable} == {f"{__name__}.UnprintableError"}


# (5) A delete batch whose response lists failed entries.


@pytest.mark.parametrize("client", ["fast", "botocore", "aiohttp"])
async def test_failed_entries_of_a_delete_batch_are_counted_and_the_rest_deleted(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App], client: str
) -> None:
    """Two of six messages leave the queue while their handlers run: one delete batch fails
    for them and succeeds for the other four.

    The two are made visible again by the test's own client (as when a lease runs out) and
    the queue's redrive policy (maxReceiveCount 1) moves them to the dead-letter queue at
    the next receive. The worker's single DeleteMessageBatch for all six then comes back
    with the two under ``Failed`` (ReceiptHandleIsInvalid): counted as lost leases (their
    handlers succeeded, but the messages were no longer ours to delete), not as successes,
    not sent again, no crash; the worker goes on handling new messages.
    """
    queue = await sqs.create_queue(visibility_timeout=10, max_receive_count=1)
    dlq = await sqs.dlq_of(queue)
    total = 6
    ids = await sqs.send(queue, (str(n) for n in range(total)))
    release = anyio.Event()
    running: dict[str, Message] = {}
    handled: Counter[str] = Counter()
    proxy = BatchRecorder(sqs_server.endpoint_url)
    async with proxy:
        app = make_app(endpoint_url=proxy.url, client=client)

        @app.consumer(queue.name, wait_time=1, ack_linger=0.5)
        async def handle(message: Message) -> None:
            handled[message.message_id] += 1
            if message.body.isdigit():
                running[message.message_id] = message
                await release.wait()

        async with app:
            await eventually(lambda: len(running) == total, within=10)
            # What an idle consumer's watch poll brought is extended at once: let those
            # calls end first, or a slow one refused for a victim loses its lease here.
            await eventually(
                lambda: (
                    proxy.requests["ChangeMessageVisibilityBatch"]
                    == len(proxy.of("ChangeMessageVisibilityBatch"))
                ),
                within=10,
            )
            victims = [running[ids[1]], running[ids[4]]]
            for victim in victims:
                await sqs.client.change_message_visibility(
                    QueueUrl=queue.url, ReceiptHandle=victim.receipt_handle, VisibilityTimeout=0
                )
            # Any receive now moves them to the dead-letter queue (received once already).
            response = await sqs.client.receive_message(QueueUrl=queue.url, WaitTimeSeconds=0)
            assert not response.get("Messages")
            assert await sqs.counts(queue) == (0, total - 2)
            assert await sqs.counts(dlq) == (2, 0)
            release.set()
            await eventually(
                lambda: stats_of(app).deleted + stats_of(app).leases_lost == total, within=10
            )
            await anyio.sleep(1.0)  # room for a retry loop to show itself
            calls_after_failure = proxy.requests["DeleteMessageBatch"]
            [later] = await sqs.send(queue, ["later"])
            await eventually(
                lambda: stats_of(app).deleted + stats_of(app).leases_lost == total + 1,
                within=10,
            )
            stats = stats_of(app)
            assert app.state is WorkerState.RUNNING

    [batch, *rest] = proxy.of("DeleteMessageBatch")
    assert len(batch.entries) == total, "the six deletes did not share one batch"
    by_entry = {entry["Id"]: entry["ReceiptHandle"] for entry in batch.entries}
    failed = {by_entry[f["Id"]]: f["Code"] for f in batch.answer["Failed"]}
    assert failed == {victim.receipt_handle: "ReceiptHandleIsInvalid" for victim in victims}
    assert len(batch.answer["Successful"]) == total - 2
    assert calls_after_failure == 1
    assert [len(call.entries) for call in rest] == [1]
    assert handled == Counter([*ids, later])
    assert (stats.deleted, stats.leases_lost, stats.delete_failures) == (total - 1, 2, 0)
    assert stats.succeeded == total - 1  # what SQS confirmed deleted, not every return
    assert await sqs.counts(queue) == (0, 0)
    assert sorted(m["Body"] for m in await sqs.drain_with_attributes(dlq)) == ["1", "4"]


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
