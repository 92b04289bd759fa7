"""Blocking and CPU-bound handlers: ``def`` in threads, ``run_in="process"`` in children, and
the watchdog that names a handler blocking the event loop.

The scenarios run the user module `tests.apps.offload_service` through
``python -m aiosqsworker`` against the test server; its handlers keep a ledger (``<pid>
<event> <message id> <n>@<unix time>``) from which runs are counted and timed.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from aiosqsworker import (
    App,
    ConfigurationError,
    ConsumerConfig,
    ConsumerSpec,
    HandlerProcessError,
    HandlerSignatureError,
    Message,
    Retry,
    consumer,
)
from aiosqsworker._config import EnvironmentSettings, available_cpus, worker_count
from aiosqsworker._consumer.procpool import ProcessPool, RemoteTraceback
from aiosqsworker._registry import default_registry
from aiosqsworker._sqs.redrive import FAILURE_ATTRIBUTE
from aiosqsworker.testing import LocalSQSServer, call_consumer, free_port, make_message

from .apps import offload_service, pool_jobs
from .clikit import cli, counts_become, exit_code, tail
from .kit import REGION, SQSKit, eventually

SERVICE = "tests.apps.offload_service:app"


@dataclass(frozen=True)
class Event:
    pid: int
    kind: str
    message_id: str
    n: int
    at: float


def read_events(path: Path) -> list[Event]:
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        pid, kind, message_id, label = line.split(" ", 3)
        n, at = label.split("@")
        events.append(Event(int(pid), kind, message_id, int(n), float(at)))
    return events


def runs(events: list[Event], kind: str, ids: set[str] | None = None) -> Counter[str]:
    return Counter(
        e.message_id for e in events if e.kind == kind and (ids is None or e.message_id in ids)
    )


async def all_done(ledger: Path, ids: set[str], *, within: float) -> None:
    await eventually(
        lambda: set(runs(read_events(ledger), "done")) >= ids,
        within=within,
        what="every message handled",
    )


def offload_env(server: LocalSQSServer, ledger: Path, **settings: str) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ENDPOINT_URL_SQS": server.endpoint_url,
        "AWS_REGION": REGION,
        "ORDERS_LEDGER": str(ledger),
        **{f"OFFLOAD_{name.upper()}": value for name, value in settings.items()},
    }


def jobs(count: int, seconds: float, *, first: int = 0) -> list[str]:
    return [json.dumps({"n": n, "seconds": seconds}) for n in range(first, first + count)]


async def stop(worker: Any, log: Path) -> None:
    worker.send_signal(signal.SIGTERM)
    code, _ = await exit_code(worker, log, within=30)
    assert code == 0, tail(log)


def gone(pid: int) -> bool:
    """Whether process `pid` has ended: it is no more, or it is a zombie (an orphan's end
    waits for whichever process adopted it to reap it)."""
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (ProcessLookupError, FileNotFoundError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


# Scenarios through the command line.


@pytest.mark.slow
async def test_a_blocking_def_handler_keeps_its_leases_while_an_async_consumer_flows(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """A ``def`` that sleeps 3 s at a 2 s visibility timeout runs each message exactly once,
    and an ``async`` consumer of the same app keeps handling messages meanwhile.

    Catches: calling a ``def`` handler on the event loop. The loop would stand still for
    3 s at a time: no lease extension (each slow message received again by the time it
    ends) and no message of the other consumer handled while a slow one runs.
    """
    slow = await sqs.create_queue("slow", visibility_timeout=2)
    flowing = await sqs.create_queue("flowing", visibility_timeout=30)
    slow_ids = set(await sqs.send(slow, jobs(3, 3.0)))
    flowing_ids = set(await sqs.send(flowing, (json.dumps({"n": n}) for n in range(40))))
    ledger, log = tmp_path / "ledger", tmp_path / "stderr"
    env = offload_env(
        sqs_server, ledger, sleepy_thread=slow.name, flowing=flowing.name, concurrency="3"
    )

    async with cli([SERVICE], env, log) as worker:
        await all_done(ledger, slow_ids | flowing_ids, within=60)
        await counts_become(sqs, slow, (0, 0))
        await stop(worker, log)

    events = read_events(ledger)
    assert runs(events, "start", slow_ids) == dict.fromkeys(slow_ids, 1), tail(log)
    assert runs(events, "done", slow_ids) == dict.fromkeys(slow_ids, 1)
    all_running_from = max(e.at for e in events if e.kind == "start" and e.message_id in slow_ids)
    first_slow_done = min(e.at for e in events if e.kind == "done" and e.message_id in slow_ids)
    flowed = [
        e
        for e in events
        if e.message_id in flowing_ids and all_running_from < e.at < first_slow_done
    ]
    assert len(flowed) >= 5, f"only {len(flowed)} messages handled while 3 slow ones ran"
    assert "event loop has not turned" not in log.read_text()


@pytest.mark.slow
async def test_cpu_bound_work_runs_in_two_child_processes_at_once_and_a_long_job_runs_once(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """0.3 s CPU jobs of a ``run_in="process"`` consumer run in two child processes at the
    same time, those of a ``def`` consumer in the worker's own process, each job once; a 3 s
    CPU job at a 2 s visibility timeout runs once.

    How much faster processes are than threads is a figure of the machine, measured by
    ``python -m benchmarks.blocking`` (see benchmarks.md), not asserted here: on a busy
    machine a speed ratio fails for reasons of its own, and must never take the exactly-once
    checks down with it.

    Catches: running ``run_in="process"`` handlers in the parent's threads (one pid, the
    parent's), a pool that serves one job at a time (no two jobs of different children
    overlap), and a process job that holds the loop while it waits (the long job's lease
    would expire and the job run again).
    """
    in_thread = await sqs.create_queue("thread", visibility_timeout=2)
    in_process = await sqs.create_queue("process", visibility_timeout=2)
    ledger, log = tmp_path / "ledger", tmp_path / "stderr"
    env = offload_env(
        sqs_server, ledger, cpu_thread=in_thread.name, cpu_process=in_process.name, processes="2"
    )

    def done(ids: set[str]) -> bool:
        return set(runs(read_events(ledger), "done")) >= ids

    ids: dict[str, set[str]] = {"thread": set(), "process": set()}
    async with cli([SERVICE], env, log) as worker:
        warm = set(await sqs.send(in_process, jobs(2, 0.3, first=100)))  # both children up
        await eventually(lambda: done(warm), within=60, what="the pool started")
        for turn in range(2):
            for kind, queue in (("thread", in_thread), ("process", in_process)):
                batch = set(await sqs.send(queue, jobs(4, 0.3, first=4 * turn)))
                await eventually(partial(done, batch), within=60, what=f"{kind} turn {turn}")
                ids[kind] |= batch
        (long_job,) = await sqs.send(in_process, jobs(1, 3.0, first=50))
        await eventually(lambda: done({long_job}), within=60, what="the long job")
        await counts_become(sqs, in_process, (0, 0))
        await stop(worker, log)

    thread_ids, process_ids = ids["thread"], ids["process"]
    events = read_events(ledger)
    every = thread_ids | process_ids | {long_job}
    assert runs(events, "start", every) == dict.fromkeys(every, 1), tail(log)
    parent = {e.pid for e in events if e.message_id in thread_ids}
    children = {e.pid for e in events if e.message_id in process_ids}
    assert len(parent) == 1
    assert len(children) == 2
    assert not parent & children
    spans = {
        e.message_id: (e.pid, e.at, end.at)
        for e in events
        if e.kind == "start" and e.message_id in process_ids
        for end in events
        if end.kind == "done" and end.message_id == e.message_id
    }
    assert any(
        pid_a != pid_b and start_a < end_b and start_b < end_a
        for pid_a, start_a, end_a in spans.values()
        for pid_b, start_b, end_b in spans.values()
    ), f"no two process jobs ran at the same time: {spans}"


@pytest.mark.slow
async def test_the_watchdog_names_an_async_handler_that_blocks_the_loop_while_it_blocks(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """An ``async`` handler calling ``time.sleep(2.5)`` is named in a WARNING before it
    returns, and the stall is counted in the consumer's metrics.

    Catches: a watchdog that measures only after the loop turns again (its warning would
    say 2.5 s, or come too late to name the handler), and one that cannot tell which
    consumer blocked.
    """
    queue = await sqs.create_queue("sleepy", visibility_timeout=30)
    (sleeper,) = await sqs.send(queue, jobs(1, 2.5))
    ledger, log = tmp_path / "ledger", tmp_path / "stderr"
    port = free_port()
    env = offload_env(sqs_server, ledger, sleepy_loop=queue.name)

    async with cli([SERVICE, "--metrics-port", str(port)], env, log) as worker:
        await eventually(
            lambda: sleeper in runs(read_events(ledger), "done"), within=30, what="handled"
        )
        await eventually(lambda: "ran again after" in log.read_text(), within=10)
        url = f"http://127.0.0.1:{port}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            metrics = await response.text()
        await stop(worker, log)

    text = log.read_text()
    warning = next(line for line in text.splitlines() if "event loop has not turned" in line)
    assert "WARNING" in warning
    assert (
        "consumer 'sleepy_on_the_loop' is running handler "
        "tests.apps.offload_service.sleepy_on_the_loop at " in warning
    )
    assert "offload_service.py:" in warning
    stuck_for = float(warning.split("has not turned for ")[1].split(" s")[0])
    assert 1.0 <= stuck_for < 2.4, "the warning came after the handler returned"
    labels = f'consumer="sleepy_on_the_loop",queue="{queue.name}"'
    assert f"aiosqsworker_loop_blocks_total{{{labels}}} 1.0" in metrics
    blocked = next(
        line for line in metrics.splitlines() if line.startswith("aiosqsworker_loop_blocked_")
    )
    assert 2.0 <= float(blocked.rsplit(" ", 1)[1]) < 10


@pytest.mark.slow
async def test_outcomes_in_threads_and_processes_and_a_crashing_child(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """`Retry`, `Reject`, a failure, `timeout=` in a thread and in a process, and a child
    killed by SIGKILL: each message takes its path, the good ones are handled once.

    Catches: exceptions that lose their fields on the way back from a child (a `Retry`
    rebuilt from its text raises at once), failure records that point at the pool instead
    of the handler, a timeout that leaves the child running, and a pool that breaks as a
    whole when one child dies (`ProcessPoolExecutor`'s BrokenProcessPool).
    """
    threads = await sqs.create_queue("threads", visibility_timeout=2, max_receive_count=2)
    processes = await sqs.create_queue("processes", visibility_timeout=2, max_receive_count=2)
    commands = ["ok", "retry", "reject", "fail", "hang", "ok"]
    ids: dict[tuple[str, str], str] = {}
    for queue, extra in ((threads, []), (processes, ["crash"])):
        bodies = [
            json.dumps({"n": n, "do": do, "seconds": 3}) for n, do in enumerate(commands + extra)
        ]
        for body, message_id in zip(bodies, await sqs.send(queue, bodies), strict=True):
            ids[(queue.name, json.loads(body)["do"] + str(json.loads(body)["n"]))] = message_id
    ledger, log = tmp_path / "ledger", tmp_path / "stderr"
    env = offload_env(
        sqs_server,
        ledger,
        commands_thread=threads.name,
        commands_process=processes.name,
        timeout="1",
    )

    async with cli([SERVICE], env, log) as worker:
        await counts_become(sqs, await sqs.dlq_of(threads), (3, 0))
        await counts_become(sqs, await sqs.dlq_of(processes), (4, 0))
        await counts_become(sqs, threads, (0, 0))
        await counts_become(sqs, processes, (0, 0))
        # The thread that ran past its timeout runs on: its late end changes nothing.
        hung = ids[(threads.name, "hang4")]
        await eventually(lambda: runs(read_events(ledger), "done")[hung] == 2, within=20)
        await stop(worker, log)

    events = read_events(ledger)
    started, done = runs(events, "start"), runs(events, "done")
    for queue in (threads, processes):
        ok = {ids[(queue.name, "ok0")], ids[(queue.name, "ok5")]}
        assert {i: started[i] for i in ok} == dict.fromkeys(ok, 1), tail(log)
        assert {i: done[i] for i in ok} == dict.fromkeys(ok, 1)
        retried = ids[(queue.name, "retry1")]
        assert (started[retried], done[retried]) == (2, 1)
        assert started[ids[(queue.name, "reject2")]] == 1
        assert started[ids[(queue.name, "fail3")]] == 2
        assert started[ids[(queue.name, "hang4")]] == 2
    assert done[ids[(processes.name, "hang4")]] == 0, "a child ran on past its timeout"
    assert done[ids[(threads.name, "hang4")]] == 2
    hung_children = {
        e.pid
        for e in events
        if e.message_id == ids[(processes.name, "hang4")] and e.kind == "start"
    }
    for child in hung_children:
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)

    records = {}
    for queue in (threads, processes):
        for message in await sqs.drain_with_attributes(await sqs.dlq_of(queue)):
            do = json.loads(message["Body"])["do"]
            attribute = message["MessageAttributes"][FAILURE_ATTRIBUTE]["StringValue"]
            records[(queue.name, do)] = json.loads(attribute)
    for queue in (threads, processes):
        assert records[(queue.name, "reject")]["reason"] == "message 2 cannot be handled"
        failed = records[(queue.name, "fail")]
        assert failed["exception"] == "tests.apps.offload_service.HandlerFailure"
        assert failed["where"].split(":")[0].endswith("offload_service.py")
        assert failed["where"].endswith("in _obey")
        assert records[(queue.name, "hang")]["exception"] == "builtins.TimeoutError"
    crashed = records[(processes.name, "crash")]
    assert crashed["exception"] == "aiosqsworker.HandlerProcessError"
    assert "killed by SIGKILL" in crashed["error"]
    text = log.read_text()
    assert "a thread cannot be stopped, so it runs on" in text
    assert "its process is killed, and a new one takes its place" in text


@pytest.mark.slow
async def test_a_process_handler_that_forks_then_dies_fails_its_message_and_the_pool_goes_on(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """A process handler forks (the forked process sleeps a minute with a copy of the pipe to
    the worker) and dies: its message is retried, then dead-lettered with a record that names
    the crash, what it forked is killed, and five other messages, waiting for the one child
    (``processes=1``), are handled once each.

    Catches: a pool that learns of a child's death only from EOF on the child's pipe. The
    forked process holds the pipe open, so the job would count as running for as long as it
    lives: its lease extended again and again, and nothing else run in the pool.
    """
    queue = await sqs.create_queue("forking", visibility_timeout=2, max_receive_count=2)
    (crashing,) = await sqs.send(queue, [json.dumps({"n": 0, "do": "fork-then-crash"})])
    innocent = set(await sqs.send(queue, [json.dumps({"n": n, "do": "ok"}) for n in range(1, 6)]))
    ledger, log = tmp_path / "ledger", tmp_path / "stderr"
    env = offload_env(sqs_server, ledger, commands_process=queue.name, processes="1")

    async with cli([SERVICE], env, log) as worker:
        await counts_become(sqs, await sqs.dlq_of(queue), (1, 0))
        forked = [e.n for e in read_events(ledger) if e.kind == "forked"]
        assert len(forked) == 2, tail(log)
        await eventually(lambda: all(map(gone, forked)), within=5, what="the forked ones killed")
        await all_done(ledger, innocent, within=30)
        await counts_become(sqs, queue, (0, 0))
        await stop(worker, log)

    events = read_events(ledger)
    assert runs(events, "start", innocent) == dict.fromkeys(innocent, 1), tail(log)
    assert runs(events, "start")[crashing] == 2
    (dead,) = await sqs.drain_with_attributes(await sqs.dlq_of(queue))
    record = json.loads(dead["MessageAttributes"][FAILURE_ATTRIBUTE]["StringValue"])
    assert record["exception"] == "aiosqsworker.HandlerProcessError"
    assert "died (killed by SIGKILL)" in record["error"]


@pytest.mark.slow
async def test_a_worker_killed_outright_takes_its_handler_processes_with_it(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """``kill -9`` of a worker (as the OOM killer does) while its process handler is in a
    minute-long job: the child running the job is gone within two seconds.

    Catches: children that end only when their worker asks them to (a stop on the pipe,
    ``daemon=True``, which acts at a normal exit only): a worker killed outright would leave
    them running their jobs while the messages come back and run elsewhere.
    """
    queue = await sqs.create_queue("long", visibility_timeout=30)
    (long_job,) = await sqs.send(queue, [json.dumps({"n": 0, "do": "hang", "seconds": 60})])
    ledger, log = tmp_path / "ledger", tmp_path / "stderr"
    env = offload_env(sqs_server, ledger, commands_process=queue.name, processes="1")

    async with cli([SERVICE], env, log) as worker:
        await eventually(
            lambda: long_job in runs(read_events(ledger), "start"), within=30, what="started"
        )
        (child,) = {e.pid for e in read_events(ledger) if e.kind == "start"}
        assert child != worker.pid
        worker.kill()
        await worker.wait()
        await eventually(lambda: gone(child), within=2, what=f"the child {child} gone")


# The process pool on its own.


async def test_a_child_that_dies_fails_its_job_only_and_is_replaced() -> None:
    """Catches: a pool that breaks as a whole, or hands the next job to the dead child."""
    async with ProcessPool(1) as pool:
        first = await pool.run(pool_jobs.pid, ())
        with pytest.raises(HandlerProcessError, match="died \\(killed by SIGKILL\\)"):
            await pool.run(pool_jobs.die, (), label="pool_jobs.die")
        assert await pool.run(pool_jobs.add, (2, 3)) == 5
        assert await pool.run(pool_jobs.pid, ()) != first
        assert pool.started == 2


def refuse_pidfd(pid: int) -> int:
    raise PermissionError(errno.EPERM, "pidfd_open refused by the sandbox")


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "no pidfd"])
async def test_a_child_that_forks_then_dies_fails_its_job_and_what_it_forked_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pidfd: bool
) -> None:
    """With pidfds, and without them (a kernel before 5.3, a sandbox that refuses them).

    Catches: waiting for a job's answer on the pipe alone. The forked process keeps a copy
    of the pipe open, so no EOF comes when the child dies, and the job waits for ever."""
    if not pidfd:
        monkeypatch.setattr(os, "pidfd_open", refuse_pidfd)
    pid_file = tmp_path / "forked"
    async with ProcessPool(1) as pool:
        with (
            anyio.fail_after(10),
            pytest.raises(HandlerProcessError, match="died \\(killed by SIGKILL\\)"),
        ):
            await pool.run(pool_jobs.fork_then_die, (str(pid_file),))
        forked = int(pid_file.read_text())
        await eventually(lambda: gone(forked), within=2, what="the forked process killed")
        assert await pool.run(pool_jobs.add, (2, 3)) == 5
        assert pool.started == 2


@pytest.mark.slow
async def test_children_outlive_the_idle_threads_of_their_parent() -> None:
    """A child still serves jobs after the parent's idle worker threads have ended.

    Catches: starting children in a worker thread (``anyio.to_thread.run_sync(process
    .start)``) once they ask for a signal at their parent's death. Linux sends it when the
    thread that started the process ends, and anyio ends a thread idle for 10 s when another
    call comes: every idle child would be killed.
    """
    async with ProcessPool(1) as pool:
        first = await pool.run(pool_jobs.pid, ())
        # Two idle threads, the one used first on the left: after 10 s, the next call ends it.
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(anyio.to_thread.run_sync, time.sleep, 0)
            tasks.start_soon(anyio.to_thread.run_sync, time.sleep, 0.2)
        await anyio.sleep(10.5)
        await anyio.to_thread.run_sync(time.sleep, 0)
        await anyio.sleep(0.5)
        assert await pool.run(pool_jobs.pid, ()) == first
        assert pool.started == 1


ORPHAN = """
import os, threading, time
from aiosqsworker._consumer.procpool import die_with_parent
die_with_parent(os.getppid(), kernel={kernel})
print(os.getpid(), threading.active_count(), flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("kernel", [True, False], ids=["kernel", "polling"])
def test_a_process_that_asks_to_die_with_its_parent_does(kernel: bool) -> None:
    """The kernel's parent-death signal, and the thread that watches for the parent where
    there is none, each end a process within two seconds of its parent's SIGKILL.

    Catches: a prctl call that does nothing (a wrong option number fails silently), one that
    fails and leaves the work to the thread unseen, and a watch that compares the parent with
    itself."""
    code = ORPHAN.format(kernel=kernel)
    parent_code = (
        f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {code!r}])\n"
        "time.sleep(60)\n"
    )
    with subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE) as parent:
        assert parent.stdout is not None
        child, threads = map(int, parent.stdout.readline().split())
        parent.kill()
    try:
        deadline = time.monotonic() + 2
        while not gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone(child), f"process {child} outlived its parent by 2 s"
        assert threads == (1 if kernel else 2), (
            "the kernel was not asked, or the thread not started"
        )
    finally:
        with suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


