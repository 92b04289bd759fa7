"""Stopping in a second without hiding a message, end to end through `python -m aiosqsworker`.

An idle worker's long poll is a watch poll: it asks for a visibility of a few seconds
(`WATCH_VISIBILITY`), and a stop gives it up at once. What it may still take is hidden for
those seconds only. These scenarios run with the default wait time (20 s): on a stop that
waits for the open poll, each of them takes far longer than it allows.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio

from aiosqsworker import App, Message
from aiosqsworker._run.burst import BURST_FAILED, wait_until_empty
from aiosqsworker.testing import LocalSQSServer

from .clikit import REPO, cli, exit_code, ids_of, logged, read_ledger, tail
from .kit import SQSKit, eventually
from .test_robustness import APP, dead_letters, env_for, failure_of, orders

DEFAULT_WAIT = "20"


async def test_an_idle_worker_with_default_settings_exits_within_3_s_of_sigterm(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """Naive code it catches: letting the idle worker's open 20 s long poll finish at a
    graceful stop (the stop takes what is left of it: up to 20 s)."""
    queue = await sqs.create_queue(visibility_timeout=60)
    ledger, log = tmp_path / "ledger", tmp_path / "log"
    env = env_for(sqs_server.endpoint_url, queue, ledger, wait_time=DEFAULT_WAIT)
    async with cli([APP], env, log) as worker:
        await logged(log, "worker started")
        await anyio.sleep(2)  # idle, its long poll open
        worker.send_signal(signal.SIGTERM)
        code, took = await exit_code(worker, log, within=30)
    assert code == 0, tail(log)
    assert took < 3, f"an idle worker took {took:.1f} s to stop; its log:\n{tail(log)}"
    text = log.read_text()
    assert "nothing to wait for" in text, tail(log)
    assert "giving up 1 idle poll" in text, tail(log)
    assert "abandoning" not in text


async def test_messages_sent_just_after_a_stop_are_handled_by_the_next_worker_within_10_s(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """A deploy on a quiet queue: SIGTERM to an idle worker, messages sent 0.3 s later, the
    next worker started as soon as the first has exited.

    Naive code it catches: giving up the open poll with the full visibility timeout (what
    the server then hands it stays invisible for 60 s), or waiting for it (the first worker
    takes up to 20 s to exit). Each message is handled once, and none reaches the
    dead-letter queue, although the given-up poll may have counted a receive.
    """
    queue = await sqs.create_queue(visibility_timeout=60, max_receive_count=3)
    ledger, log = tmp_path / "ledger", tmp_path / "log"
    env = env_for(sqs_server.endpoint_url, queue, ledger, wait_time=DEFAULT_WAIT)
    async with cli([APP], env, log) as worker:
        await logged(log, "worker started")
        await anyio.sleep(1)
        worker.send_signal(signal.SIGTERM)
        await anyio.sleep(0.3)
        late = await sqs.send(queue, orders("ok", range(5)))
        sent_at = time.monotonic()
        code, _ = await exit_code(worker, log, within=30)
    assert code == 0, tail(log)
    async with cli([APP], env, log) as worker:
        await eventually(
            lambda: set(ids_of(read_ledger(ledger), "done")) >= set(late),
            within=30,
            what=f"the late messages handled; log:\n{tail(log)}",
        )
        handled_in = time.monotonic() - sent_at
        worker.send_signal(signal.SIGTERM)
        code, _ = await exit_code(worker, log, within=15)
    assert code == 0, tail(log)
    assert handled_in < 10, f"handled {handled_in:.1f} s after they were sent:\n{tail(log)}"
    started = ids_of(read_ledger(ledger), "start")
    assert {message_id: started[message_id] for message_id in late} == dict.fromkeys(late, 1)
    assert await dead_letters(sqs, queue) == []
    assert await sqs.counts(queue) == (0, 0)


async def test_burst_exits_0_within_5_s_of_its_last_message(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """Naive code it catches: a burst whose stop waits for the open long polls (up to 20 s
    after the queue ran dry)."""
    queue = await sqs.create_queue(visibility_timeout=60)
    ids = await sqs.send(queue, orders("ok", range(20), sleep=0.05))
    ledger, log = tmp_path / "ledger", tmp_path / "log"
    env = env_for(sqs_server.endpoint_url, queue, ledger, wait_time=DEFAULT_WAIT)
    async with cli([APP, "--burst"], env, log) as worker:
        await eventually(
            lambda: set(ids_of(read_ledger(ledger), "done")) >= set(ids),
            within=30,
            what=f"every message handled; log:\n{tail(log)}",
        )
        code, took = await exit_code(worker, log, within=30)
    assert code == 0, tail(log)
    assert took < 5, f"the burst ended {took:.1f} s after its last message:\n{tail(log)}"
    assert "burst: 20 succeeded, none failed" in log.read_text(), tail(log)
    assert await sqs.counts(queue) == (0, 0)


async def test_burst_exits_with_its_own_code_when_a_message_was_dead_lettered(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """Naive code it catches: a burst that exits 0 however its handlers fared (a CI job
    cannot tell a clean run from one that dead-lettered its input)."""
    queue = await sqs.create_queue(visibility_timeout=60, max_receive_count=1)
    ok = await sqs.send(queue, orders("ok", range(19)))
    [poison] = await sqs.send(queue, orders("poison", range(19, 20)))
    ledger, log = tmp_path / "ledger", tmp_path / "log"
    env = env_for(sqs_server.endpoint_url, queue, ledger, wait_time=DEFAULT_WAIT)
    async with cli([APP, "--burst"], env, log) as worker:
        code, _ = await exit_code(worker, log, within=60)
    assert code == BURST_FAILED, tail(log)
    assert set(ids_of(read_ledger(ledger), "done")) == set(ok)
    copies = await dead_letters(sqs, queue)
    assert [str(failure_of(copy)["message_id"]) for copy in copies] == [poison]
    assert "burst: 19 succeeded, 1 handler call failed (1 dead-lettered): exit code 3" in (
        log.read_text()
    ), tail(log)


async def test_a_burst_gives_up_a_poison_message_on_a_queue_without_a_dead_letter_queue(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """One message that always fails, no dead-letter queue, a give-up limit of 3 s.

    Naive code it catches: a burst that waits for the queue to empty whatever happens: SQS
    hands the poison message back for ever, and the run never ends. The message is left in
    its queue, not deleted.
    """
    queue = await sqs.create_queue(visibility_timeout=60)
    [poison] = await sqs.send(queue, ["poison"])
    app = make_app()
    attempts: list[int] = []

    @app.consumer(queue.name, retry_base_delay=0.2, retry_max_delay=0.5, wait_time=1)
    async def handle(message: Message) -> None:
        attempts.append(message.receive_count)
        raise RuntimeError("poison")

    with anyio.fail_after(30):
        async with app:
            emptied = await wait_until_empty(app, give_up_after=3)
    assert emptied is False
    assert len(attempts) >= 2, attempts  # retried (1 s apart) until the limit
    stats = app.statistics()["handle"]
    assert stats.succeeded == 0
    assert stats.deleted == 0

    left = await sqs.drain_once_back(queue)  # once its last back-off is over
    assert [message["MessageId"] for message in left] == [poison]


async def test_burst_under_workers_passes_on_a_workers_failure_code(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """Naive code it catches: a supervisor that takes a worker's burst exit code 3 for a
    crash: it restarts the worker, whose new run finds the queue empty and exits 0, and
    the failure is lost."""
    queue = await sqs.create_queue(visibility_timeout=60, max_receive_count=1)
    await sqs.send(queue, orders("ok", range(5)))
    [poison] = await sqs.send(queue, orders("poison", range(5, 6)))
    ledger = tmp_path / "ledger"
    env = env_for(sqs_server.endpoint_url, queue, ledger)
    with anyio.fail_after(60):
        result = await anyio.run_process(
            [sys.executable, "-m", "aiosqsworker", APP, "--workers", "2", "--burst"],
            cwd=REPO,
            env=env,
            check=False,
        )
    log = result.stderr.decode()
    assert result.returncode == BURST_FAILED, log[-3000:]
    assert "died unexpectedly" not in log
    assert "finished its burst, with failures" in log, log[-3000:]
    copies = await dead_letters(sqs, queue)
    assert [str(failure_of(copy)["message_id"]) for copy in copies] == [poison]
