"""What operators rely on: probes, metrics, logs, the scale command, the worker supervisor."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from anyio.abc import Process

import aiosqsworker
from aiosqsworker import App, Message
from aiosqsworker._cli.main import main as cli_main
from aiosqsworker._logging import JsonFormatter, message_context
from aiosqsworker._run.metrics import serve_metrics
from aiosqsworker.testing import FaultProxy, LocalSQSServer

from .clikit import cli, exit_code, logged, tail
from .kit import REGION, Queue, SQSKit, eventually, eventually_async

REPO = Path(__file__).resolve().parent.parent


async def _get(port: int, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, await response.text()


async def _answers(port: int, path: str, status: int) -> bool:
    return (await _get(port, path))[0] == status


async def test_healthz_fails_for_an_app_never_started(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """Catches a liveness probe that answers OK for any state but a running one with a stall:
    a service that built its App and forgot `async with app:` consumes nothing, and its
    /healthz said 200 for ever."""
    queue = await sqs.create_queue()
    app = make_app()

    @app.consumer(queue.name, wait_time=1)
    async def handle(message: Message) -> None:
        pass

    async with anyio.create_task_group() as tg:
        port = await tg.start(partial(serve_metrics, app, port=0))
        status, text = await _get(port, "/healthz")
        assert status == 503
        assert "never started" in text
        async with app:
            assert (await _get(port, "/healthz"))[0] == 200
        tg.cancel_scope.cancel()


async def test_healthz_fails_while_polling_stalls_and_recovers_after(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    queue = await sqs.create_queue()
    async with FaultProxy(sqs_server.endpoint_url) as proxy:
        app = make_app(endpoint_url=proxy.url)

        @app.consumer(queue.name, wait_time=1)
        async def handle(message: Message) -> None:
            pass

        async with app, anyio.create_task_group() as tg:
            port = await tg.start(partial(serve_metrics, app, port=0))
            assert (await _get(port, "/healthz"))[0] == 200
            assert (await _get(port, "/readyz"))[0] == 200

            proxy.always("ReceiveMessage", "reset")  # the server is gone, as far as polls go
            await eventually_async(partial(_answers, port, "/healthz", 503), within=20)
            assert "handle" in (await _get(port, "/healthz"))[1]
            assert app.statistics()["handle"].poll_errors > 0

            proxy.clear()
            await eventually_async(partial(_answers, port, "/healthz", 200), within=30)
            app.stop()
            await eventually(lambda: app.state.value == "stopped")
            assert (await _get(port, "/readyz"))[0] == 503
            tg.cancel_scope.cancel()


async def test_metrics_count_what_the_consumers_did(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    queue = await sqs.create_queue()
    await sqs.send(queue, (str(n) for n in range(12)))
    app = make_app()

    @app.consumer(queue.name, wait_time=1)
    async def handle(message: Message) -> None:
        await anyio.sleep(0.01)

    async with app, anyio.create_task_group() as tg:
        port = await tg.start(partial(serve_metrics, app, port=0))
        await eventually(lambda: app.statistics()["handle"].deleted == 12)
        status, text = await _get(port, "/metrics")
        tg.cancel_scope.cancel()
    assert status == 200
    labels = f'consumer="handle",queue="{queue.name}"'
    assert f"aiosqsworker_messages_succeeded_total{{{labels}}} 12.0" in text
    assert f"aiosqsworker_messages_received_total{{{labels}}} 12.0" in text
    assert "aiosqsworker_handler_duration_seconds{" in text
    stats = app.statistics()["handle"]
    assert stats.latency_p50 is not None
    assert 0.005 < stats.latency_p50 < 0.1
    assert stats.last_poll_at is not None


def test_json_log_lines_carry_the_message_context() -> None:
    record = logging.LogRecord(
        "aiosqsworker.slots",
        logging.ERROR,
        __file__,
        1,
        "handler failed on %s",
        ("m-1",),
        None,
    )
    for name, value in message_context("orders", "m-1", 3).items():
        setattr(record, name, value)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "handler failed on m-1"
    assert line["level"] == "ERROR"
    assert (line["consumer"], line["message_id"], line["attempt"]) == ("orders", "m-1", 3)


async def test_scale_recommends_workers_for_a_known_backlog_and_rate(
    sqs: SQSKit, sqs_server: LocalSQSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = await sqs.create_queue()
    await sqs.send(queue, (str(n) for n in range(300)))
    argv = [
        "scale",
        queue.name,
        "--target-latency", "30",
        "--per-worker-rate", "4",
        "--interval", "0.5",
        "--max", "50",
        "--endpoint-url", sqs_server.endpoint_url,
        "--region", REGION,
    ]  # fmt: skip
    # 300 queued, nothing arriving: (0 + 300 / 30) / 4 = 2.5, so 3 workers.
    code = await anyio.to_thread.run_sync(cli_main, argv)
    captured = capsys.readouterr()
    assert code == 0
    assert "desired workers 3 " in captured.out, captured.out
    assert "backlog 300 visible" in captured.out
    # Catches a silent sample (10 s by default that look like a hang): what it saw first,
    # and when the answer comes, go to stderr at once.
    assert f"scale: {queue.name} now holds 300 visible, 0 in flight, 0 delayed; a second " in (
        captured.err
    )
    assert "reading in 0.5 s" in captured.err


def _ops_service_env(
    sqs_server: LocalSQSServer, queue: str, ledger: Path, *, job_seconds: float
) -> dict[str, str]:
    """The environment of `tests.apps.ops_service`: its queue, job length and ledger file."""
    return {
        **os.environ,
        "AWS_ENDPOINT_URL_SQS": sqs_server.endpoint_url,
        "AWS_REGION": REGION,
        "OPS_QUEUE": queue,
        "OPS_JOB_SECONDS": str(job_seconds),
        "OPS_LEDGER": str(ledger),
    }


def _ledger(path: Path) -> list[tuple[int, str]]:
    if not path.exists():
        return []
    return [
        (int(pid), message_id)
        for pid, message_id in (line.split() for line in path.read_text().splitlines() if line)
    ]


async def _drained(sqs: SQSKit, queue: Queue) -> bool:
    """Whether the queue is empty, read twice: moto counts the visible messages and then the
    invisible ones, so one read misses messages whose visibility ends between the two."""
    return await sqs.counts(queue) == (0, 0) == await sqs.counts(queue)


@pytest.mark.slow
async def test_two_worker_processes_survive_a_kill_and_drain_on_sigterm(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    queue = await sqs.create_queue()
    ids = set(await sqs.send(queue, (str(n) for n in range(120))))
    ledger = tmp_path / "ledger"
    env = _ops_service_env(sqs_server, queue.name, ledger, job_seconds=0.3)
    stderr = tmp_path / "stderr"
    with stderr.open("wb") as log_file:
        supervisor = await anyio.open_process(
            [sys.executable, "-m", "aiosqsworker", "tests.apps.ops_service", "--workers", "2",
             "--log-format", "json", "--shutdown-timeout", "10"],
            cwd=REPO, env=env, stderr=log_file, stdout=subprocess.DEVNULL,
            start_new_session=True,  # its own group: a failing test can stop it and its workers
        )  # fmt: skip
    try:
        await eventually(lambda: len({pid for pid, _ in _ledger(ledger)}) == 2, within=30)
        victim = _ledger(ledger)[-1][0]
        os.kill(victim, signal.SIGKILL)  # mid-batch: it holds up to 20 messages
        await eventually(lambda: {m for _, m in _ledger(ledger)} >= ids, within=60)
        # What the killed worker handled but never deleted comes back when its 5 s visibility
        # ends and is handled again: stop once the queue is empty, not before it comes back.
        await eventually_async(partial(_drained, sqs, queue), within=30)
        started = time.monotonic()
        supervisor.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            code = await supervisor.wait()
        assert code == 0
        assert time.monotonic() - started < 15
    finally:
        if supervisor.returncode is None:
            os.killpg(supervisor.pid, signal.SIGKILL)  # the supervisor and every worker
            await supervisor.wait()
        await supervisor.aclose()
    lines = stderr.read_text().splitlines()
    log = [json.loads(line) for line in lines if line.startswith("{")]
    assert any("died unexpectedly" in entry["message"] for entry in log)
    launches = [entry["message"] for entry in log if " started (pid " in entry["message"]]
    assert len(launches) == 3, launches  # two workers, and the one that replaced the killed one
    worker_of_pid = {int(m.split("(pid ")[1].rstrip(")")): int(m.split()[1]) for m in launches}
    worker_lines = [entry for entry in log if entry["logger"] != "aiosqsworker.supervisor"]
    assert worker_lines
    assert all(
        worker_of_pid.get(entry.get("pid", -1)) == entry.get("worker") for entry in worker_lines
    )
    handled = Counter(message_id for _, message_id in _ledger(ledger))
    assert set(handled) == ids  # nothing lost
    # Only what the killed worker held can run twice: its leases simply ran out.
    assert sum(count - 1 for count in handled.values()) <= 20
    assert await sqs.counts(queue) == (0, 0)


@pytest.mark.slow
async def test_ctrl_c_under_workers_drains_gracefully_and_every_line_names_its_worker(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """A Ctrl-C reaches the supervisor and every worker (one process group): the workers
    leave SIGINT to the supervisor, which sends each one SIGTERM once, so the stop is
    graceful (exit 0, running handlers finish), and each text line says which worker wrote it.

    Catches: workers that count the terminal's SIGINT and the supervisor's SIGTERM as two
    signals (a forced stop, exit 1), and worker lines that cannot be told apart.
    """
    queue = await sqs.create_queue()
    ids = set(await sqs.send(queue, (str(n) for n in range(40))))
    ledger, stderr = tmp_path / "ledger", tmp_path / "stderr"
    env = _ops_service_env(sqs_server, queue.name, ledger, job_seconds=0.5)
    with stderr.open("wb") as log_file:
        supervisor = await anyio.open_process(
            [sys.executable, "-m", "aiosqsworker", "tests.apps.ops_service", "--workers", "2",
             "--shutdown-timeout", "20"],
            cwd=REPO, env=env, stderr=log_file, stdout=subprocess.DEVNULL,
            start_new_session=True,  # its own group, as a terminal's foreground job
        )  # fmt: skip
    try:
        await eventually(lambda: len({pid for pid, _ in _ledger(ledger)}) == 2, within=30)
        os.killpg(supervisor.pid, signal.SIGINT)  # what Ctrl-C does
        with anyio.fail_after(30):
            code = await supervisor.wait()
    finally:
        if supervisor.returncode is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
            await supervisor.wait()
        await supervisor.aclose()
    text = stderr.read_text()
    assert code == 0, text[-3000:]
    assert "forcing" not in text
    launches = dict(re.findall(r"worker (\d) started \(pid (\d+)\)", text))
    assert len(launches) == 2, text[-3000:]
    worker_lines = [line for line in text.splitlines() if "aiosqsworker.supervisor" not in line]
    labels = {re.search(r"\[worker (\d) pid (\d+)\]", line) for line in worker_lines}
    assert None not in labels, "a worker's line without its worker and pid"
    assert {match.groups() for match in labels if match} == set(launches.items())
    for index in launches:
        assert f"[worker {index} pid {launches[index]}] aiosqsworker: worker stopped" in text
    handled = Counter(message_id for _, message_id in _ledger(ledger))
    assert set(handled) <= ids
    assert all(count == 1 for count in handled.values())  # nothing cut short and redone
    visible, in_flight = await sqs.counts(queue)
    assert (visible + len(handled), in_flight) == (len(ids), 0)  # the rest released at once


async def test_a_stop_while_the_workers_still_start_is_clean(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """SIGTERM reaches the supervisor while its workers are still importing the service: each
    dies of the SIGTERM forwarded to it before it could handle one, holding no message (a
    worker handles signals before its first poll). The supervisor stops cleanly: exit 0,
    and the log says what happened to each worker.

    Catches: a supervisor that reads a worker killed by its own forwarded SIGTERM, before the
    worker could hold anything, as a failure (exit 1) that an orchestrator would report.
    """
    queue = await sqs.create_queue()
    ids = set(await sqs.send(queue, ["a", "b"]))
    ledger, stderr = tmp_path / "ledger", tmp_path / "stderr"
    env = {
        **_ops_service_env(sqs_server, queue.name, ledger, job_seconds=0),
        "OPS_IMPORT_SECONDS": "30",
    }
    async with cli(["tests.apps.ops_service", "--workers", "2"], env, stderr) as supervisor:
        await logged(stderr, "worker 0 started")
        await logged(stderr, "worker 1 started")
        supervisor.send_signal(signal.SIGTERM)
        code, _ = await exit_code(supervisor, stderr, within=30)
    assert code == 0, tail(stderr)
    assert stderr.read_text().count("stopped before it was ready") == 2, tail(stderr)
    assert not _ledger(ledger)
    assert await sqs.counts(queue) == (len(ids), 0)  # never received


@pytest.fixture
def library_logger() -> Iterator[logging.Logger]:
    """The library's logger, put back as it was after the test."""
    logger = logging.getLogger("aiosqsworker")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield logger
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")


