"""The operator's tools: send, stats, dlq inspect, dlq redrive, against a real local server."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from aiosqsworker import App, Message, Reject
from aiosqsworker._cli import tools as admin
from aiosqsworker._cli.main import main as cli_main
from aiosqsworker._cli.tools import _common as tools_common
from aiosqsworker._consumer.deadletter import dead_letter_attributes, failure_record
from aiosqsworker._errors import ConfigurationError
from aiosqsworker._producer import MAX_MESSAGE_BYTES
from aiosqsworker._sqs.redrive import FAILURE_ATTRIBUTE
from aiosqsworker.testing import LocalSQSServer, make_message, run_until_empty

from .kit import REGION, Queue, SQSKit
from .servers import server_kind

REPO = Path(__file__).resolve().parent.parent


# --- pure helpers ------------------------------------------------------------------------


def test_attributes_parse_with_their_types() -> None:
    assert admin.parse_attribute("source=web=1") == (
        "source",
        {"DataType": "String", "StringValue": "web=1"},
    )
    assert admin.parse_attribute("priority:Number=-1.5e3") == (
        "priority",
        {"DataType": "Number", "StringValue": "-1.5e3"},
    )
    assert admin.parse_attribute("n:Number.int=42")[1]["DataType"] == "Number.int"
    assert admin.parse_attribute("blob:Binary=aGk=") == (
        "blob",
        {"DataType": "Binary", "BinaryValue": b"hi"},
    )


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("novalue", "malformed"),
        ("=x", "malformed"),
        ("bad name=x", "not a valid attribute name"),
        ("AWS.thing=x", "reserved"),
        ("a..b=x", "'..'"),
        ("n:Integer=1", "not String, Number or Binary"),
        ("n:Number.=1", "not String, Number or Binary"),
        ("n=", "empty value"),
        ("n:Number=12abc", "not a number"),
        ("n:Number=nan", "not a number"),
        ("b:Binary=***", "base64"),
    ],
)
def test_malformed_attributes_are_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(ConfigurationError, match=why):
        admin.parse_attribute(text)


def test_attributes_are_unique_and_at_most_ten() -> None:
    one = admin.parse_attribute("a=1")
    with pytest.raises(ConfigurationError, match="given twice"):
        admin.collect_attributes([one, one])
    many = [admin.parse_attribute(f"a{i}=1") for i in range(11)]
    with pytest.raises(ConfigurationError, match="at most 10"):
        admin.collect_attributes(many)
    assert len(admin.collect_attributes(many[:10])) == 10


def test_body_problems_name_what_sqs_would_refuse() -> None:
    attributes = {"source": {"DataType": "String", "StringValue": "web"}}
    assert admin.body_problem('{"id": 1}', attributes, 1024) is None
    assert "empty" in (admin.body_problem("", {}, 1024) or "")
    assert "U+0000 at position 3" in (admin.body_problem("ab\x00", {}, 1024) or "")
    # The limit counts the attributes too: 1015 + len("source") + len("String") + len("web").
    assert admin.body_problem("x" * 1009, attributes, 1024) is None
    assert "1025 bytes" in (admin.body_problem("x" * 1010, attributes, 1024) or "")
    assert admin.body_problem("é", {}, 2) is None
    assert admin.body_problem("é", {}, 1) is not None  # bytes, not characters


def test_lines_are_numbered_across_pieces_and_line_endings() -> None:
    splitter = admin.LineSplitter(limit=100)
    assert splitter.feed(b'{"a": 1}\r\n\n{"b"') == [(1, b'{"a": 1}'), (2, b"")]
    assert splitter.feed(b": 2}\nlast") == [(3, b'{"b": 2}')]
    assert splitter.finish() == [(4, b"last")]
    assert splitter.finish() == []
    reader = admin.LineReader(io.BytesIO(b"\xef\xbb\xbfone\n\ntwo\n"), 100, chunk_size=3)
    chunks = []
    while (chunk := reader.read_chunk()) is not None:
        chunks.extend(chunk)
    assert chunks == [("line 1", "one"), ("line 3", "two")]


def test_a_line_past_the_limit_or_not_utf8_is_refused_by_number() -> None:
    splitter = admin.LineSplitter(limit=10)
    splitter.feed(b"ok\n")
    with pytest.raises(ConfigurationError, match="line 2: over 10 bytes"):
        splitter.feed(b"x" * 12)  # refused before the line ends
    with pytest.raises(ConfigurationError, match="line 7: not UTF-8"):
        admin.decode_line(7, b"caf\xe9")


def test_send_options_follow_the_queue_kind() -> None:
    def target(fifo: bool, content_dedup: bool = False) -> admin.SendTarget:
        return admin.SendTarget("u", "q", fifo, content_dedup, 1024)

    def problem(t: admin.SendTarget, **options: Any) -> str | None:
        values = {"group_id": None, "deduplication_id": None, "delay": 0, **options}
        return admin.send_options_problem(t, **values)

    assert problem(target(False)) is None
    assert "FIFO queues" in (problem(target(False), deduplication_id="d") or "")
    assert "--group-id" in (problem(target(True)) or "")
    assert "ContentBasedDeduplication" in (problem(target(True), group_id="g") or "")
    assert problem(target(True), group_id="g", deduplication_id="d") is None
    assert problem(target(True, True), group_id="g") is None
    assert "--delay" in (problem(target(True, True), group_id="g", delay=5) or "")


def test_progress_prints_every_n_messages_and_at_the_end() -> None:
    out = io.StringIO()
    now = [0.0]
    progress = admin.Progress("sent", stream=out, every=10, clock=lambda: now[0])
    for _ in range(25):
        now[0] += 0.1
        progress.add()
    progress.finish()
    assert out.getvalue().splitlines() == [
        "sent 10 messages in 1.0 s (10 msg/s)",
        "sent 20 messages in 2.0 s (10 msg/s)",
        "sent 25 messages in 2.5 s (10 msg/s)",
    ]
    quiet = io.StringIO()
    small = admin.Progress("sent", stream=quiet, every=10)
    small.add(3)
    small.finish()
    assert quiet.getvalue() == ""  # small inputs: no progress lines


def test_stats_table_aligns_columns_and_marks_what_is_missing() -> None:
    policy = json.dumps(
        {
            "deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:orders-dlq",
            "maxReceiveCount": 5,
        }
    )
    orders = admin.queue_stats(
        "orders",
        {
            "ApproximateNumberOfMessages": "1200",
            "ApproximateNumberOfMessagesNotVisible": "7",
            "ApproximateNumberOfMessagesDelayed": "0",
            "VisibilityTimeout": "30",
            "RedrivePolicy": policy,
        },
        {"ApproximateNumberOfMessages": "3", "ApproximateNumberOfMessagesNotVisible": "1"},
    )
    assert (orders.dead_letter_queue, orders.dead_letter_depth, orders.max_receive_count) == (
        "orders-dlq",
        4,
        5,
    )
    gone = admin.queue_stats("gone-dlq-source", {"RedrivePolicy": policy})
    plain = admin.queue_stats("plain", {"VisibilityTimeout": "45"})
    lines = admin.format_stats_table([orders, gone, plain]).splitlines()
    assert lines[0].startswith("QUEUE            VISIBLE  IN FLIGHT")
    assert lines[1].split() == ["orders", "1200", "7", "0", "orders-dlq", "4", "5", "30s"]
    assert lines[2].split() == ["gone-dlq-source", "0", "0", "0", "orders-dlq", "missing", "5", "-"]
    assert lines[3].split() == ["plain", "0", "0", "0", "-", "-", "-", "45s"]
    assert len({len(line) for line in lines[:2]}) == 1  # numbers right-aligned to the header


def _dead_letter(body: str, *, source_queue: str, **attributes: object) -> dict[str, Any]:
    """A dead letter as ReceiveMessage returns it, with the framework's failure record."""
    message = make_message(body, message_attributes=attributes or None, queue=source_queue)
    try:
        raise ValueError("no such customer")
    except ValueError as error:
        record = failure_record(message, error, consumer="orders", reason="rejected")
    return {
        "MessageId": "m-1",
        "ReceiptHandle": "r-1",
        "Body": body,
        "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1700000000000"},
        "MessageAttributes": dead_letter_attributes(message, record),
    }


