"""Misbehaving handlers, stalled calls and restarts, end to end through `python -m aiosqsworker`.

The user module is `tests.apps.misbehaving`: each message's body says how its handler
misbehaves. Every scenario checks the same two things: the other messages are safe
(handled once, never stranded, never dead-lettered for another's fault), and the log says
what happened, by name.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from aiosqsworker.testing import Answer, FaultProxy, LocalSQSServer, ProxiedRequest

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


async def test_a_handler_that_cancels_itself_fails_its_message_and_the_slot_goes_on(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """Three handlers raise a CancelledError of their own making, at concurrency 3.

    Naive code it catches: treating every CancelledError as the framework's (re-raising
    it): each one ends a slot for good, and after three the worker handles nothing more
    while its probes still answer 200.
    """
    queue = await sqs.create_queue(visibility_timeout=30, max_receive_count=2)
    bad = await sqs.send(queue, orders("cancel_self", range(3)))
    good = await sqs.send(queue, orders("ok", range(3, 13)))
    ledger, log = tmp_path / "ledger", tmp_path / "log"
    async with cli([APP], env_for(sqs_server.endpoint_url, queue, ledger), log) as worker:
        await eventually(
            lambda: set(ids_of(read_ledger(ledger), "done")) >= set(good),
            within=30,
            what=f"the good messages handled after the bad ones; log:\n{tail(log)}",
        )
        await counts_become(sqs, queue, (0, 0))
        worker.send_signal(signal.SIGTERM)
        code, _ = await exit_code(worker, log, within=15)
    assert code == 0, tail(log)
    records = [failure_of(m) for m in await dead_letters(sqs, queue)]
    assert sorted(str(r["message_id"]) for r in records) == sorted(bad)
    assert all(str(r["exception"]).endswith(".CancelledError") for r in records), records
    text = log.read_text()
    assert "raised asyncio.CancelledError on message" in text
    assert "not a cancellation by the framework" in text
    assert ids_of(read_ledger(ledger), "done") == dict.fromkeys(good, 1)


@pytest.mark.parametrize(("do", "expected_code"), [("exit", 3), ("interrupt", 130)])
async def test_sys_exit_or_keyboard_interrupt_in_a_handler_drains_the_worker_first(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path, do: str, expected_code: int
) -> None:
    """A handler calls sys.exit(3) (or raises KeyboardInterrupt) while others run.

    Naive code it catches: letting the exception end the process at once: the other
    running and buffered messages stay invisible for their whole 30 s timeout and no
    acknowledgement is flushed. Here the worker drains gracefully, then exits with the code
    the handler asked for: every message not done is visible again at once.
    """
    queue = await sqs.create_queue(visibility_timeout=30)
    slow = await sqs.send(queue, orders("ok", range(2), sleep=1))
    [exiting] = await sqs.send(queue, orders(do, range(2, 3)))
    ledger, log = tmp_path / "ledger", tmp_path / "log"
    env = env_for(sqs_server.endpoint_url, queue, ledger, retry_base_delay="0")
    async with cli([APP], env, log) as worker:
        code, _ = await exit_code(worker, log, within=20)
    assert code == expected_code, tail(log)
    events = read_ledger(ledger)
    assert set(ids_of(events, "done")) == set(slow), "the running handlers were not let finish"
    await counts_become(sqs, queue, (1, 0))  # the exiting one: visible again, not stranded
    (left,) = await sqs.drain(queue)
    assert left["MessageId"] == exiting
    text = log.read_text()
    assert "stopping the worker gracefully" in text
    assert ("SystemExit" if do == "exit" else "KeyboardInterrupt") in text


async def test_a_poison_base_exception_under_workers_is_dead_lettered_alone(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """One message raises a BaseException subclass; four good ones share its workers.

    Naive code it catches: letting a non-Exception crash the worker process: each crash
    releases every message that worker held, raising their receive counts, until SQS's
    redrive moves the poison message and innocent ones to the dead-letter queue without a
    failure record. Here the poison message alone is retried and dead-lettered, with its
    record, and no worker restarts.
    """
    queue = await sqs.create_queue(visibility_timeout=30, max_receive_count=3)
    [poison] = await sqs.send(queue, orders("poison", range(1)))
    [ending] = await sqs.send(queue, orders("generator_exit", range(1, 2)))
    good = await sqs.send(queue, orders("ok", range(2, 6), sleep=0.2))
    ledger, log = tmp_path / "ledger", tmp_path / "log"
    env = env_for(sqs_server.endpoint_url, queue, ledger, retry_base_delay="0")
    async with cli([APP, "--workers", "2"], env, log) as supervisor:
        await counts_become(sqs, await sqs.dlq_of(queue), (2, 0))
        await counts_become(sqs, queue, (0, 0))
        supervisor.send_signal(signal.SIGTERM)
        code, _ = await exit_code(supervisor, log, within=20)
    assert code == 0, tail(log)
    records = [failure_of(m) for m in await dead_letters(sqs, queue)]
    letters = {str(r["message_id"]): r for r in records}
    assert set(letters) == {poison, ending}
    assert letters[poison]["exception"] == "tests.apps.misbehaving.Poison"
    assert str(letters[ending]["exception"]).endswith("GeneratorExit")
    assert ids_of(read_ledger(ledger), "done") == dict.fromkeys(good, 1)
    assert "died unexpectedly" not in log.read_text()


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


async def test_a_delete_whose_answer_was_lost_is_reported_as_unknown_not_as_failed(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """The first DeleteMessageBatch reaches the server, but its answer is lost (reset).

    Naive code it catches: reporting the retry's refusal (the handles are gone, because the
    first attempt deleted them) as "could not delete ... SQS will deliver it again", and
    counting the messages as succeeded and failed alike. Here the log says the outcome is
    unknown, and the final summary counts what really happened.
    """
    queue = await sqs.create_queue(visibility_timeout=30)
    ids = await sqs.send(queue, orders("ok", range(3)))
    ledger, log = tmp_path / "ledger", tmp_path / "log"
    async with FaultProxy(sqs_server.endpoint_url) as proxy:
        proxy.inject("DeleteMessageBatch", "lose_answer")
        env = env_for(proxy.url, queue, ledger, wait_time="1")
        async with cli([APP], env, log) as worker:
            await counts_become(sqs, queue, (0, 0))
            await eventually(lambda: proxy.requests["DeleteMessageBatch"] >= 2, within=10)
            worker.send_signal(signal.SIGTERM)
            code, _ = await exit_code(worker, log, within=15)
    assert code == 0, tail(log)
    assert ids_of(read_ledger(ledger), "done") == dict.fromkeys(ids, 1)
    text = log.read_text()
    assert "SQS will deliver it again" not in text
    if "outcome unknown" not in text:
        # A server that accepts a deleted message's handle again confirms the retry.
        assert "3 deleted" in text, tail(log)


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


class RefusingFirstDelete(FaultProxy):
    """Answers the first DeleteMessageBatch's first entry with ReceiptHandleIsInvalid (and
    does not forward it), as SQS does for a message whose lease ran out before its delete."""

    refused = False

    async def forward(self, request: ProxiedRequest) -> Answer:
        if request.action != "DeleteMessageBatch" or self.refused:
            return await super().forward(request)
        self.refused = True
        body = request.json()
        victim = body["Entries"].pop(0)
        failed = {"Id": victim["Id"], "Code": "ReceiptHandleIsInvalid", "SenderFault": True}
        failed["Message"] = "The receipt handle has expired."
        if not body["Entries"]:
            return Answer.of_json({"Successful": [], "Failed": [failed]})
        request.body = json.dumps(body).encode()
        answer = await super().forward(request)
        response = answer.json()
        response["Failed"] = [*response.get("Failed", []), failed]
        answer.payload = json.dumps(response).encode()
        return answer


async def test_a_success_whose_lease_was_lost_before_its_delete_is_not_counted_as_one(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """Three handlers succeed; SQS refuses one delete because the lease ran out meanwhile.

    Naive code it catches: counting `succeeded` when the handler returns: the worker's
    summary would say 3 succeeded although one message was never deleted and will come back.
    Here it says what happened: 2 succeeded, 2 deleted, 1 lease lost.
    """
    queue = await sqs.create_queue(visibility_timeout=2)
    await sqs.send(queue, orders("ok", range(3)))
    ledger, log = tmp_path / "ledger", tmp_path / "log"
    async with RefusingFirstDelete(sqs_server.endpoint_url) as proxy:
        env = env_for(proxy.url, queue, ledger, wait_time="1")
        async with cli([APP], env, log) as worker:
            await eventually(lambda: len(ids_of(read_ledger(ledger), "done")) >= 3, within=20)
            await eventually(lambda: proxy.refused, within=10)
            await logged(log, "before its delete was sent")
            worker.send_signal(signal.SIGTERM)
            code, _ = await exit_code(worker, log, within=15)
    assert code == 0, tail(log)
    summary = next(line for line in log.read_text().splitlines() if "stopped:" in line)
    assert "2 succeeded" in summary, summary
    assert "1 lease lost" in summary, summary