async def test_log_to_shows_the_librarys_info_lines_under_a_server_that_logs_its_own_way(
    sqs: SQSKit, make_app: Callable[..., App], library_logger: logging.Logger
) -> None:
    """Under uvicorn the root logger has no handler and stays at WARNING: the library's INFO
    lines go nowhere. `log_to` sends them to uvicorn's own logger, even when called before
    uvicorn set that logger's handlers up (at import, or first thing in a lifespan).

    Catches: a helper that only lowers the library's level (the lines still end at the
    root logger), or one that copies the target's handlers when it is called (none yet).
    """
    queue = await sqs.create_queue()
    server_logger = logging.getLogger(f"server-{queue.name}")
    aiosqsworker.log_to(server_logger)
    lines = _Lines()
    server_logger.addHandler(lines)  # the server configures its logging afterwards
    app = make_app()

    @app.consumer(queue.name, wait_time=1)
    async def handle(message: Message) -> None: ...

    async with app:
        pass
    assert any(line.startswith("INFO aiosqsworker") and "consuming" in line for line in lines.lines)
    assert any("worker stopped" in line for line in lines.lines)
    aiosqsworker.log_to(server_logger, level="WARNING")  # again: replaces, does not add
    assert len(library_logger.handlers) == 1
    lines.lines.clear()
    async with app:
        pass
    assert lines.lines == []