def test_a_peeked_message_shows_its_failure_record_and_a_cut_body() -> None:
    raw = _dead_letter("x" * 400 + "\nend", source_queue="https://sqs/1/orders", source="web")
    text = admin.format_peeked(raw)
    assert text.startswith("message m-1\n")
    assert "receive count" in text
    assert "2 (this peek included)" in text
    assert "2023-11-14T22:13:20+00:00" in text
    assert "attribute source" in text
    assert "failure.exception" in text
    assert "builtins.ValueError" in text
    assert "failure.error" in text
    assert "no such customer" in text
    assert "failure.source_queue" in text
    assert "(404 characters, --full shows all)" in text
    assert "\nend" not in text
    full = admin.format_peeked(raw, full=True)
    assert full.endswith("x" * 400 + "\nend")
    no_record = admin.format_peeked({"MessageId": "m-2", "ReceiptHandle": "r", "Body": "b"})
    assert "no aiosqsworker.failure record" in no_record


def test_redrive_decides_by_filter_and_origin_and_drops_the_failure_record() -> None:
    raw = _dead_letter('{"customer": 42}', source_queue="https://sqs/1/orders", source="web")
    decide = admin.redrive_decision
    assert decide(raw, text_filter=None, destination="orders") == "move"
    assert decide(raw, text_filter='"customer": 42', destination="orders") == "move"
    assert decide(raw, text_filter='"customer": 7', destination="orders") == "filtered"
    assert decide(raw, text_filter=None, destination="payments") == "other-queue"
    assert decide(raw, text_filter=None, destination=None) == "move"  # --to
    arn = {**raw, "Attributes": {"DeadLetterQueueSourceArn": "arn:aws:sqs:r:1:payments"}}
    assert decide(arn, text_filter=None, destination="payments") == "move"
    entry = admin.redrive_entry(raw, fifo=False, token="t")
    assert entry.body == '{"customer": 42}'
    assert entry.attributes == {"source": {"DataType": "String", "StringValue": "web"}}
    assert (entry.group_id, entry.deduplication_id) == (None, None)
    grouped = {**raw, "Attributes": {"MessageGroupId": "g7"}}
    fifo = admin.redrive_entry(grouped, fifo=True, token="t")
    assert (fifo.group_id, fifo.deduplication_id) == ("g7", "redrive-t-m-1")


