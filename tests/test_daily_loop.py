"""The developer's daily loop: a local server, queue commands, burst, selection, reload.

The command-line scenarios run `python -m aiosqsworker` in real processes; the ledger of
`tests.apps.orders_service` (one line per handler event) tells what each handler did.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from aiosqsworker import App, ConfigurationError, Message
from aiosqsworker._cli.run import _worker_argv
from aiosqsworker._run.burst import is_quiet
from aiosqsworker._run.reload import watched_directories
from aiosqsworker.testing import LocalSQSServer, free_port, run_until_empty

from .clikit import Event, ids_of, read_ledger
from .kit import REGION, SQSKit, eventually

REPO = Path(__file__).resolve().parent.parent


def most_running_at_once(events: list[Event]) -> int:
    """The most handlers that were running at the same moment, from the ledger's order."""
    running = most = 0
    for event in events:
        if event.kind == "start":
            running += 1
            most = max(most, running)
        elif event.kind in ("done", "cancel", "bad"):
            running -= 1
    return most


@asynccontextmanager
async def local_server(port: int) -> AsyncIterator[dict[str, str]]:
    """`python -m aiosqsworker local-server --port PORT`; yields the variables it says to export."""
    process = await anyio.open_process(
        [sys.executable, "-m", "aiosqsworker", "local-server", "--port", str(port)],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        output = b""
        with anyio.fail_after(30):
            while b"\n" not in output:
                output += await process.stdout.receive()
        line = output.decode().splitlines()[0]
        assert line.startswith("export "), line
        yield dict(pair.split("=", 1) for pair in line.removeprefix("export ").split())
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(15):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.terminate()  # it stops the server it started
            await process.wait()
        await process.aclose()


NEW_TERMINAL_SCRIPT = """
import json, sys
import boto3
sqs, s3 = boto3.client("sqs"), boto3.client("s3")  # no region, no endpoint: the environment's
url = sqs.get_queue_url(QueueName="reports")["QueueUrl"]
attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
s3.head_bucket(Bucket="report-payloads")
print(json.dumps(attributes))
"""


@pytest.mark.slow
async def test_the_line_local_server_prints_is_all_a_new_terminal_needs(tmp_path: Path) -> None:
    """A terminal with no AWS setting pastes local-server's line, then creates a queue with a
    maximum message size and a bucket, and plain boto3 finds both.

    Catches: a line without AWS_DEFAULT_REGION (plain boto3: NoRegionError) or without
    AWS_ENDPOINT_URL_S3 (S3 calls go to AWS); a `queue create` without --max-message-size;
    no command to create a bucket; a second `bucket create` that fails.
    """
    port = free_port()
    async with local_server(port) as exported:
        endpoint = f"http://127.0.0.1:{port}"
        assert exported["AWS_ENDPOINT_URL_SQS"] == exported["AWS_ENDPOINT_URL_S3"] == endpoint
        env = {
            "PATH": os.environ["PATH"],
            "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            **exported,
        }

        async def command(*args: str) -> str:
            result = await anyio.run_process(args, cwd=REPO, env=env, check=False)
            assert result.returncode == 0, result.stderr.decode()[-2000:]
            return result.stdout.decode()

        cli = (sys.executable, "-m", "aiosqsworker")
        created = await command(
            *cli, "queue", "create", "reports", "--max-message-size", "2048", "--retention", "3600"
        )
        assert created.startswith("created reports ")
        assert (await command(*cli, "bucket", "create", "report-payloads")).startswith(
            "created report-payloads at " + endpoint
        )
        assert (await command(*cli, "bucket", "create", "report-payloads")).startswith(
            "exists: report-payloads"
        )
        attributes = json.loads(await command(sys.executable, "-c", NEW_TERMINAL_SCRIPT))
        assert attributes["MaximumMessageSize"] == "2048"
        assert attributes["MessageRetentionPeriod"] == "3600"


@pytest.mark.slow
async def test_from_an_empty_terminal_to_a_drained_queue_with_the_command_line_only(
    tmp_path: Path,
) -> None:
    """local-server; queue create with a DLQ; send 30; run --burst --concurrency 10; purge;
    delete: every step a command, each one's exit code and output checked.

    Catches: a --burst that exits before everything is handled or never exits; a
    --concurrency that is not applied (the module asks for 1: one handler at a time); a
    create that leaves the dead-letter queue out.
    """
    port = free_port()
    async with local_server(port) as exported:
        assert exported["AWS_ENDPOINT_URL_SQS"] == f"http://127.0.0.1:{port}"
        ledger = tmp_path / "ledger"
        env = {
            **os.environ,
            **exported,
            "ORDERS_QUEUE": "orders",
            "ORDERS_LEDGER": str(ledger),
            "ORDERS_CONCURRENCY": "1",
            "ORDERS_WAIT_TIME": "1",
            "ORDERS_JOB_SECONDS": "0.1",
        }

        async def command(*args: str) -> subprocess.CompletedProcess[bytes]:
            return await anyio.run_process(
                [sys.executable, "-m", "aiosqsworker", *args], cwd=REPO, env=env, check=False
            )

        def succeeded(result: subprocess.CompletedProcess[bytes]) -> str:
            assert result.returncode == 0, result.stderr.decode()[-2000:]
            return result.stdout.decode()

        created = succeeded(
            await command(
                "queue", "create", "orders",
                "--dead-letter-queue", "orders-dlq", "--max-receive-count", "2",
            )
        )  # fmt: skip
        assert "created orders-dlq " in created
        assert "created orders " in created
        bodies = [json.dumps({"n": n}) for n in range(30)]
        assert succeeded(await command("send", "orders", *bodies)) == "sent 30 messages to orders\n"

        with anyio.fail_after(60):
            burst = await command("tests.apps.orders_service", "--burst", "--concurrency", "10")
        succeeded(burst)
        assert b"burst: every queue is empty" in burst.stderr
        events = read_ledger(ledger)
        done = ids_of(events, "done")
        assert len(done) == 30
        assert ids_of(events, "start") == done
        assert most_running_at_once(events) > 1, "--concurrency 10 did not replace 1"

        row = json.loads(succeeded(await command("stats", "orders", "--json")))
        assert (row["visible"], row["in_flight"], row["delayed"]) == (0, 0, 0)
        assert (row["dead_letter_queue"], row["max_receive_count"]) == ("orders-dlq", 2)

        succeeded(await command("send", "orders", "left", "over"))
        purged = succeeded(await command("queue", "purge", "orders"))
        assert purged == "purged orders: about 2 messages deleted\n"
        deleted = succeeded(await command("queue", "delete", "orders"))
        assert deleted.startswith("deleted orders")
        succeeded(await command("queue", "delete", "orders-dlq"))
        gone = await command("stats", "orders")
        assert gone.returncode == 1
        assert b"'orders' does not exist" in gone.stderr


async def test_local_server_refuses_a_port_in_use_in_one_line(sqs_server: LocalSQSServer) -> None:
    result = await anyio.run_process(
        [sys.executable, "-m", "aiosqsworker", "local-server", "--port", str(sqs_server.port)],
        cwd=REPO,
        check=False,
    )
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 1
    assert lines == [
        f"aiosqsworker: error: port {sqs_server.port} on 127.0.0.1 is in use (another local "
        "server?): stop it, or give --port N (--port 0 picks a free one)"
    ]


def test_quiet_means_counts_came_back_all_zero_and_nothing_is_held() -> None:
    assert is_quiet({"a": 0, "b": 0}, 0)
    assert not is_quiet({}, 0)  # not started, or no queue answered
    assert not is_quiet({"a": 0, "b": 1}, 0)
    assert not is_quiet({"a": 0}, 1)  # received, not settled: SQS counts it, so do we


async def test_only_the_consumers_named_run(sqs: SQSKit, make_app: Callable[..., App]) -> None:
    """`only=` (``--consumer``) leaves the other consumers' queues alone.

    Catches: a selection applied after every pipeline started (the other queue would be
    consumed too), or a burst that waits on the queues of consumers that do not run.
    """
    wanted, other = await sqs.create_queue("wanted"), await sqs.create_queue("other")
    await sqs.send(wanted, ["a", "b"])
    await sqs.send(other, ["c"])
    app = make_app(only=["take_wanted"])
    seen: list[str] = []

    @app.consumer(wanted.name, wait_time=1)
    async def take_wanted(message: Message) -> None:
        seen.append(message.body)

    @app.consumer(other.name, wait_time=1)
    async def take_other(message: Message) -> None:
        seen.append(message.body)

    await run_until_empty(app, within=30)
    assert sorted(seen) == ["a", "b"]
    assert set(app.statistics()) == {"take_wanted"}
    assert await sqs.counts(other) == (1, 0)


async def test_a_consumer_name_that_does_not_exist_stops_the_start(
    make_app: Callable[..., App],
) -> None:
    app = make_app(only=["take_order", "take_ordr"])

    @app.consumer("orders")
    async def take_order(message: Message) -> None: ...

    with pytest.raises(ConfigurationError) as error:
        async with app:
            pass
    assert str(error.value) == (
        "no consumer is named 'take_ordr' (did you mean 'take_order'?); the consumers are: "
        "take_order"
    )


async def test_the_app_concurrency_replaces_every_consumers_own(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """With `concurrency=4` a consumer declared with concurrency 1 runs up to 4 handlers.

    Catches: an override that only changes the reported settings, or the receiver's
    capacity but not the number of handler slots (at most one would run).
    """
    queue = await sqs.create_queue()
    await sqs.send(queue, (str(n) for n in range(12)))
    app = make_app(concurrency=4)
    running = most = 0

    @app.consumer(queue.name, concurrency=1, wait_time=1)
    async def slow(message: Message) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await anyio.sleep(0.2)
        running -= 1

    await run_until_empty(app, within=30)
    assert 1 < most <= 4
    assert app.statistics()["slow"].succeeded == 12
    assert app.consumers[0].config.concurrency == 1  # the registered settings stay


async def test_a_misspelled_consumer_on_the_command_line_is_one_line() -> None:
    result = await anyio.run_process(
        [sys.executable, "-m", "aiosqsworker", "tests.apps.orders_service",
         "--consumer", "handle_ordr"],
        cwd=REPO, check=False,
        env={**os.environ, "AWS_REGION": REGION},
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.decode().strip().splitlines() == [
        "aiosqsworker: error: no consumer is named 'handle_ordr' (did you mean "
        "'handle_order'?); the consumers are: handle_order"
    ]


def test_a_reload_watches_the_modules_package_without_importing_it(tmp_path: Path) -> None:
    package = tmp_path / "shop"
    (package / "orders").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('imported')\n")
    (package / "orders" / "__init__.py").write_text("")
    (tmp_path / "single.py").write_text("raise RuntimeError('imported')\n")
    search = [str(tmp_path)]
    assert watched_directories("shop.orders:app", search) == [package]
    assert watched_directories("single", search) == [tmp_path]
    with pytest.raises(ConfigurationError, match="cannot find module 'nowhere'"):
        watched_directories("nowhere.orders", search)


def test_the_workers_of_a_supervisor_neither_supervise_nor_reload() -> None:
    argv = ["run", "shop", "--workers", "3", "--reload", "--burst", "--workers=2"]
    assert _worker_argv(argv) == ["run", "shop", "--burst", "--workers", "1"]


RELOADED_MODULE = """\
import os

import anyio

from aiosqsworker import Message, consumer

VERSION = "{version}"
_LEDGER = os.open(os.environ["RELOAD_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)


@consumer(os.environ["RELOAD_QUEUE"], concurrency=2, prefetch=4, wait_time=1)
async def handle(message: Message) -> None:
    os.write(_LEDGER, f"{{os.getpid()}} start {{message.message_id}} {{VERSION}}\\n".encode())
    await anyio.sleep(0.4)
    os.write(_LEDGER, f"{{os.getpid()}} done {{message.message_id}} {{VERSION}}\\n".encode())
"""


@asynccontextmanager
async def reloading_worker(
    module: Path, env: Mapping[str, str], log: Path
) -> AsyncIterator[Process]:
    with log.open("wb") as log_file:
        process = await anyio.open_process(
            [sys.executable, "-m", "aiosqsworker", module.stem, "--reload",
             "--shutdown-timeout", "20"],
            cwd=module.parent, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=log_file,
            start_new_session=True,  # its own group: Ctrl-C is sent to it, as a terminal does
        )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        await process.aclose()


@pytest.mark.slow
async def test_a_reload_restarts_the_worker_without_hiding_a_message(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """The module changes while handlers run and messages wait in the buffer: the old worker
    drains, the new one (the new code) takes the rest, and the queue empties long before
    the 60 s visibility timeout.

    Catches: a reload that kills the worker (what it held would stay invisible for 60 s,
    and the handlers it cut short would run twice), or one that starts the new worker before
    the old one has let its messages go.
    """
    queue = await sqs.create_queue(visibility_timeout=60)
    ids = set(await sqs.send(queue, (str(n) for n in range(16))))
    module = tmp_path / "reloaded_service.py"
    module.write_text(RELOADED_MODULE.format(version="v1"))
    ledger, log = tmp_path / "ledger", tmp_path / "stderr"
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_SQS": sqs_server.endpoint_url,
        "AWS_REGION": REGION,
        "RELOAD_QUEUE": queue.name,
        "RELOAD_LEDGER": str(ledger),
        "PYTHONDONTWRITEBYTECODE": "1",  # the edit keeps the size: no stale bytecode
        "PYTHONPATH": str(REPO),
    }
    async with reloading_worker(module, env, log) as worker:
        await eventually(
            lambda: len(ids_of(read_ledger(ledger), "done")) >= 2,
            within=30,
            what="the first version handling messages",
        )
        module.write_text(RELOADED_MODULE.format(version="v2"))
        await eventually(
            lambda: set(ids_of(read_ledger(ledger), "done")) >= ids,
            within=40,
            what=f"every message handled; the log:\n{log.read_text()[-2000:]}",
        )
        os.killpg(worker.pid, signal.SIGINT)  # Ctrl-C in the terminal
        with anyio.fail_after(20):
            code = await worker.wait()

    text = log.read_text()
    assert code == 0, text[-2000:]
    events = read_ledger(ledger)
    started, done = ids_of(events, "start"), ids_of(events, "done")
    assert started == done, "a handler was cut short"
    assert set(done) == ids
    assert all(count == 1 for count in done.values()), "a message was handled twice"
    versions = {event.label for event in events if event.kind == "done"}
    assert versions == {"v1", "v2"}
    assert len({event.pid for event in events}) == 2
    assert "restarting the workers gracefully" in text
    assert "forcing" not in text
    assert await sqs.counts(queue) == (0, 0)


IDLE_MODULE = """\
import os

from aiosqsworker import Message, consumer

VERSION = "{version}"


@consumer(os.environ["RELOAD_QUEUE"])  # the default wait_time: 20 s
async def handle(message: Message) -> None:
    pass
"""


@pytest.mark.slow
async def test_a_reload_of_an_idle_worker_restarts_it_in_about_a_second(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """Naive code it catches: a reload whose graceful stop waits for the idle worker's open
    20 s long poll (each restart took 15 to 17 s). The log names the file that changed."""
    queue = await sqs.create_queue(visibility_timeout=60)
    module = tmp_path / "idle_service.py"
    module.write_text(IDLE_MODULE.format(version="v1"))
    log = tmp_path / "stderr"
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_SQS": sqs_server.endpoint_url,
        "AWS_REGION": REGION,
        "RELOAD_QUEUE": queue.name,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(REPO),
    }

    def started() -> int:
        return log.read_text().count("worker started:")

    async with reloading_worker(module, env, log) as worker:
        await eventually(lambda: started() == 1, within=30, what="the first worker started")
        await anyio.sleep(2)  # idle, its long poll open
        module.write_text(IDLE_MODULE.format(version="v2"))
        edited_at = anyio.current_time()
        await eventually(
            lambda: started() == 2,
            within=30,
            what=f"the worker restarted; the log:\n{log.read_text()[-2000:]}",
        )
        restarted_in = anyio.current_time() - edited_at
        os.killpg(worker.pid, signal.SIGINT)
        with anyio.fail_after(20):
            code = await worker.wait()
    text = log.read_text()
    assert code == 0, text[-2000:]
    # The file watcher's debounce, the stop, and a new interpreter's imports and start.
    assert restarted_in < 4, f"the reload took {restarted_in:.1f} s:\n{text[-2000:]}"
    assert "changed: idle_service.py; restarting the workers gracefully" in text, text[-2000:]
    assert "worker 0 restarted with the new code in" in text, text[-2000:]


async def test_burst_under_workers_ends_when_every_worker_found_the_queues_empty(
    sqs: SQSKit, sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """Catches: a supervisor that restarts a worker whose burst ended (exit 0), which would
    run forever instead of exiting once the queue is drained."""
    queue = await sqs.create_queue()
    ids = set(await sqs.send(queue, (str(n) for n in range(20))))
    ledger = tmp_path / "ledger"
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_SQS": sqs_server.endpoint_url,
        "AWS_REGION": REGION,
        "OPS_QUEUE": queue.name,
        "OPS_LEDGER": str(ledger),
        "OPS_JOB_SECONDS": "0.05",
    }
    with anyio.fail_after(60):
        result = await anyio.run_process(
            [sys.executable, "-m", "aiosqsworker", "tests.apps.ops_service", "--workers", "2",
             "--burst"],
            cwd=REPO, env=env, check=False,
        )  # fmt: skip
    log = result.stderr.decode()
    assert result.returncode == 0, log[-3000:]
    assert log.count("finished: its queues are empty") == 2, log[-3000:]
    assert "died unexpectedly" not in log
    handled = [line.split()[1] for line in ledger.read_text().splitlines()]
    assert set(handled) == ids
    assert await sqs.counts(queue) == (0, 0)
