"""Stalled calls and restarts, end to end through `python -m aiosqsworker`.

The user module is `tests.apps.misbehaving`: each message's body says how its handler
misbehaves. Every scenario checks the same two things: the other messages are safe
(handled once, never stranded, never dead-lettered for another's fault), and the log says
what happened, by name. The scenarios of misbehaving handlers are with the page that
documents what happens to them: `test_page_failures_and_retries.py` (odd exceptions, a
delete's lost answer, a lease lost before its delete) and `test_page_shutdown.py` (a handler
that never returns); the functions they share stay here.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from aiosqsworker.testing import FaultProxy, LocalSQSServer

from .clikit import cli, counts_become, exit_code, ids_of, logged, read_ledger, tail
from .kit import REGION, Queue, SQSKit, eventually

APP = "tests.apps.misbehaving"


def env_for(endpoint: str, queue: Queue, ledger: Path, **settings: str) -> dict[str, str]:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_SQS": endpoint,
        "AWS_REGION": REGION,
        "MISBEHAVING_QUEUE": queue.name,
        "ORDERS_LEDGER": str(ledger),
    }
    env.update({f"MISBEHAVING_{name.upper()}": value for name, value in settings.items()})
    return env


def orders(do: str, numbers: range, **extra: object) -> list[str]:
    return [json.dumps({"n": n, "do": do, **extra}) for n in numbers]


async def dead_letters(sqs: SQSKit, queue: Queue) -> list[dict[str, object]]:
    return await sqs.drain_with_attributes(await sqs.dlq_of(queue))


def failure_of(dead_letter: dict[str, object]) -> dict[str, object]:
    attributes = dead_letter["MessageAttributes"]
    assert isinstance(attributes, dict)
    record = json.loads(attributes["aiosqsworker.failure"]["StringValue"])
    assert isinstance(record, dict)
    return record


async def test_a_stalled_extension_call_costs_no_lease(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """Every job outlives its 6 s visibility timeout; one extension call stalls for a minute.

    Naive code it catches: waiting on the stalled call until the HTTP read timeout (about
    20 s here) while its leases run out, so another worker (here, the same one) receives
    the messages again while they are still running. Here the call is abandoned well inside
    the leases' time left and retried on a fresh connection: each job runs once.
    """
    queue = await sqs.create_queue(visibility_timeout=6)
    ids = await sqs.send(queue, orders("ok", range(4), sleep=9))
    ledger, log = tmp_path / "ledger", tmp_path / "log"
    async with FaultProxy(sqs_server.endpoint_url) as proxy:
        proxy.inject("ChangeMessageVisibilityBatch", "stall", seconds=60)
        env = env_for(proxy.url, queue, ledger, concurrency="4", wait_time="1")
        async with cli([APP], env, log) as worker:
            await eventually(
                lambda: set(ids_of(read_ledger(ledger), "done")) == set(ids),
                within=40,
                what=f"every job done; log:\n{tail(log)}",
            )
            worker.send_signal(signal.SIGTERM)
            code, _ = await exit_code(worker, log, within=15)
        assert proxy.faults_applied["ChangeMessageVisibilityBatch:stall"] == 1
    assert code == 0, tail(log)
    assert ids_of(read_ledger(ledger), "start") == dict.fromkeys(ids, 1)
    assert "did not answer within" in log.read_text()
    assert await sqs.counts(queue) == (0, 0)


@pytest.mark.slow
async def test_a_rolling_restart_of_an_idle_worker_hides_no_message(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """SIGTERM to an idle worker, and a message sent at once: a deploy on a quiet queue.

    Naive code it catches: abandoning the open long polls at the stop: the server then hands
    the new message to a poll whose client is gone, and it stays invisible for the queue's
    whole 60 s visibility timeout (a receive burnt on it, too). Here the stop lets the poll
    finish, releases what it brings, and the next worker handles the message at once.
    """
    queue = await sqs.create_queue(visibility_timeout=60)
    ledger, log = tmp_path / "ledger", tmp_path / "log"
    env = env_for(sqs_server.endpoint_url, queue, ledger, wait_time="3")
    async with cli([APP], env, log) as worker:
        await logged(log, "worker started")
        worker.send_signal(signal.SIGTERM)
        [late] = await sqs.send(queue, orders("ok", range(1)))
        code, took = await exit_code(worker, log, within=20)
    assert code == 0, tail(log)
    assert took < 3 + 3, f"an idle worker took {took:.1f} s to stop with a 3 s wait time"
    await counts_become(sqs, queue, (1, 0))  # visible: nobody holds it
    async with cli([APP], env, log) as worker:
        await eventually(lambda: late in ids_of(read_ledger(ledger), "done"), within=10)
        worker.send_signal(signal.SIGTERM)
        code, _ = await exit_code(worker, log, within=20)
    assert code == 0, tail(log)
    assert ids_of(read_ledger(ledger), "start")[late] == 1
    assert "abandoning" not in log.read_text()