def test_batch_waves_follow_sqs_batch_limits() -> None:
    assert admin.batch_waves([1] * 23) == [list(range(10)), list(range(10, 20)), [20, 21, 22]]
    half = MAX_MESSAGE_BYTES // 2
    assert admin.batch_waves([half, half, 1, half]) == [[0, 1], [2, 3]]


# --- end to end ----------------------------------------------------------------------------


def _env(server: LocalSQSServer) -> dict[str, str]:
    return {**os.environ, "AWS_ENDPOINT_URL_SQS": server.endpoint_url, "AWS_REGION": REGION}


async def _cli(server: LocalSQSServer, *argv: str) -> int:
    """The CLI in this process (its own event loop, in a thread)."""
    args = [*argv, "--endpoint-url", server.endpoint_url, "--region", REGION]
    return await anyio.to_thread.run_sync(cli_main, args)


async def _receive_all(sqs: SQSKit, queue: Queue) -> list[dict[str, Any]]:
    """Every message of `queue`, deleted as received (so FIFO groups keep coming), in order."""
    received: list[dict[str, Any]] = []
    while True:
        response = await sqs.client.receive_message(
            QueueUrl=queue.url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return received
        received.extend(messages)
        await sqs.client.delete_message_batch(
            QueueUrl=queue.url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )


async def test_send_reads_stdin_lines_in_a_subprocess(
    sqs: SQSKit, sqs_server: LocalSQSServer
) -> None:
    queue = await sqs.create_queue()
    lines = [json.dumps({"n": n, "text": "é"}) for n in range(25)]
    stdin = ("\n".join(lines[:10]) + "\n\n" + "\r\n".join(lines[10:])).encode()
    result = await anyio.run_process(
        [sys.executable, "-m", "aiosqsworker", "send", queue.name, "-",
         "--attribute", "source=cli", "--attribute", "priority:Number=5"],
        input=stdin, env=_env(sqs_server), cwd=REPO, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == f"sent 25 messages to {queue.name}"
    received = await _receive_all(sqs, queue)
    assert sorted(json.loads(m["Body"])["n"] for m in received) == list(range(25))
    assert {m["Body"] for m in received} == set(lines)  # JSON lines stay JSON text
    assert received[0]["MessageAttributes"] == {
        "source": {"StringValue": "cli", "DataType": "String"},
        "priority": {"StringValue": "5", "DataType": "Number"},
    }


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
async def test_send_from_stdin_stops_at_an_oversized_line_and_says_what_was_sent(
    sqs: SQSKit, sqs_server: LocalSQSServer, fifo: bool
) -> None:
    attributes = {"MaximumMessageSize": "1024"}
    if fifo:
        attributes |= {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    name = sqs.unique_name() + (".fifo" if fifo else "")
    url = (await sqs.client.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"]
    queue = Queue(name, url)
    stdin = b"one\ntwo\n" + b"x" * 2000 + b"\nfour\n"
    result = await anyio.run_process(
        [sys.executable, "-m", "aiosqsworker", "send", queue.name, "--file", "-",
         *(["--group-id", "g"] if fifo else [])],
        input=stdin, env=_env(sqs_server), cwd=REPO, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    error = result.stderr.decode()
    assert "line 3: " in error, error
    assert "limit of 1024 bytes" in error
    assert "sent: the 2 messages before it" in error
    assert await sqs.counts(queue) == (2, 0)


async def test_send_a_file_with_progress_then_bad_inputs(
    sqs: SQSKit,
    sqs_server: LocalSQSServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    queue = await sqs.create_queue(attributes={"MaximumMessageSize": "1024"})
    good = tmp_path / "good.jsonl"
    good.write_text("".join(f'{{"n": {n}}}\n' for n in range(25)))
    monkeypatch.setattr(tools_common, "PROGRESS_EVERY", 10)
    assert await _cli(sqs_server, "send", queue.name, "--file", str(good)) == 0
    captured = capsys.readouterr()
    assert captured.out == f"sent 25 messages to {queue.name}\n"
    progress = [line for line in captured.err.splitlines() if line.startswith("sent ")]
    assert [line.split(" in ")[0] for line in progress] == [
        "sent 10 messages",
        "sent 20 messages",
        "sent 25 messages",
    ]
    assert all(line.endswith("msg/s)") for line in progress)
    assert await sqs.counts(queue) == (25, 0)

    # A file is checked whole first: a line over the queue's limit sends nothing.
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"n": 1}\n{"n": 2}\n' + '"' + "x" * 1100 + '"\n{"n": 4}\n')
    assert await _cli(sqs_server, "send", queue.name, "--file", str(bad)) == 1
    error = capsys.readouterr().err
    assert "line 3: message of 1102 bytes" in error, error
    assert "nothing was sent" in error
    assert await sqs.counts(queue) == (25, 0)

    assert await _cli(sqs_server, "send", f"{queue.name}-missing", "x") == 1
    assert "does not exist" in capsys.readouterr().err
    assert await _cli(sqs_server, "send", queue.name, "--file", str(tmp_path / "none")) == 1
    assert "--file" in capsys.readouterr().err
    assert await _cli(sqs_server, "send", queue.name, "x", "--dedup-id", "d") == 1
    assert "standard queue" in capsys.readouterr().err
    assert await _cli(sqs_server, "send", queue.name) == 1
    assert "nothing to send" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["send", queue.name, "x", "--attribute", "no-equals-sign"])
    assert exit_info.value.code == 2
    assert "'no-equals-sign' is malformed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["send", queue.name, "x", "--delay", "901"])
    assert "0 to 900" in capsys.readouterr().err
    assert await sqs.counts(queue) == (25, 0)


async def test_send_to_a_fifo_queue_keeps_the_order_and_checks_its_options(
    sqs: SQSKit, sqs_server: LocalSQSServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    name = sqs.unique_name("fifo") + ".fifo"
    url = (await sqs.client.create_queue(QueueName=name, Attributes=fifo))["QueueUrl"]
    queue = Queue(name, url)
    lines = tmp_path / "lines"
    lines.write_text("".join(f"message {n}\n" for n in range(25)))
    assert await _cli(sqs_server, "send", name, "--file", str(lines), "--group-id", "g") == 0
    received = await _receive_all(sqs, queue)
    assert [m["Body"] for m in received] == [f"message {n}" for n in range(25)]
    assert {m["Attributes"]["MessageGroupId"] for m in received} == {"g"}

    assert await _cli(sqs_server, "send", name, "x") == 1
    assert "give --group-id" in capsys.readouterr().err
    assert await _cli(sqs_server, "send", name, "x", "--group-id", "g", "--delay", "5") == 1
    assert "--delay" in capsys.readouterr().err
    assert await _cli(sqs_server, "send", name, "a", "b", "--group-id", "g", "--dedup-id", "d") == 1
    assert "single message" in capsys.readouterr().err
    strict = sqs.unique_name("strict") + ".fifo"
    await sqs.client.create_queue(QueueName=strict, Attributes={"FifoQueue": "true"})
    assert await _cli(sqs_server, "send", strict, "a", "b", "--group-id", "g") == 1
    assert "without ContentBasedDeduplication" in capsys.readouterr().err
    assert await _cli(sqs_server, "send", strict, "a", "--group-id", "g", "--dedup-id", "d") == 0
    assert "sent 1 message to" in capsys.readouterr().out
    assert await sqs.counts(queue) == (0, 0)


async def test_options_go_anywhere_among_the_bodies(
    sqs: SQSKit, sqs_server: LocalSQSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Catches plain argparse, which refuses `send QUEUE --group-id G BODY` ("unrecognized
    arguments: BODY"): a list of positionals interrupted by an option is not taken up again."""
    fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    name = sqs.unique_name("anywhere") + ".fifo"
    url = (await sqs.client.create_queue(QueueName=name, Attributes=fifo))["QueueUrl"]
    assert await _cli(sqs_server, "send", name, "--group-id", "g", "first", "second") == 0
    assert await _cli(sqs_server, "send", name, "third", "--group-id", "g", "fourth") == 0
    assert "sent 2 messages to" in capsys.readouterr().out
    received = await _receive_all(sqs, Queue(name, url))
    assert [m["Body"] for m in received] == ["first", "second", "third", "fourth"]
    assert await _cli(sqs_server, "stats", name, "--json", name) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


async def test_stats_shows_counts_and_the_dead_letter_queue(
    sqs: SQSKit, sqs_server: LocalSQSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = await sqs.create_queue(visibility_timeout=45, max_receive_count=4)
    dlq = await sqs.dlq_of(queue)
    await sqs.send(queue, ["a", "b", "c"])
    await sqs.send(dlq, ["dead"])
    await sqs.client.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=1)
    assert await _cli(sqs_server, "send", queue.name, "later", "--delay", "60") == 0
    capsys.readouterr()
    plain = await sqs.create_queue("plain")
    assert await _cli(sqs_server, "stats", queue.name, plain.url, "--json") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["queue"] for row in rows] == [queue.name, plain.name]
    first = {key: value for key, value in rows[0].items() if key != "time"}
    assert first == {
        "queue": queue.name,
        "visible": 2,
        "in_flight": 1,
        "delayed": 1,
        "visibility_timeout": 45,
        "dead_letter_queue": dlq.name,
        "dead_letter_depth": 1,
        "max_receive_count": 4,
    }
    assert rows[1]["dead_letter_queue"] is None

    assert await _cli(sqs_server, "stats", queue.name) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == [
        "QUEUE", "VISIBLE", "IN", "FLIGHT", "DELAYED", "DLQ", "DLQ", "DEPTH", "MAX",
        "RECEIVES", "VISIBILITY",
    ]  # fmt: skip
    assert table[1].split() == [queue.name, "2", "1", "1", dlq.name, "1", "4", "45s"]

    await sqs.client.delete_queue(QueueUrl=dlq.url)
    assert await _cli(sqs_server, "stats", queue.name) == 0
    assert "missing" in capsys.readouterr().out
    assert await _cli(sqs_server, "stats", queue.name, "no-such-queue-here") == 1
    assert "'no-such-queue-here' does not exist" in capsys.readouterr().err


async def test_stats_watch_refreshes_until_interrupted(
    sqs: SQSKit, sqs_server: LocalSQSServer
) -> None:
    queue = await sqs.create_queue()
    process = await anyio.open_process(
        [sys.executable, "-m", "aiosqsworker", "stats", queue.name, "--watch", "0.2"],
        env=_env(sqs_server), cwd=REPO, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    output = b""
    try:
        assert process.stdout is not None
        with anyio.fail_after(20):
            while output.count(b"QUEUE") < 2:
                output += await process.stdout.receive()
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()
    assert code == 130
    assert b"every 0.2 s, Ctrl-C stops" in output
    assert output.count(queue.name.encode()) >= 2


async def test_inspect_and_redrive_what_a_rejecting_consumer_dead_lettered(
    sqs: SQSKit,
    sqs_server: LocalSQSServer,
    make_app: Callable[..., App],
    capsys: pytest.CaptureFixture[str],
) -> None:
    queue = await sqs.create_queue(max_receive_count=5)
    dlq = await sqs.dlq_of(queue)
    bodies = [json.dumps({"n": n}) for n in range(6)]
    assert await _cli(sqs_server, "send", queue.name, *bodies, "--attribute", "origin=test") == 0
    app = make_app()

    @app.consumer(queue.name, wait_time=1)
    async def refuse(message: Message) -> None:
        raise Reject("not today")

    await run_until_empty(app)
    assert await sqs.counts(dlq) == (6, 0)
    capsys.readouterr()

    # inspect: the failure record is shown, nothing is consumed.
    assert await _cli(sqs_server, "dlq", "inspect", queue.name, "--max", "4") == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{dlq.name}: 4 messages shown, of about 6 visible")
    assert out.count("\nmessage ") == 4
    assert "failure.exception" in out
    assert "Reject" in out
    assert "not today" in out
    assert "attribute origin" in out
    assert await sqs.counts(dlq) == (6, 0)  # visible again at once

    # A dry run moves nothing and leaves everything visible.
    argv = ["dlq", "redrive", queue.name, "--filter", '"n": 1', "--dry-run"]
    assert await _cli(sqs_server, *argv) == 0
    out = capsys.readouterr().out
    assert out.count("would move ") == 2  # one message line, one summary line
    assert "would move 1 message from" in out
    assert "5 not matching --filter" in out
    assert await sqs.counts(dlq) == (6, 0)
    assert await sqs.counts(queue) == (0, 0)

    assert await _cli(sqs_server, "dlq", "redrive", queue.name, "--filter", '"n": 1') == 0
    assert "moved 1 message from" in capsys.readouterr().out
    assert await sqs.counts(dlq) == (5, 0)
    (moved,) = await _receive_all(sqs, queue)
    assert moved["Body"] == '{"n": 1}'
    assert set(moved["MessageAttributes"]) == {"origin"}  # the failure record is dropped

    assert await _cli(sqs_server, "dlq", "redrive", queue.name, "--max", "2") == 0
    assert "stopped at --max 2" in capsys.readouterr().out
    assert await sqs.counts(dlq) == (3, 0)
    # The DLQ named itself: its source is found by ListDeadLetterSourceQueues, which
    # ministack does not implement (it is then told with --to).
    to = ["--to", queue.name] if server_kind() == "ministack" else []
    assert await _cli(sqs_server, "dlq", "redrive", dlq.name, *to) == 0
    assert "moved 3 messages" in capsys.readouterr().out
    assert await sqs.counts(dlq) == (0, 0)
    rest = await _receive_all(sqs, queue)
    assert sorted(m["Body"] for m in rest) == sorted(set(bodies) - {'{"n": 1}'})


async def test_fifo_redrive_keeps_groups_and_leaves_other_queues_letters(
    sqs: SQSKit, sqs_server: LocalSQSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    base = sqs.unique_name("fifo")
    dlq_url = (await sqs.client.create_queue(QueueName=f"{base}-dlq.fifo", Attributes=fifo))[
        "QueueUrl"
    ]
    arn = (await sqs.client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"]))[
        "Attributes"
    ]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "3"})
    source = Queue(
        f"{base}.fifo",
        (
            await sqs.client.create_queue(
                QueueName=f"{base}.fifo", Attributes={**fifo, "RedrivePolicy": policy}
            )
        )["QueueUrl"],
    )
    letters = [("g1", "a1", source.url), ("g2", "b1", source.url), ("g1", "a2", source.url),
               ("g3", "other", "http://127.0.0.1/1/payments.fifo")]  # fmt: skip
    for group, body, origin in letters:
        raw = _dead_letter(body, source_queue=origin, tenant="t")
        await sqs.client.send_message(
            QueueUrl=dlq_url,
            MessageBody=body,
            MessageGroupId=group,
            MessageAttributes=raw["MessageAttributes"],
        )

    assert await _cli(sqs_server, "dlq", "inspect", f"{base}-dlq.fifo", "--json", "--max", "2") == 0
    captured = capsys.readouterr()
    assert "has no RedrivePolicy: inspecting it as a dead-letter queue" in captured.err
    peeked = [json.loads(line) for line in captured.out.splitlines()]
    assert len(peeked) == 2
    assert {p["body"] for p in peeked} <= {"a1", "b1", "a2", "other"}
    assert peeked[0]["failure"]["exception"] == "builtins.ValueError"
    assert peeked[0]["attributes"] == {"tenant": "t"}

    assert await _cli(sqs_server, "dlq", "redrive", source.name) == 0
    out = capsys.readouterr().out
    assert "moved 3 messages" in out
    assert "1 dead-lettered from other queues" in out
    received = await _receive_all(sqs, source)
    by_group: dict[str, list[str]] = {}
    for message in received:
        by_group.setdefault(message["Attributes"]["MessageGroupId"], []).append(message["Body"])
        assert FAILURE_ATTRIBUTE not in message["MessageAttributes"]
    assert by_group == {"g1": ["a1", "a2"], "g2": ["b1"]}

    assert await _cli(sqs_server, "dlq", "redrive", source.name, "--to", source.url) == 0
    assert "moved 1 message" in capsys.readouterr().out
    (other,) = await _receive_all(sqs, source)
    assert (other["Body"], other["Attributes"]["MessageGroupId"]) == ("other", "g3")


async def test_dlq_commands_refuse_queues_they_cannot_work_with(
    sqs: SQSKit, sqs_server: LocalSQSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _cli(sqs_server, "dlq", "inspect", "no-such-queue-here") == 1
    assert "'no-such-queue-here' does not exist" in capsys.readouterr().err
    plain = await sqs.create_queue("plain")
    assert await _cli(sqs_server, "dlq", "redrive", plain.name) == 1
    error = capsys.readouterr().err
    assert "has no RedrivePolicy" in error
    assert "give --to QUEUE" in error
    assert await _cli(sqs_server, "dlq", "redrive", plain.name, "--to", plain.name) == 1
    assert "into itself" in capsys.readouterr().err
    orphan = await sqs.create_queue("orphan", max_receive_count=3)
    await sqs.client.delete_queue(QueueUrl=(await sqs.dlq_of(orphan)).url)
    assert await _cli(sqs_server, "dlq", "inspect", orphan.name) == 1
    assert "the dead-letter queue of" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["dlq", "inspect", plain.name, "--max", "0"])
    assert "1 or more" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["dlq"])
    assert "ACTION" in capsys.readouterr().err


def test_every_command_has_help_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["send"], ["stats"], ["dlq", "inspect"], ["dlq", "redrive"]):
        with pytest.raises(SystemExit) as exit_info:
            cli_main([*argv, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert f"usage: python -m aiosqsworker {' '.join(argv)} " in out
        assert "examples:" in out
        assert "--endpoint-url" in out
    with pytest.raises(SystemExit):
        cli_main(["stats", "--help"])
    assert "ApproximateAgeOfOldestMessage" in capsys.readouterr().out


def test_lines_before_an_oversized_line_in_the_same_read_are_still_handed_out() -> None:
    from aiosqsworker._cli.tools.lines import LineSplitter

    splitter = LineSplitter(limit=1024)
    assert splitter.feed(b"one\ntwo\n" + b"x" * 70_000) == [(1, b"one"), (2, b"two")]
    with pytest.raises(ConfigurationError, match="line 3: over 1024 bytes"):
        splitter.feed(b"more")
