"""Reliability under faults: what must hold when the network or SQS misbehaves.

Every scenario puts a `FaultProxy` between the worker and a real SQS-protocol server (or
kills a worker process outright) and asserts the invariants: nothing lost, no duplicate
that is not explained by the fault, a bounded request rate while failing, recovery once the
fault is gone. Each docstring names the naive change to the framework that the test exists
to catch. A lease lost to an extension and deletes failing are the acker's and the lease
keeper's documented answers to a fault: those scenarios are in
`test_page_failures_and_retries.py`, with the page they check.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Literal

import anyio
import pytest
from anyio.abc import Process

from aiosqsworker import App, Message, QueueNotFoundError, WorkerState
from aiosqsworker._consumer.receiver import poll_pause
from aiosqsworker.testing import FaultProxy, LocalSQSServer

from .kit import REGION, SQSKit, eventually, open_kit, stats_of
from .servers import new_server

REPO = Path(__file__).resolve().parent.parent


def handled_at_least(seen: Counter[str], count: int) -> bool:
    return sum(seen.values()) >= count


def deleted_at_least(app: App, count: int) -> bool:
    return stats_of(app).deleted >= count


def bodies(count: int, start: int = 0) -> list[str]:
    return [json.dumps({"n": n}) for n in range(start, start + count)]


# (1) Throttling and 5xx on every action.

FAULT_WINDOW = 4.0


async def test_throttling_and_5xx_on_every_action_back_off_and_recover(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """Throttling (JSON and query style) and 503 on every action, 4 s each, messages flowing.

    Polls back off (a bounded request rate), deletes are retried, not given up, and once the
    fault is gone everything is handled exactly once.

    Naive changes it catches: a receiver that polls again at once after an error (no
    back-off: hundreds of requests a second); throttling in the query protocol's style
    (``AWS.SimpleQueueService.RequestThrottled``) not classified as transient (deletes given
    up, messages handled twice).
    """
    # The pause after a failed poll is jittered: never the same twice in a row for long.
    assert len({round(poll_pause(3), 6) for _ in range(20)}) > 1
    queue = await sqs.create_queue()
    ids: list[str] = []
    seen: Counter[str] = Counter()
    async with FaultProxy(sqs_server.endpoint_url) as proxy:
        app = make_app(endpoint_url=proxy.url)

        # Capacity 20, two pollers: with each phase's 10 messages held (a failing delete keeps
        # its message's room until settled), one poller still has room to poll.
        @app.consumer(queue.name, concurrency=5, prefetch=15, wait_time=1)
        async def handle(message: Message) -> None:
            seen[message.message_id] += 1
            await anyio.sleep(0.3)

        faults: list[dict[str, Any]] = [
            {"kind": "throttle", "style": "json"},
            {"kind": "throttle", "style": "query"},
            {"kind": "status", "status": 503},
        ]
        async with app:
            for number, fault in enumerate(faults):
                ids += await sqs.send(queue, bodies(10, start=10 * number))
                await eventually(partial(handled_at_least, seen, 10 * number + 3), within=30)
                polls_before = proxy.requests["ReceiveMessage"]
                errors_before = stats_of(app).poll_errors
                proxy.always("*", **fault)
                await anyio.sleep(FAULT_WINDOW)
                polls = proxy.requests["ReceiveMessage"] - polls_before
                proxy.clear()
                # Worst case with back-off: 3 tries a poll, pauses of at least 0.25, 0.5, 1,
                # 2 s: 15 requests in 4 s per poller. Without back-off it is thousands.
                assert polls <= 2 * (3 + 3 * FAULT_WINDOW), (fault, polls)
                assert stats_of(app).poll_errors > errors_before, fault
                deleted = 10 * (number + 1)
                await eventually(partial(deleted_at_least, app, deleted), within=40)
            stats = stats_of(app)
    for action in ("ReceiveMessage", "DeleteMessageBatch"):
        for kind in ("throttle", "status"):
            assert proxy.faults_applied[f"{action}:{kind}"] > 0, proxy.faults_applied
    assert set(seen) == set(ids)
    assert max(seen.values()) == 1, "a message was handled twice"
    assert stats.delete_failures == 0
    assert await sqs.counts(queue) == (0, 0)


# (2) Connections reset mid long poll, a server that stops answering, slow long polls.


async def test_connections_dropped_mid_long_poll_are_reopened(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """Polls whose connection is reset at once, or dropped 1 s into the long poll.

    The worker opens new connections by itself, and messages sent meanwhile are handled.

    Naive change it catches: a poller that ends when its poll fails (``return`` instead of
    backing off and polling again): nothing is received after the faults.
    """
    queue = await sqs.create_queue()
    seen: Counter[str] = Counter()
    async with FaultProxy(sqs_server.endpoint_url) as proxy:
        proxy.inject("ReceiveMessage", "reset", times=2)
        proxy.inject("ReceiveMessage", "stall", seconds=1.0, times=4)
        app = make_app(endpoint_url=proxy.url)

        @app.consumer(queue.name, concurrency=5, prefetch=5, wait_time=2)
        async def handle(message: Message) -> None:
            seen[message.message_id] += 1

        async with app:
            await eventually(
                lambda: sum(proxy.faults_applied.values()) == 6, within=30, what="faults applied"
            )
            ids = await sqs.send(queue, bodies(10))
            await eventually(lambda: stats_of(app).deleted == 10, within=20)
            stats = stats_of(app)
    assert stats.poll_errors >= 1
    assert set(seen) == set(ids)
    assert max(seen.values()) == 1


async def test_a_server_that_stops_answering_for_10_s_is_survived(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """Every request held 10 s without an answer, then dropped; then the server is back.

    Messages sent during the outage are handled once it is over, each once.

    Naive change it catches: connection errors of the fast path not mapped into the
    framework's tree (aiohttp's exception escapes the receiver): the worker crashes instead
    of reconnecting.
    """
    queue = await sqs.create_queue()
    seen: Counter[str] = Counter()
    async with FaultProxy(sqs_server.endpoint_url) as proxy:
        app = make_app(endpoint_url=proxy.url)

        @app.consumer(queue.name, concurrency=5, prefetch=5, wait_time=1)
        async def handle(message: Message) -> None:
            seen[message.message_id] += 1

        async with app:
            await eventually(lambda: stats_of(app).polls >= 1)
            proxy.always("*", "stall", seconds=10)
            outage = time.monotonic()
            await anyio.sleep(1.5)  # the open polls end; the next ones hang for 10 s
            ids = await sqs.send(queue, bodies(10))  # straight to the server
            await anyio.sleep(1.0)
            proxy.clear()
            await eventually(lambda: stats_of(app).deleted == 10, within=30)
            recovered_after = time.monotonic() - outage
            assert app.state is WorkerState.RUNNING
            stats = stats_of(app)
    assert proxy.faults_applied["ReceiveMessage:stall"] >= 1
    assert 9 < recovered_after < 25  # the outage was real, and short-lived for the worker
    assert stats.received == 10
    assert set(seen) == set(ids)
    assert max(seen.values()) == 1


async def test_a_slow_long_poll_is_not_cut_off_by_the_read_timeout(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """Long polls of 3 s that take 2 s more to arrive complete without any error.

    Naive change it catches: a read timeout equal to the poll's wait time (or any that
    leaves no margin beyond it): every idle poll on a slow network would fail.
    """
    queue = await sqs.create_queue()
    async with FaultProxy(sqs_server.endpoint_url) as proxy:
        proxy.always("ReceiveMessage", "latency", seconds=2.0)
        app = make_app(endpoint_url=proxy.url)

        @app.consumer(queue.name, concurrency=5, prefetch=5, wait_time=3)
        async def handle(message: Message) -> None:
            pass

        async with app:
            await eventually(lambda: stats_of(app).polls >= 1, within=20)
            stats = stats_of(app)
    assert stats.poll_errors == 0


# (3) A ReceiveMessage response cut short.


@pytest.mark.parametrize(
    ("client", "cut"),
    [
        pytest.param("fast", "truncate", id="fast-cut-connection"),
        pytest.param("botocore", "truncate", id="botocore-cut-connection"),
        pytest.param("fast", "cut_short", id="fast-framed-short"),
        pytest.param("botocore", "cut_short", id="botocore-framed-short"),
        pytest.param("aiohttp", "truncate", id="aiohttp-cut-connection"),
        pytest.param("aiohttp", "cut_short", id="aiohttp-framed-short"),
    ],
)
async def test_a_cut_short_receive_is_a_poll_error_not_an_empty_queue(
    sqs: SQSKit,
    sqs_server: LocalSQSServer,
    make_app: Callable[..., App],
    client: Literal["fast", "botocore", "aiohttp"],
    cut: Literal["truncate", "cut_short"],
) -> None:
    """ReceiveMessage responses cut in half: the server handed messages out, we never saw them.

    Each must count as a poll error, not as an empty queue; the messages come back after
    their visibility timeout (received a second time) and are handled then, once each.

    Naive change it catches: taking a 200 response whose body does not parse as "no
    messages" (what botocore's JSON parser does with a body it cannot read): poll_errors
    stays 0.
    """
    queue = await sqs.create_queue(visibility_timeout=2)
    ids = await sqs.send(queue, bodies(8))
    seen: list[tuple[str, int]] = []
    async with FaultProxy(sqs_server.endpoint_url) as proxy:
        proxy.inject("ReceiveMessage", cut, times=3)
        app = make_app(endpoint_url=proxy.url, client=client)

        @app.consumer(queue.name, concurrency=5, prefetch=5, wait_time=1)
        async def handle(message: Message) -> None:
            seen.append((message.message_id, message.receive_count))

        async with app:
            await eventually(lambda: stats_of(app).deleted == 8, within=30)
            stats = stats_of(app)
    assert proxy.faults_applied[f"ReceiveMessage:{cut}"] == 3
    assert stats.poll_errors >= 1
    assert sorted(message_id for message_id, _ in seen) == sorted(ids)
    # What the first (cut) poll took came back after its visibility timeout.
    assert any(count >= 2 for _, count in seen), seen


# (4) Lease extensions failing.


async def test_failed_lease_extensions_are_retried(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """The first extension calls fail (500, all three tries of a call): they are retried.

    A 6 s job on a 6 s visibility timeout keeps its lease; the message is handled once.

    Naive change it catches: a lease keeper that stops watching a lease whose extension
    failed: the message reappears mid-job and a second handler takes it.
    """
    queue = await sqs.create_queue()
    seen: Counter[str] = Counter()
    async with FaultProxy(sqs_server.endpoint_url) as proxy:
        proxy.inject("ChangeMessageVisibilityBatch", "status", status=500, times=3)
        app = make_app(endpoint_url=proxy.url)

        @app.consumer(queue.name, concurrency=2, prefetch=0, wait_time=1, visibility_timeout=6)
        async def handle(message: Message) -> None:
            seen[message.message_id] += 1
            await anyio.sleep(6)

        async with app:
            [message_id] = await sqs.send(queue, bodies(1))
            await eventually(lambda: stats_of(app).deleted == 1, within=30)
            stats = stats_of(app)
    assert proxy.faults_applied["ChangeMessageVisibilityBatch:status"] == 3
    assert stats.lease_extension_errors >= 1
    assert stats.leases_extended >= 1
    assert seen == Counter({message_id: 1})
    assert stats.leases_lost == 0


# (5) The queue gone mid-run.


async def test_a_queue_deleted_mid_run_stops_the_worker_with_a_clear_error(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """The queue is deleted while the worker polls it: `app.run` raises QueueNotFoundError.

    Naive change it catches: treating a missing queue like any other poll error (back off
    and poll again forever): the worker spins on and `run` never returns.
    """
    queue = await sqs.create_queue()
    async with FaultProxy(sqs_server.endpoint_url) as proxy:
        app = make_app(endpoint_url=proxy.url)

        @app.consumer(queue.name, wait_time=1)
        async def handle(message: Message) -> None:
            pass

        requests_at_delete = 0

        async def delete_queue_soon() -> None:
            nonlocal requests_at_delete
            await eventually(lambda: app.state is WorkerState.RUNNING)
            await eventually(lambda: stats_of(app).polls >= 1)
            await sqs.client.delete_queue(QueueUrl=queue.url)
            requests_at_delete = proxy.requests["ReceiveMessage"]

        error: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(delete_queue_soon)
            with anyio.fail_after(30):
                try:
                    await app.run()
                except QueueNotFoundError as exc:
                    error = exc
        assert app.state is WorkerState.STOPPED
    assert isinstance(error, QueueNotFoundError), error
    assert queue.name in str(error)
    # Two pollers, each with a poll open at the deletion and one that fails: no spinning.
    assert proxy.requests["ReceiveMessage"] - requests_at_delete <= 4


async def test_a_restarted_server_without_the_queue_stops_the_worker(
    make_app: Callable[..., App],
) -> None:
    """The server is stopped and comes back empty: the error surfaces from ``async with``.

    While the server is down, polls fail and back off; once it answers without the queue,
    the worker stops with QueueNotFoundError instead of spinning.

    Naive change it catches: the same as for a deleted queue (a missing queue retried
    forever).
    """
    server = new_server()
    server.start()
    try:
        async with open_kit(server.endpoint_url, "restart") as kit:
            queue = await kit.create_queue()
        async with FaultProxy(server.endpoint_url) as proxy:
            app = make_app(endpoint_url=proxy.url)

            @app.consumer(queue.name, wait_time=1)
            async def handle(message: Message) -> None:
                pass

            with pytest.raises(QueueNotFoundError):  # noqa: PT012 - the block is the subject
                async with app:
                    await eventually(lambda: stats_of(app).polls >= 1)
                    await anyio.to_thread.run_sync(server.stop)
                    await eventually(lambda: stats_of(app).poll_errors >= 1, within=20)
                    await anyio.to_thread.run_sync(server.start)
                    requests_at_restart = proxy.requests["ReceiveMessage"]
                    with anyio.fail_after(20):
                        while app.state is not WorkerState.STOPPED:  # noqa: ASYNC110
                            await anyio.sleep(0.05)
            after_restart = proxy.requests["ReceiveMessage"] - requests_at_restart
    finally:
        server.stop()
    assert after_restart <= 6, after_restart


# (6) A worker process killed with -9 mid-batch, then a new one.


def read_ledger(path: Path) -> list[tuple[int, str, str, int, int, float]]:
    """(pid, event, message id, n, receive count, time) per line of a ledger worker's file."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        pid, event, message_id, n, count, at = line.split()
        rows.append((int(pid), event, message_id, int(n), int(count), float(at)))
    return rows


