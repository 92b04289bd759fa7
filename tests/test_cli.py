"""The command line in a real process: `python -m aiosqsworker`, stopped by real signals.

The user module (`tests.apps.orders_service`) keeps a ledger of handler events, one line per
event (``<pid> <event> <message id> <n>``), from which exactly-once is counted.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

import aiosqsworker
from aiosqsworker._cli.main import _build_parser
from aiosqsworker._cli.main import main as cli_main
from aiosqsworker._config import too_many_workers
from aiosqsworker.testing import LocalSQSServer, free_port

from .clikit import (
    REPO,
    cli,
    counts_become,
    exit_code,
    ids_of,
    logged,
    read_ledger,
    started_twice,
    tail,
)
from .kit import REGION, SQSKit, eventually

SERVICE = "tests.apps.orders_service"


def worker_env(server: LocalSQSServer, queue: str, ledger: Path, **settings: str) -> dict[str, str]:
    """The worker's environment: the local server, and the user module's settings."""
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_SQS": server.endpoint_url,
        "AWS_REGION": REGION,
        "ORDERS_QUEUE": queue,
        "ORDERS_LEDGER": str(ledger),
    }
    env.update({f"ORDERS_{name.upper()}": value for name, value in settings.items()})
    return env


@pytest.mark.slow
async def test_a_mixed_load_is_handled_exactly_once_and_sigterm_exits_cleanly(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    queue = await sqs.create_queue(visibility_timeout=2, max_receive_count=2)
    dlq = await sqs.dlq_of(queue)
    good = [json.dumps({"n": n, "sleep": 0.02}) for n in range(146)]
    long_jobs = [json.dumps({"n": n, "sleep": 5}) for n in range(146, 150)]  # > visibility 2 s
    poison = [f"not json {n}" for n in range(6)]
    bodies = good[:60] + poison[:3] + long_jobs + good[60:] + poison[3:]
    ids = await sqs.send(queue, bodies)
    by_body = dict(zip(bodies, ids, strict=True))
    good_ids = {by_body[body] for body in good + long_jobs}
    long_ids = {by_body[body] for body in long_jobs}
    poison_ids = {by_body[body] for body in poison}
    ledger, log = tmp_path / "ledger", tmp_path / "stderr"
    env = worker_env(
        sqs_server,
        queue.name,
        ledger,
        concurrency="8",
        prefetch="2",  # buffered leases are extended too
        visibility="2",
        retry_base_delay="0.2",
        wait_time="2",  # a graceful stop lets the open long poll finish: at most this long
    )

    async with cli([SERVICE, "--shutdown-timeout", "20"], env, log) as worker:
        await eventually(
            lambda: set(ids_of(read_ledger(ledger), "done")) >= good_ids,
            within=60,
            what="every good message handled",
        )
        await counts_become(sqs, dlq, (len(poison), 0))
        await counts_become(sqs, queue, (0, 0))
        worker.send_signal(signal.SIGTERM)
        code, took = await exit_code(worker, log, within=15)

    assert code == 0, tail(log)
    assert took < 5, f"an idle worker took {took:.1f} s to stop"
    events = read_ledger(ledger)
    started, done = ids_of(events, "start"), ids_of(events, "done")
    assert set(done) == good_ids
    assert not started_twice(events)
    assert started == done, "a good message was not handled exactly once"
    assert all(started[message_id] == 1 for message_id in long_ids)
    assert not ids_of(events, "cancel")
    bad = ids_of(events, "bad")
    assert set(bad) == poison_ids
    assert all(1 <= count <= 2 for count in bad.values()), bad
    assert await sqs.counts(queue) == (0, 0)
    assert sorted(m["Body"] for m in await sqs.drain(dlq)) == sorted(poison)
    assert "received SIGTERM" in log.read_text()


@pytest.mark.slow
async def test_sigterm_under_load_lets_started_jobs_finish_and_a_restart_does_the_rest(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    queue = await sqs.create_queue(visibility_timeout=30)
    ids = set(await sqs.send(queue, (json.dumps({"n": n}) for n in range(60))))
    ledger, log = tmp_path / "ledger", tmp_path / "stderr"
    env = worker_env(
        sqs_server,
        queue.name,
        ledger,
        concurrency="10",
        prefetch="0",
        job_seconds="1",
        wait_time="2",  # a graceful stop lets the open long poll finish: at most this long
    )

    def busy_after_a_first_wave() -> bool:
        events = read_ledger(ledger)
        started, done = len(ids_of(events, "start")), len(ids_of(events, "done"))
        return done >= 10 and started - done >= 5

    async with cli([SERVICE, "--shutdown-timeout", "20"], env, log) as worker:
        await eventually(
            busy_after_a_first_wave, within=30, what="a first wave done and handlers running"
        )
        worker.send_signal(signal.SIGTERM)
        code, took = await exit_code(worker, log, within=15)
        first_pid = worker.pid
        # Right after the exit: nothing held, and everything not done is there for anyone.
        visible, in_flight = await sqs.counts(queue)

    assert code == 0, tail(log)
    events = read_ledger(ledger)
    started, done = ids_of(events, "start"), ids_of(events, "done")
    assert started == done, "a handler started before SIGTERM did not finish"
    assert not ids_of(events, "cancel")
    assert took < 8, f"stopping took {took:.1f} s with 1 s jobs"
    assert in_flight == 0
    assert visible == 60 - len(done)
    assert visible > 0

    async with cli([SERVICE, "--shutdown-timeout", "20"], env, log) as worker:
        await eventually(
            lambda: set(ids_of(read_ledger(ledger), "done")) >= ids,
            within=40,
            what="the restarted worker finishing the rest",
        )
        worker.send_signal(signal.SIGTERM)
        code, _ = await exit_code(worker, log, within=15)
        second_pid = worker.pid
    assert code == 0, tail(log)

    events = read_ledger(ledger)
    started, done = ids_of(events, "start"), ids_of(events, "done")
    assert set(done) == ids
    assert not started_twice(events)
    assert started == done
    assert {event.pid for event in events} == {first_pid, second_pid}
    assert await sqs.counts(queue) == (0, 0)


async def test_a_second_sigterm_forces_exit_143_and_releases_running_messages(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    queue = await sqs.create_queue(visibility_timeout=60)
    ids = set(await sqs.send(queue, (json.dumps({"n": n, "sleep": 120}) for n in range(4))))
    ledger, log = tmp_path / "ledger", tmp_path / "stderr"
    env = worker_env(sqs_server, queue.name, ledger, concurrency="10")

    async with cli([SERVICE, "--shutdown-timeout", "60"], env, log) as worker:
        await eventually(
            lambda: set(ids_of(read_ledger(ledger), "start")) == ids,
            within=20,
            what="4 long jobs running",
        )
        worker.send_signal(signal.SIGTERM)
        await logged(log, "received SIGTERM: shutting down gracefully")
        await logged(log, "waiting up to 60 s for 4 running handlers")
        assert worker.returncode is None
        assert not ids_of(read_ledger(ledger), "cancel")
        worker.send_signal(signal.SIGTERM)
        # Well inside the 60 s the graceful stop would give its handlers: the forced stop
        # waited for none of them (a bound on the exit, not a speed: under load a tighter
        # one failed on a healthy worker).
        code, _ = await exit_code(worker, log, within=15)
        visible, in_flight = await sqs.counts(queue)

    assert code == 128 + signal.SIGTERM == 143
    assert set(ids_of(read_ledger(ledger), "cancel")) == ids
    assert not ids_of(read_ledger(ledger), "done")
    assert (visible, in_flight) == (4, 0)  # visible at once, not 60 s later
    assert "forcing shutdown" in log.read_text()


async def test_help_documents_every_option_and_the_environment() -> None:
    (commands,) = (a for a in _build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    run_parser = commands.choices["run"]
    options = {
        option
        for action in run_parser._actions
        for option in action.option_strings
        if option.startswith("--")
    }
    assert {"--shutdown-timeout", "--endpoint-url", "--workers", "--no-progress"} <= options
    environment = [
        "AWS_REGION",
        "AWS_ENDPOINT_URL_SQS",
        "AWS_PROFILE",
        "AIOSQSWORKER_SHUTDOWN_TIMEOUT",
        "AIOSQSWORKER_WORKERS",
        "AIOSQSWORKER_CLIENT",
        "AIOSQSWORKER_METRICS_PORT",
        "AIOSQSWORKER_METRICS_HOST",
        "AIOSQSWORKER_LOG_LEVEL",
        "AIOSQSWORKER_LOG_FORMAT",
    ]
    results: dict[str, subprocess.CompletedProcess[bytes]] = {}

    async def run(*args: str) -> None:
        results[" ".join(args)] = await anyio.run_process(
            [sys.executable, "-m", "aiosqsworker", *args], cwd=REPO, check=False
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "--help")
        tg.start_soon(run, "run", "--help")

    for args, result in results.items():
        text = result.stdout.decode()
        assert result.returncode == 0, (args, result.stderr)
        missing = sorted(name for name in [*options, *environment] if name not in text)
        assert not missing, f"`{args}` does not mention {missing}"
        assert "SIGTERM" in text
        assert "MODULE[:APP]" in text
    run_help = results["run --help"].stdout.decode()
    assert run_help.startswith("usage: python -m aiosqsworker run "), run_help[:300]


async def test_module_colon_app_runs_that_app(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    queue = await sqs.create_queue()
    ids = set(await sqs.send(queue, (f"order {n}" for n in range(5))))
    ledger, log = tmp_path / "ledger", tmp_path / "stderr"
    env = worker_env(sqs_server, queue.name, ledger)
    async with cli(["tests.apps.orders_app:app"], env, log) as worker:
        await eventually(
            lambda: set(ids_of(read_ledger(ledger), "done")) == ids,
            within=20,
            what="the app's consumer handling the queue",
        )
        worker.send_signal(signal.SIGINT)
        code, _ = await exit_code(worker, log, within=15)
    assert code == 0, tail(log)
    text = log.read_text()
    assert "[orders-app] consuming" in text  # the explicit App's own consumer...
    assert "worker started: 1 consumer," in text  # one, not "1 consumers"
    assert "stopping: no new polls" in text
    assert "0 running handlers" not in text  # the stop names only what it waits for
    assert "received SIGINT" in text
    assert await sqs.counts(queue) == (0, 0)


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("tests.apps.orders_app", "module 'tests.apps.orders_app' registered no consumers"),
        ("tests.apps.no_such_module", "cannot import module 'tests.apps.no_such_module'"),
        ("tests.apps.orders_app:missing", "tests.apps.orders_app:missing is missing"),
        # A file path where a module goes, a misspelled or absent App: the fix, named.
        ("tests/apps/orders_app.py", "is a file path: give the module's dotted name, as "
         "python -m takes it: python -m aiosqsworker tests.apps.orders_app"),
        ("./tests/apps/orders_app.py:app", "python -m aiosqsworker tests.apps.orders_app:app"),
        ("tests.apps.orders_app:ap", "(did you mean tests.apps.orders_app:app?)"),
        ("tests.apps.orders_service:app", "the module defines no App, but registers consumers "
         "with @consumer: run tests.apps.orders_service alone"),
    ],
)  # fmt: skip
async def test_a_bad_target_is_one_clear_line_and_a_failure(target: str, error: str) -> None:
    """Catches a target that gets only "cannot import" or "is missing": a file path given as
    the module, or a wrong `:app`, must say what to type instead."""
    result = await anyio.run_process(
        [sys.executable, "-m", "aiosqsworker", target],
        cwd=REPO,
        env={**os.environ, "ORDERS_QUEUE": "orders"},
        check=False,
    )
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith("aiosqsworker: error: "), lines
    assert error in lines[0], lines
    assert not result.stdout


async def test_a_bad_environment_value_or_port_is_one_clear_line_and_exit_1(
    sqs_server: LocalSQSServer,
) -> None:
    """Each mistake a new user makes on the command line: one line that says the fix, exit 1.

    Catches, each in its own row: leaving an endpoint variable without a scheme to botocore
    (a 64-line traceback ending in ``ValueError: Invalid endpoint``, for `run`, `send` and
    `stats` alike); passing a metrics port over 65535 through to the socket (which silently
    binds another port); argparse's `parser.error` for a bad environment value (the whole
    usage, exit 2); a metrics port in use as a traceback of the bind.
    """
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        cases: list[tuple[list[str], dict[str, str], str]] = [
            (
                [SERVICE],
                {"AWS_ENDPOINT_URL_SQS": "127.0.0.1:4566"},
                "AWS_ENDPOINT_URL_SQS='127.0.0.1:4566' is invalid: it must start with http://",
            ),
            (
                ["send", "orders", "hello"],
                {"AWS_ENDPOINT_URL_SQS": "localhost:4566"},
                "(for a local server: AWS_ENDPOINT_URL_SQS=http://localhost:4566)",
            ),
            (
                ["stats", "orders"],
                {"AWS_ENDPOINT_URL": "localhost:4566"},
                "AWS_ENDPOINT_URL='localhost:4566' is invalid",
            ),
            (
                [SERVICE, "--metrics-port", "99999"],
                {},
                "--metrics-port 99999 is invalid: it must be a port from 1 to 65535",
            ),
            (
                [SERVICE],
                {"AIOSQSWORKER_METRICS_PORT": "70000"},
                "AIOSQSWORKER_METRICS_PORT=70000 is invalid: it must be a port from 1 to 65535",
            ),
            (
                [SERVICE, "--workers", "2", "--metrics-port", "65535"],
                {},
                "it must be a port from 1 to 65534 (worker i of --workers 2 serves on PORT + i)",
            ),
            (
                ["stats", "orders"],
                {"AIOSQSWORKER_LOG_LEVEL": "verbose"},
                "AIOSQSWORKER_LOG_LEVEL='verbose' is invalid: choose one of DEBUG, INFO, WARNING",
            ),
            (
                # Nothing listens there: a local server that is not running.
                ["stats", "orders", "--endpoint-url", f"http://127.0.0.1:{free_port()}"],
                {},
                "Is the local server running (python -m aiosqsworker local-server)",
            ),
            (
                [SERVICE, "--workers", "1000"],
                {},
                "--workers 1000 on ",
            ),
            (
                [SERVICE, "--metrics-port", str(busy)],
                {"AWS_ENDPOINT_URL_SQS": sqs_server.endpoint_url},
                f"cannot serve metrics on 127.0.0.1:{busy}: address already in use",
            ),
        ]
        results: dict[int, subprocess.CompletedProcess[bytes]] = {}

        async def run(index: int, args: list[str], env: dict[str, str]) -> None:
            results[index] = await anyio.run_process(
                [sys.executable, "-m", "aiosqsworker", *args],
                cwd=REPO,
                env={**os.environ, "AWS_REGION": REGION, "ORDERS_QUEUE": "orders", **env},
                check=False,
            )

        async with anyio.create_task_group() as tg:
            for index, (args, env, _) in enumerate(cases):
                tg.start_soon(run, index, args, env)

    for index, (args, env, error) in enumerate(cases):
        result = results[index]
        lines = result.stderr.decode().strip().splitlines()
        assert result.returncode == 1, (args, env, lines[-5:])
        assert len(lines) == 1, (args, env, lines[-5:])
        assert lines[0].startswith("aiosqsworker: error: "), lines
        assert error in lines[0], (error, lines[0])


def test_version_names_the_package_and_python(capsys: pytest.CaptureFixture[str]) -> None:
    """Catches a CLI with no --version (argparse took it for a module to run)."""
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["--version"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"aiosqsworker {aiosqsworker.__version__} (Python 3."), out


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [
        (["send", "orders", "--grup-id", "g", "x"], "unknown option --grup-id (did you mean "
         "--group-id?)"),
        (["stats", "orders", "--jsn"], "unknown option --jsn (did you mean --json?)"),
        (["tests.apps.orders_service", "--wrkers", "2"], "unknown option --wrkers (did you "
         "mean --workers?)"),
        (["queue", "create", "orders", "--max-mesage-size", "1024"], "(did you mean "
         "--max-message-size?)"),
    ],
)  # fmt: skip
def test_a_mistyped_option_gets_the_close_one_in_two_lines(
    argv: list[str], suggestion: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Catches argparse's default: "unrecognized arguments" after eight lines of usage, with
    no suggestion."""
    with pytest.raises(SystemExit) as exit_info:
        cli_main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2, lines
    assert suggestion in lines[0], lines
    assert lines[1].endswith(" --help)"), lines


@pytest.mark.parametrize(
    ("workers", "cpus", "expected"),
    [(2, 2, None), (4, 2, None), (5, 2, False), (16, 2, False), (17, 2, True), (1000, 2, True)],
)
def test_workers_beyond_the_cpus_are_warned_then_refused(
    workers: int, cpus: int, expected: bool | None
) -> None:
    crowded = too_many_workers(workers, cpus)
    assert (crowded[0] if crowded else None) is expected
    if crowded:
        assert "--workers auto" in crowded[1]
