"""Handlers that hang: threads given up at a timeout, and a loop blocked by one handler call
after another.

The command-line scenarios run `tests.apps.offload_service` (see `test_offload.py` for its
ledger): a ``def`` handler's thread cannot be stopped, so the worker must bound how many it
leaves running. What a timeout tells is checked in `test_page_failures_and_retries.py`, and
the worker's exit after a drain, without waiting for such threads, in `test_page_shutdown.py`:
with the pages that document them.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from aiosqsworker import App, Message
from aiosqsworker._consumer.timeouts import code_of
from aiosqsworker._run.watchdog import LoopWatchdog
from aiosqsworker._sqs.redrive import FAILURE_ATTRIBUTE
from aiosqsworker.testing import LocalSQSServer

from .clikit import cli, counts_become, tail
from .kit import Queue, SQSKit, eventually
from .test_offload import SERVICE, Event, offload_env, read_events, runs, stop


def hang(count: int, seconds: float, *, first: int = 0) -> list[str]:
    return [
        json.dumps({"n": n, "do": "hang", "seconds": seconds}) for n in range(first, first + count)
    ]


def most_alive_at_once(events: list[Event]) -> int:
    """The most handler calls running at one moment: at each call's start, itself and the
    calls that began before it and had not yet ended (a call that never ended counts on)."""
    begun: dict[str, list[float]] = {}
    spans: list[tuple[float, float]] = []
    for event in sorted(events, key=lambda e: e.at):  # stable: a start before its own done
        if event.kind == "start":
            begun.setdefault(event.message_id, []).append(event.at)
        elif event.kind == "done":
            spans.append((begun[event.message_id].pop(0), event.at))
    spans += [(at, math.inf) for starts in begun.values() for at in starts]
    return max(
        (
            1
            + sum(
                other_start <= start < end for j, (other_start, end) in enumerate(spans) if j != i
            )
            for i, (start, _) in enumerate(spans)
        ),
        default=0,
    )


async def failure_records(sqs: SQSKit, queue: Queue) -> dict[int, dict[str, object]]:
    """The dead letters' failure records, by the body's ``n``."""
    records = {}
    for message in await sqs.drain_with_attributes(await sqs.dlq_of(queue)):
        attribute = message["MessageAttributes"][FAILURE_ATTRIBUTE]["StringValue"]
        records[json.loads(message["Body"])["n"]] = json.loads(attribute)
    return records


# Threads abandoned at a timeout are bounded.


async def test_threads_abandoned_at_a_timeout_count_against_the_consumers_bound(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """``concurrency=2, timeout=1``: two handlers hang for 12 s, six quick messages follow.
    At most two handler threads are alive at any moment; the quick messages wait (their
    leases kept) and are each handled once after a stuck thread returns; the hung ones are
    dead-lettered; the log and the statistics say why handlers wait.

    Naive code it catches: giving the limiter's slot back when the call is abandoned while
    its thread runs on (anyio's ``abandon_on_cancel`` releases it): every timeout starts
    another thread beside the hung ones, 16 at once within 8 s, as many sockets or
    connections held against a dependency that is already hung.
    """
    queue = await sqs.create_queue(visibility_timeout=2, max_receive_count=1)
    stuck = set(await sqs.send(queue, hang(2, 12)))
    ledger, log = tmp_path / "ledger", tmp_path / "stderr"
    env = offload_env(sqs_server, ledger, commands_thread=queue.name, timeout="1", concurrency="2")
    async with cli([SERVICE], env, log) as worker:
        await eventually(lambda: set(runs(read_events(ledger), "start")) >= stuck, within=30)
        quick = set(
            await sqs.send(queue, (json.dumps({"n": n, "do": "ok"}) for n in range(10, 16)))
        )
        await eventually(
            lambda: set(runs(read_events(ledger), "done")) >= quick | stuck,
            within=40,
            what=f"every message handled; log:\n{tail(log)}",
        )
        await counts_become(sqs, queue, (0, 0))
        await stop(worker, log)
    events = read_events(ledger)
    assert most_alive_at_once(events) <= 2, [(e.kind, e.n, e.at) for e in events]
    assert runs(events, "start", quick) == dict.fromkeys(quick, 1), tail(log)
    assert runs(events, "done", quick) == dict.fromkeys(quick, 1)
    assert set(await failure_records(sqs, queue)) == {0, 1}
    text = log.read_text()
    assert "the consumer starts no new handler until one returns" in text
    assert "2 handler threads abandoned after a timeout or cancellation still run" in text
    assert "an abandoned handler thread returned" in text


async def test_the_statistics_count_abandoned_threads_until_they_return(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """An embedded app: one ``def`` handler times out and hangs on; `abandoned_threads` shows
    it while it runs and goes back to 0 when it returns, and the next message waits for it
    (``concurrency=1``) rather than starting a second thread.

    Naive code it catches: counting an abandoned thread nowhere, so that an operator sees
    ``running == 0`` while the worker holds a thread on a hung dependency.
    """
    queue = await sqs.create_queue(visibility_timeout=30, max_receive_count=1)
    await sqs.send(queue, ["hang", "quick"])
    release = threading.Event()
    starts: list[str] = []
    app = make_app()

    @app.consumer(queue.name, concurrency=1, prefetch=1, timeout=0.5, wait_time=1)
    def handle(message: Message) -> None:
        starts.append(message.body)
        if message.body == "hang":
            release.wait(30)  # a blocking call that ignores cancellation, as most do

    async with app:
        await eventually(lambda: app.statistics()["handle"].abandoned_threads == 1)
        await anyio.sleep(1)  # room for a second thread, if one were started
        assert starts == ["hang"]
        release.set()
        await eventually(lambda: starts == ["hang", "quick"])
        await eventually(lambda: app.statistics()["handle"].abandoned_threads == 0)
        await eventually(lambda: app.statistics()["handle"].succeeded == 1)
        app.stop()


# The loop watchdog.


async def block_the_loop(seconds: float) -> None:
    """An async handler that blocks its loop, as a synchronous SDK call would."""
    time.sleep(seconds)  # noqa: ASYNC251 - blocking the loop is the point


async def test_the_watchdog_names_and_counts_back_to_back_stalls_each_on_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two calls of an async handler block the loop 1.5 s each, the second right after the
    first with no turn of the loop in between (a slot that takes its next message at once).
    Two stalls are named and counted, each about 1.5 s.

    Naive code it catches: a watchdog that ends a stall only when its heartbeat runs again:
    it sees one stall of 3 s charged to the first call, and never names the second.
    """
    stalls: list[tuple[str | None, float]] = []
    code = code_of(block_the_loop)
    assert code is not None
    handlers = {code: "blocker"}
    caplog.set_level(logging.WARNING, logger="aiosqsworker.watchdog")
    with LoopWatchdog(0.5, handlers, lambda consumer, s: stalls.append((consumer, s))):
        await anyio.sleep(0.3)
        await block_the_loop(1.5)
        await block_the_loop(1.5)
        await anyio.sleep(0.6)  # the loop turns: the second stall ends and is counted
    assert [consumer for consumer, _ in stalls] == ["blocker", "blocker"], stalls
    assert all(1.2 <= seconds <= 2.0 for _, seconds in stalls), stalls
    named = [r.message for r in caplog.records if "has not turned" in r.message]
    assert len(named) == 2, named
    assert all("consumer 'blocker' is running handler" in message for message in named)