# The supervisor's own death.

WATCHER = """
import os, sys, anyio
from aiosqsworker._run.orphan import watch_supervisor

async def main() -> None:
    parent = os.getppid()
    print("watching", parent, flush=True)
    on_gone = lambda: print("gone", flush=True)
    await watch_supervisor(parent, on_gone, use_pidfd=sys.argv[1] == "pidfd", interval=0.1)

anyio.run(main)
"""

PARENT = """
import subprocess, sys, time
with open(sys.argv[3], "w") as out:
    subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]], stdout=out)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie no parent has reaped yet has ended, for this purpose)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.parametrize("mode", ["pidfd", "polling"])
async def test_a_watched_parent_killed_outright_is_noticed(tmp_path: Path, mode: str) -> None:
    """Both ways a worker learns of its supervisor's death: the kernel's pidfd, and (where
    there is none) polling the parent's pid.

    Catches a worker that trusts its supervisor to tell it when to stop: killed with
    SIGKILL, the supervisor tells nobody anything. Also catches a watch that fires while the
    parent lives (the first half-second must stay quiet).
    """
    out = tmp_path / "watcher"
    parent = await anyio.open_process(
        [sys.executable, "-c", PARENT, WATCHER, mode, str(out)],
        cwd=REPO, stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        await eventually(lambda: out.exists() and "watching" in out.read_text(), within=20)
        assert out.read_text().split()[1] == str(parent.pid)
        await anyio.sleep(0.5)
        assert "gone" not in out.read_text(), "the parent is alive"
        os.kill(parent.pid, signal.SIGKILL)
        await parent.wait()
        await eventually(lambda: "gone" in out.read_text(), within=10, what="the death noticed")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)  # the watcher too, if the test failed
        await parent.aclose()


def _free_port_pair() -> int:
    """A port whose next one is free too (for two workers' metrics)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            if port >= 65_535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise AssertionError("no two consecutive free ports")


def _json_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def _worker_pids(path: Path) -> list[int]:
    """The pids of the workers a supervisor logged it started."""
    return [
        int(entry["message"].rsplit("(pid ", 1)[1].rstrip(")"))
        for entry in _json_log(path)
        if " started (pid " in entry["message"]
    ]


async def _all_ready(port: int, workers: int) -> bool:
    for index in range(workers):
        try:
            if (await _get(port + index, "/readyz"))[0] != 200:
                return False
        except aiohttp.ClientError:
            return False
    return True


@pytest.mark.slow
async def test_workers_drain_when_their_supervisor_is_killed_and_a_new_one_takes_over(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """`kill -9` of the `--workers 2` supervisor: its workers drain within seconds (running
    jobs finish and are deleted, buffered ones released), and a new supervisor on the same
    --metrics-port starts cleanly and does the rest.

    Catches workers that stop only when their supervisor tells them to: orphaned, they
    consume on with no one to stop them, and the new supervisor's workers crash-loop on
    "address in use" of the ports the orphans hold.
    """
    queue = await sqs.create_queue()
    ids = set(await sqs.send(queue, (str(n) for n in range(200))))
    ledger = tmp_path / "ledger"
    port = _free_port_pair()
    env = _ops_service_env(sqs_server, queue.name, ledger, job_seconds=0.5)
    argv = [
        *(sys.executable, "-m", "aiosqsworker", "tests.apps.ops_service", "--workers", "2"),
        *("--metrics-port", str(port), "--log-format", "json", "--shutdown-timeout", "10"),
    ]
    supervisors: list[Process] = []

    async def start_supervisor(log: Path) -> Process:
        with log.open("wb") as log_file:
            supervisor = await anyio.open_process(
                argv, cwd=REPO, env=env, stderr=log_file, stdout=subprocess.DEVNULL,
                start_new_session=True,  # its own group: the cleanup reaches every worker
            )  # fmt: skip
        supervisors.append(supervisor)
        return supervisor

    first_log, second_log = tmp_path / "first", tmp_path / "second"
    try:
        first = await start_supervisor(first_log)
        await eventually(lambda: len({pid for pid, _ in _ledger(ledger)}) == 2, within=30)
        orphans = _worker_pids(first_log)
        assert len(orphans) == 2, orphans
        os.kill(first.pid, signal.SIGKILL)  # no signal forwarded, no one left to stop them
        await first.wait()
        killed_at = time.monotonic()
        await eventually(
            lambda: not any(_alive(pid) for pid in orphans), within=20, what="orphans gone"
        )
        drained_in = time.monotonic() - killed_at
        handled_by_orphans = len(_ledger(ledger))
        assert handled_by_orphans < len(ids), "the queue was done before the kill took effect"

        second = await start_supervisor(second_log)
        await eventually_async(partial(_all_ready, port, 2), within=30)
        await eventually(lambda: {m for _, m in _ledger(ledger)} >= ids, within=60)
        second.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            assert await second.wait() == 0
    finally:
        for supervisor in supervisors:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(supervisor.pid, signal.SIGKILL)  # the supervisor and its workers
            await supervisor.wait()
            await supervisor.aclose()

    first_messages = [entry["message"] for entry in _json_log(first_log)]
    gone = [m for m in first_messages if f"the supervisor (pid {first.pid}) is gone" in m]
    assert len(gone) == 2, first_messages[-20:]
    assert first_messages.count("worker stopped") == 2  # a graceful drain, not a kill
    assert drained_in < 15, f"the orphans took {drained_in:.1f} s to drain"
    second_messages = [entry["message"] for entry in _json_log(second_log)]
    assert not [m for m in second_messages if "died unexpectedly" in m], second_messages
    assert len(_worker_pids(second_log)) == 2  # no restarts
    handled = Counter(message_id for _, message_id in _ledger(ledger))
    assert set(handled) == ids  # nothing lost
    # The orphans finished what they ran and had it deleted: nothing ran twice.
    assert sum(count - 1 for count in handled.values()) == 0, handled.most_common(3)
    assert await sqs.counts(queue) == (0, 0)