async def test_a_cancelled_job_ends_its_child_and_exceptions_keep_their_traceback() -> None:
    """Catches: a timeout that returns while the child works on, and exceptions whose
    failure record would point at the pool rather than the handler."""
    async with ProcessPool(1) as pool:
        busy = await pool.run(pool_jobs.pid, ())
        assert isinstance(busy, int)
        with anyio.move_on_after(0.3):
            await pool.run(pool_jobs.sleep, (30,))
        with pytest.raises(ProcessLookupError):
            os.kill(busy, 0)
        with pytest.raises(ValueError, match="out of range") as info:
            await pool.run(pool_jobs.explode, ("out of range",))
        cause = info.value.__cause__
        assert isinstance(cause, RemoteTraceback)
        assert "pool_jobs.py" in cause.text
        assert cause.frames[-1].name == "explode"
        with pytest.raises(HandlerProcessError, match="Unrebuildable: code 7: odd"):
            await pool.run(pool_jobs.explode_oddly, ())


async def test_arguments_that_cannot_be_pickled_fail_the_call_with_a_clear_error() -> None:
    async with ProcessPool(1) as pool:
        with pytest.raises(HandlerProcessError, match="must be picklable"):
            await pool.run(pool_jobs.add, (lambda: 1, 2))
        assert pool.started == 0, "nothing was sent, so no child was needed"