async def start_ledger_worker(
    endpoint_url: str, queue: str, ledger: Path, log: Path, **settings: str
) -> Process:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_SQS": endpoint_url,
        "AWS_REGION": REGION,
        "LEDGER_QUEUE": queue,
        "LEDGER_FILE": str(ledger),
        **settings,
    }
    with log.open("ab") as stderr:
        return await anyio.open_process(
            [sys.executable, "-m", "aiosqsworker", "tests.apps.ledger_worker",
             "--log-format", "json", "--shutdown-timeout", "5"],
            cwd=REPO, env=env, stderr=stderr, stdout=subprocess.DEVNULL,
        )  # fmt: skip


async def stop_process(process: Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        with anyio.move_on_after(15):
            await process.wait()
    if process.returncode is None:
        process.kill()
        await process.wait()
    await process.aclose()


@pytest.mark.slow
async def test_a_worker_killed_mid_batch_loses_nothing(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """kill -9 while handlers run; a new worker handles the batch after its timeout.

    What the killed worker held (running, buffered, or done but not yet deleted) comes back
    once its visibility timeout runs out, received a second time, and the new worker
    handles it. Only those can run twice.

    Naive change it catches: acknowledging on receipt (delete first, handle after, "at most
    once"): what the killed worker held is gone for good.
    """
    visibility = 3
    queue = await sqs.create_queue()
    ids = set(await sqs.send(queue, bodies(30)))
    ledger = tmp_path / "ledger"
    log = tmp_path / "stderr"
    settings = {"LEDGER_JOB_SECONDS": "1.0", "LEDGER_VISIBILITY": str(visibility)}
    first = await start_ledger_worker(sqs_server.endpoint_url, queue.name, ledger, log, **settings)
    try:
        await eventually(
            lambda: sum(row[1] == "done" for row in read_ledger(ledger)) >= 5, within=30
        )
        first.kill()  # SIGKILL: no shutdown, no release, no flush
        await first.wait()
    finally:
        await stop_process(first)
    rows = read_ledger(ledger)
    done_before = {row[2] for row in rows if row[1] == "done"}
    held = {row[2] for row in rows if row[1] == "start"} - done_before
    assert held, "the worker was killed between batches"
    second = await start_ledger_worker(sqs_server.endpoint_url, queue.name, ledger, log, **settings)
    try:
        await eventually(
            lambda: {row[2] for row in read_ledger(ledger) if row[1] == "done"} >= ids,
            within=60,
            what="every message done",
        )
    finally:
        await stop_process(second)
    rows = read_ledger(ledger)
    assert {row[0] for row in rows} == {first.pid, second.pid}
    done = Counter(row[2] for row in rows if row[1] == "done")
    assert set(done) == ids  # nothing lost
    for message_id in held:
        again = [row for row in rows if row[2] == message_id and row[0] == second.pid]
        assert again, f"{message_id} was held by the killed worker and never handled again"
        assert all(row[4] >= 2 for row in again), again  # a second receive
    twice = {message_id for message_id, count in done.items() if count > 1}
    # Only what the killed worker finished but had not deleted yet can be done twice.
    assert twice <= done_before, twice - done_before
    assert await sqs.counts(queue) == (0, 0)