# The testing helper runs offloaded handlers too.


async def test_call_consumer_runs_a_def_handler_and_a_process_handler() -> None:
    def handle_in_thread(message: Message) -> None:
        raise Retry(delay=7)

    outcome = await call_consumer(handle_in_thread, make_message("x"))
    assert (outcome.action, outcome.delay) == ("retry", 7)
    spec = ConsumerSpec.build(
        offload_service.commands_in_process, ConsumerConfig(queue="q", run_in="process")
    )
    outcome = await call_consumer(spec, make_message(json.dumps({"n": 1, "do": "reject"})))
    assert outcome.action == "dead-letter"  # the Reject came back from the child as itself
    assert "cannot be handled" in str(outcome.error)


# Bad input, at decoration and construction.


def test_run_in_process_refuses_what_a_child_cannot_import() -> None:
    registered = len(default_registry)

    async def handle_async(message: Message) -> None: ...

    def make_closure() -> Any:
        def handle_inner(message: Message) -> None: ...

        return handle_inner

    with pytest.raises(HandlerSignatureError, match=r"is async: run_in='process' is for a plain"):
        consumer("q", run_in="process")(handle_async)
    with pytest.raises(HandlerSignatureError, match="defined inside another function"):
        consumer("q", run_in="process")(make_closure())
    namespace: dict[str, Any] = {"__name__": "not_a_module_anywhere"}
    exec("def handle_generated(message):\n    pass\n", namespace)
    with pytest.raises(HandlerSignatureError, match="'not_a_module_anywhere' cannot be imported"):
        consumer("q", run_in="process")(namespace["handle_generated"])
    with pytest.raises(HandlerSignatureError, match="is async: run_in='thread'"):
        consumer("q", run_in="thread")(handle_async)
    assert len(default_registry) == registered


def test_offload_settings_are_validated_with_a_hint() -> None:
    with pytest.raises(ConfigurationError, match=r"run_in='proces' is invalid \(did you mean"):
        consumer("q", run_in="proces")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="processes=0 is invalid: it must be a whole"):
        App(processes=0)
    with pytest.raises(ConfigurationError, match="watchdog=0 is invalid"):
        App(watchdog=0)
    assert App(watchdog=None).config.watchdog is None
    assert App().config.pool_size == available_cpus()


def test_workers_auto_is_one_per_cpu() -> None:
    assert worker_count("auto", "--workers auto") == available_cpus()
    assert worker_count("3", "--workers 3") == 3
    assert EnvironmentSettings.read({"AIOSQSWORKER_WORKERS": "auto"}).workers == available_cpus()
    with pytest.raises(ConfigurationError, match="--workers two is invalid: give a whole"):
        worker_count("two", "--workers two")
    with pytest.raises(ConfigurationError, match=r"AIOSQSWORKER_WORKERS='0' is invalid.*or auto"):
        EnvironmentSettings.read({"AIOSQSWORKER_WORKERS": "0"})
    result = subprocess.run(
        [sys.executable, "-m", "aiosqsworker", "tests.apps.orders_app:app", "--workers", "x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "argument --workers: 'x' is invalid: give a whole number" in result.stderr


def test_an_app_started_inside_a_handler_process_is_refused(tmp_path: Path) -> None:
    """Catches: a script without a main guard starting a second app in every child."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import multiprocessing\n"
        "import anyio\n"
        "from aiosqsworker import App\n"
        "multiprocessing.current_process().name = 'aiosqsworker-handler'\n"
        "anyio.run(App().run)\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "Start it under `if __name__ == '__main__':`" in result.stderr
