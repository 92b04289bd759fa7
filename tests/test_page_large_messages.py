"""Large messages through S3, interoperable with AWS's own extended client: what the page
`docs/large-messages.md` documents.

S3 and SQS are one moto server; the other side is AWS's ``amazon-sqs-extended-client`` in a
process of its own (`tests/extended_peer.py`). What it sends reaches handlers whole; what the
framework sends over a queue's limit it reads whole. Around them: size limits, a missing
object, dead-letter copies that keep their pointer, redrive, and deleting payloads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiobotocore.session import get_session

from aiosqsworker import (
    App,
    ConfigurationError,
    Message,
    PayloadNotFoundError,
    Producer,
    Reject,
)
from aiosqsworker._cli.main import main as cli_main
from aiosqsworker._consumer.deadletter import dead_letter_entry, failure_record, trimmed_record
from aiosqsworker._sqs.base import message_size
from aiosqsworker._sqs.open import s3_endpoint_problem
from aiosqsworker._sqs.payloads import (
    LEGACY_POINTER_CLASS,
    POINTER_CLASS,
    S3Pointer,
    offload_decision,
    pointer_body,
    pointer_of,
)
from aiosqsworker.testing import LocalSQSServer, make_message, run_until_empty

from .kit import REGION, Queue, SQSKit, eventually, eventually_async

PEER = Path(__file__).resolve().parent / "extended_peer.py"
MIB = 1 << 20
SIZE = "ExtendedPayloadSize"


@dataclasses.dataclass
class Blob:
    id: int
    blob: str


def blob_body(n: int, size: int) -> str:
    """A JSON body of about `size` bytes whose content is random (a cut or a mix-up shows)."""
    return json.dumps({"id": n, "blob": os.urandom(size // 2).hex()})


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclasses.dataclass
class Bucket:
    name: str
    s3: Any

    async def keys(self) -> list[str]:
        response = await self.s3.list_objects_v2(Bucket=self.name)
        return [item["Key"] for item in response.get("Contents", [])]

    async def text(self, key: str) -> str:
        response = await self.s3.get_object(Bucket=self.name, Key=key)
        async with response["Body"] as stream:
            return bytes(await stream.read()).decode()


@asynccontextmanager
async def _bucket(endpoint: str, name: str) -> AsyncIterator[Bucket]:
    async with get_session().create_client("s3", region_name=REGION, endpoint_url=endpoint) as s3:
        await s3.create_bucket(Bucket=name)
        yield Bucket(name, s3)


@pytest.fixture
async def bucket(
    sqs_server: LocalSQSServer, sqs: SQSKit, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Bucket]:
    """A fresh bucket on the test server, which this test's S3 endpoint points at too."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", sqs_server.endpoint_url)
    name = sqs.unique_name("payloads").lower()[-60:].strip("-.")
    async with _bucket(sqs_server.endpoint_url, name) as made:
        yield made


async def aws_client(*argv: str) -> str:
    """Run AWS's extended client (see `tests/extended_peer.py`); its standard output."""
    result = await anyio.run_process([sys.executable, str(PEER), *argv], check=False)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    return result.stdout.decode()


async def aws_receive(endpoint: str, queue: Queue, into: Path, count: int) -> dict[str, str]:
    """What AWS's client reads from `queue`: body by MessageId (and it deletes them)."""
    await anyio.Path(into).mkdir(exist_ok=True)
    out = await aws_client("receive", endpoint, queue.url, str(into), "--count", str(count))
    ids = [json.loads(line)["message_id"] for line in out.splitlines()]
    return {message_id: await anyio.Path(into, message_id).read_text() for message_id in ids}


# --- the format, pure --------------------------------------------------------------------


def test_both_pointer_formats_are_read_and_the_current_one_is_written() -> None:
    size = {SIZE: {"DataType": "Number", "StringValue": "5"}}
    legacy_size = {"SQSLargePayloadSize": {"DataType": "Number", "StringValue": "5"}}
    current = pointer_body(S3Pointer("b", "k-1"))
    assert json.loads(current) == [POINTER_CLASS, {"s3BucketName": "b", "s3Key": "k-1"}]
    assert pointer_of(current, size) == S3Pointer("b", "k-1")
    legacy = json.dumps([LEGACY_POINTER_CLASS, {"s3BucketName": "b", "s3Key": "k-2"}])
    assert pointer_of(legacy, legacy_size) == S3Pointer("b", "k-2")
    # The attribute says it is a pointer, as in AWS's clients: a body alone does not.
    assert pointer_of(current, {}) is None
    with pytest.raises(ValueError, match="not an extended-client pointer"):
        pointer_of('{"s3Key": "k"}', size)


@pytest.mark.parametrize(
    ("size", "limit", "bucket", "always", "expected"),
    [
        (100, 262_144, None, False, "send"),
        (300_000, 262_144, None, False, "refuse"),
        (300_000, 262_144, "b", False, "offload"),
        (300_000, MIB, "b", False, "send"),
        (100, 262_144, "b", True, "offload"),
        (100, 262_144, None, True, "send"),  # always needs somewhere to put it
    ],
)
def test_a_send_goes_as_it_is_through_s3_or_not_at_all(
    size: int, limit: int, bucket: str | None, always: bool, expected: str
) -> None:
    assert offload_decision(size, limit, bucket=bucket, always=always) == expected


def test_a_dead_letter_entry_keeps_pointer_group_and_trace_header() -> None:
    pointer = pointer_body(S3Pointer("b", "k"))
    message = make_message(
        pointer,
        group_id="tenant-7",
        attributes={"AWSTraceHeader": "Root=1-5759e988-bd862e3fe1be46a994272793"},
        message_attributes={f"a{n}": n for n in range(9)} | {SIZE: 2 * MIB},
    )
    record = failure_record(message, ValueError("x"), consumer="c", reason="r")
    entry = dead_letter_entry(message, record, fifo=False)
    assert entry["MessageBody"] == pointer
    assert entry["MessageGroupId"] == "tenant-7"  # a fair queue's group
    assert "MessageDeduplicationId" not in entry
    assert SIZE in entry["MessageAttributes"], "the pointer's attribute was dropped for room"
    assert len(entry["MessageAttributes"]) == 10
    assert entry["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"].startswith("Root=")
    fifo = dead_letter_entry(make_message("x"), record, fifo=True)
    assert fifo["MessageGroupId"] == "dead-letters"


def test_a_record_is_cut_to_fit_and_says_so() -> None:
    message = make_message("x")
    record = failure_record(message, ValueError("e" * 1000), consumer="c", reason="r")
    cut = trimmed_record(record, 400, limit=1024)
    assert cut is not None
    assert len(json.dumps(cut).encode()) <= 400
    assert cut["exception"] == "builtins.ValueError"
    assert "1024" in cut["trimmed"]
    assert cut["error"].startswith("eee")
    assert trimmed_record(record, 50, limit=1024) is None


# --- AWS's client sends, the framework receives -----------------------------------------


@pytest.mark.parametrize(
    ("legacy", "size"), [(False, 2 * MIB), (True, 400_000)], ids=["current-2MiB", "legacy-400KB"]
)
async def test_what_awss_extended_client_sends_reaches_the_handler_whole(
    sqs: SQSKit,
    sqs_server: LocalSQSServer,
    bucket: Bucket,
    make_app: Callable[..., App],
    tmp_path: Path,
    legacy: bool,
    size: int,
) -> None:
    """A Java or Python producer on AWS's extended client, and a typed handler here.

    Naive code it catches: handing the handler the pointer's JSON; reading only the current
    format; leaving the reserved size attribute among the sender's own; a consumer that
    needs a bucket of its own to read a pointer (the pointer names it).
    """
    queue = await sqs.create_queue(visibility_timeout=10)
    body = blob_body(7, size)
    (tmp_path / "body").write_text(body)
    flags = ["--legacy"] if legacy else []
    endpoint = sqs_server.endpoint_url
    sent = (
        await aws_client("send", endpoint, queue.url, bucket.name, str(tmp_path / "body"), *flags)
    ).strip()
    assert len(await bucket.keys()) == 1, "AWS's client did not put the body in S3"
    seen: list[tuple[Blob, Message]] = []
    app = make_app()  # no payload_bucket: receiving needs none

    @app.consumer(queue.name, wait_time=1)
    async def handle(item: Blob, message: Message) -> None:
        seen.append((item, message))

    await run_until_empty(app, within=40)
    [(item, message)] = seen
    assert message.message_id == sent
    assert digest(message.body) == digest(body)
    assert item == Blob(**json.loads(body))
    assert set(message.message_attributes) == {"origin"}
    assert len(await bucket.keys()) == 1, "kept by default, as AWS's client does"


# --- the framework sends, AWS's client receives -----------------------------------------


async def test_app_send_over_a_256_kib_queues_limit_goes_through_s3_and_aws_reads_it(
    sqs: SQSKit,
    sqs_server: LocalSQSServer,
    bucket: Bucket,
    make_app: Callable[..., App],
    tmp_path: Path,
) -> None:
    """A queue still at the old 262,144-byte limit: the large body goes through S3 in the
    current format, the small one inline, and AWS's client reads both whole.

    Naive code it catches: checking sizes against SQS's 1 MiB instead of the queue's own
    limit (moto, like many IaC defaults, does not refuse); a pointer AWS's client cannot read.
    """
    queue = await sqs.create_queue(attributes={"MaximumMessageSize": "262144"})
    idle = await sqs.create_queue("idle")
    big = blob_body(1, 300_000)
    app = make_app(payload_bucket=bucket.name)

    @app.consumer(idle.name, wait_time=1)
    async def nothing(message: Message) -> None:
        pass

    async with app:
        big_id = await app.send(queue.name, big, attributes={"kind": "big"})
        small_id = await app.send(queue.name, "small", attributes={"kind": "small"})
    [key] = await bucket.keys()
    assert digest(await bucket.text(key)) == digest(big)
    read = await aws_receive(sqs_server.endpoint_url, queue, tmp_path / "read", count=2)
    assert read == {big_id: big, small_id: "small"}


async def test_size_limits_refuse_or_offload_before_anything_is_sent(
    sqs: SQSKit, sqs_server: LocalSQSServer, bucket: Bucket
) -> None:
    """Over the queue's MaximumMessageSize: refused with a sentence saying which limit and
    what to do, or sent through S3 when there is a bucket; always, when asked.

    Naive code it catches: an error that names SQS's 1 MiB for a 1 KiB queue; offloading a
    message with ten attributes (the pointer needs one); a send that half happened.
    """
    queue = await sqs.create_queue(attributes={"MaximumMessageSize": "1024"})
    endpoint = sqs_server.endpoint_url
    async with Producer(region=REGION, endpoint_url=endpoint) as producer:
        with pytest.raises(ConfigurationError) as info:
            await producer.send(queue.name, "x" * 2000)
        text = str(info.value)
        assert "2000 bytes" in text
        assert f"MaximumMessageSize of queue {queue.name} (1024 bytes" in text
        assert "payload_bucket" in text
        await producer.send(queue.name, "x" * 1000)
    async with Producer(
        region=REGION, endpoint_url=endpoint, payload_bucket=bucket.name, s3_endpoint_url=endpoint
    ) as producer:
        await producer.send(queue.name, "y" * 2000, attributes={"n": 1})
        with pytest.raises(ConfigurationError, match="at most 9"):
            await producer.send(queue.name, "z" * 2000, attributes={f"a{n}": n for n in range(10)})
        with pytest.raises(ConfigurationError, match="'ExtendedPayloadSize' is reserved"):
            await producer.send(queue.name, "z" * 2000, attributes={SIZE: 5})
    async with Producer(
        region=REGION,
        endpoint_url=endpoint,
        payload_bucket=bucket.name,
        s3_endpoint_url=endpoint,
        payload_offload="always",
    ) as producer:
        await producer.send(queue.name, "tiny")
    received = await sqs.drain_with_attributes(queue)
    inline = [m for m in received if SIZE not in m.get("MessageAttributes", {})]
    pointers = [m for m in received if SIZE in m.get("MessageAttributes", {})]
    assert [m["Body"] for m in inline] == ["x" * 1000]
    sizes = sorted(int(m["MessageAttributes"][SIZE]["StringValue"]) for m in pointers)
    assert sizes == [4, 2000]
    assert len(await bucket.keys()) == 2


# --- failures ----------------------------------------------------------------------------


async def test_a_missing_payload_fails_that_message_with_a_record_and_the_rest_flow(
    sqs: SQSKit, sqs_server: LocalSQSServer, bucket: Bucket, make_app: Callable[..., App]
) -> None:
    """One pointer whose object was deleted, among good ones.

    It is dead-lettered at once (no retry brings the object back) with a record naming the
    object, its copy keeps the pointer; the others are handled; the worker runs on.

    Naive code it catches: a fetch error that escapes the slot (crash), a message deleted
    because its body could not be had, a missing object retried maxReceiveCount times.
    """
    queue = await sqs.create_queue(max_receive_count=3, visibility_timeout=10)
    dlq = await sqs.dlq_of(queue)
    endpoint = sqs_server.endpoint_url
    options: dict[str, Any] = {"payload_bucket": bucket.name, "payload_offload": "always"}
    async with Producer(region=REGION, endpoint_url=endpoint, **options) as producer:
        lost_id = await producer.send(queue.name, {"n": 0})
        [lost_key] = await bucket.keys()
        await bucket.s3.delete_object(Bucket=bucket.name, Key=lost_key)
        for n in (1, 2):
            await producer.send(queue.name, {"n": n})
    handled: list[int] = []
    app = make_app()

    @app.consumer(queue.name, wait_time=1, retry_base_delay=0, retry_max_delay=0)
    async def handle(message: Message) -> None:
        handled.append(message.json()["n"])

    await run_until_empty(app, within=40)
    assert sorted(handled) == [1, 2]
    stats = app.statistics()["handle"]
    assert (stats.dead_lettered, stats.failed) == (1, 1)
    [dead] = await sqs.drain_with_attributes(dlq)
    assert pointer_of(dead["Body"], dead["MessageAttributes"]) == S3Pointer(bucket.name, lost_key)
    record = json.loads(dead["MessageAttributes"]["aiosqsworker.failure"]["StringValue"])
    assert record["exception"] == f"aiosqsworker.{PayloadNotFoundError.__name__}"
    assert record["reason"] == "its payload in S3 does not exist"
    assert record["attempts"] == 1
    assert record["message_id"] == lost_id
    assert f"s3://{bucket.name}/{lost_key}" in record["error"]
    assert "NoSuchKey" in record["error"]


async def _cli(server: LocalSQSServer, *argv: str) -> int:
    args = [*argv, "--endpoint-url", server.endpoint_url, "--region", REGION]
    return await anyio.to_thread.run_sync(cli_main, args)


async def test_a_dead_lettered_pointer_keeps_its_object_through_inspect_and_redrive(
    sqs: SQSKit,
    sqs_server: LocalSQSServer,
    bucket: Bucket,
    make_app: Callable[..., App],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Rejected, inspected, redriven, then handled: with ``delete_payloads=True`` the object
    survives the dead-lettering (the copy points to it) and goes once the message succeeds.

    Naive code it catches: deleting the object with every confirmed delete (the dead-letter
    original's too), inlining a large body into the copy, an inspect that shows only the
    pointer, a redrive that drops the size attribute (the pointer would reach a handler).
    """
    queue = await sqs.create_queue(max_receive_count=5, visibility_timeout=3)
    dlq = await sqs.dlq_of(queue)
    body = blob_body(3, 4000)
    endpoint = sqs_server.endpoint_url
    async with Producer(
        region=REGION, endpoint_url=endpoint, payload_bucket=bucket.name, payload_offload="always"
    ) as producer:
        await producer.send(queue.name, body, attributes={"origin": "test"})
    [key] = await bucket.keys()
    first = make_app(delete_payloads=True)

    @first.consumer(queue.name, wait_time=1)
    async def refuse(message: Message) -> None:
        assert message.body == body
        raise Reject("not today")

    await run_until_empty(first, within=30)
    assert await bucket.keys() == [key], "the dead letter's payload was deleted"
    capsys.readouterr()

    assert await _cli(sqs_server, "dlq", "inspect", queue.name, "--json") == 0
    [line] = capsys.readouterr().out.splitlines()
    shown = json.loads(line)
    location, size = f"s3://{bucket.name}/{key}", len(body.encode())
    assert shown["payload"] == {"location": location, "size": size, "error": None}
    assert shown["body"] == body
    assert shown["failure"]["reason"] == "not today"
    assert await _cli(sqs_server, "dlq", "inspect", queue.name) == 0
    human = capsys.readouterr().out
    assert f"{location} ({size} bytes)" in human
    assert body[:100] in human

    assert await _cli(sqs_server, "dlq", "redrive", queue.name, "--filter", '"id": 3') == 0
    assert "moved 1 message" in capsys.readouterr().out
    assert await sqs.counts(dlq) == (0, 0)
    handled: list[Message] = []
    second = make_app(delete_payloads=True)

    @second.consumer(queue.name, wait_time=1)
    async def accept(message: Message) -> None:
        handled.append(message)

    await run_until_empty(second, within=30)
    [message] = handled
    assert message.body == body
    assert set(message.message_attributes) == {"origin"}
    assert await bucket.keys() == [], "the payload of a handled message stayed"


async def test_a_near_limit_dead_letter_keeps_its_record(
    sqs: SQSKit, sqs_server: LocalSQSServer, bucket: Bucket, make_app: Callable[..., App]
) -> None:
    """A dead-letter queue of 1 KiB: a 700-byte message keeps a record cut to fit (and
    saying so); with a payload bucket, a 1000-byte one keeps its whole record, its body in S3.

    Naive code it catches: a copy over the dead-letter queue's size that SQS refuses, leaving
    the message to SQS's own redrive without any record (moto would not refuse: the sizes
    are checked here).
    """
    dlq = await sqs.create_queue("small-dlq", attributes={"MaximumMessageSize": "1024"})
    queue = await sqs.create_queue()
    await sqs.send(queue, ["a" * 700])
    cutting = make_app()

    @cutting.consumer(queue.name, wait_time=1, dead_letter_queue=dlq.name)
    async def refuse(message: Message) -> None:
        raise Reject("no " * 400)

    await run_until_empty(cutting, within=30)
    [cut] = await sqs.drain_with_attributes(dlq)
    record = json.loads(cut["MessageAttributes"]["aiosqsworker.failure"]["StringValue"])
    assert "1024" in record["trimmed"]
    assert record["reason"].startswith("no")
    assert message_size(cut["Body"], cut["MessageAttributes"]) <= 1024

    await sqs.send(queue, ["b" * 1000])
    offloading = make_app(payload_bucket=bucket.name)

    @offloading.consumer(queue.name, wait_time=1, dead_letter_queue=dlq.name)
    async def refuse_again(message: Message) -> None:
        raise Reject("still no")

    await run_until_empty(offloading, within=30)
    [moved] = await sqs.drain_with_attributes(dlq)
    record = json.loads(moved["MessageAttributes"]["aiosqsworker.failure"]["StringValue"])
    assert "trimmed" not in record
    assert record["reason"] == "still no"
    pointer = pointer_of(moved["Body"], moved["MessageAttributes"])
    assert pointer is not None
    assert await bucket.text(pointer.key) == "b" * 1000


# --- fair queues and X-Ray through dead letters --------------------------------------------


async def test_a_fair_queues_group_and_trace_header_survive_dead_lettering_and_redrive(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """A standard queue whose messages carry a MessageGroupId (a fair queue) and an X-Ray
    header: the dead-letter copy keeps both, and `dlq redrive` keeps the group.

    Naive code it catches: keeping the group only when the queue's name ends in .fifo.
    """
    queue = await sqs.create_queue(max_receive_count=5, visibility_timeout=2)
    dlq = await sqs.dlq_of(queue)
    trace_header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    await sqs.client.send_message(
        QueueUrl=queue.url,
        MessageBody="tenant work",
        MessageGroupId="tenant-7",
        MessageSystemAttributes={
            "AWSTraceHeader": {"DataType": "String", "StringValue": trace_header}
        },
    )
    app = make_app()

    @app.consumer(queue.name, wait_time=1)
    async def refuse(message: Message) -> None:
        assert message.group_id == "tenant-7"
        raise Reject("later")

    await run_until_empty(app, within=30)
    response = await sqs.client.receive_message(
        QueueUrl=dlq.url, MessageSystemAttributeNames=["All"], WaitTimeSeconds=1
    )
    [dead] = response["Messages"]
    assert dead["Attributes"]["MessageGroupId"] == "tenant-7"
    assert dead["Attributes"]["AWSTraceHeader"] == trace_header
    await sqs.client.change_message_visibility(
        QueueUrl=dlq.url, ReceiptHandle=dead["ReceiptHandle"], VisibilityTimeout=0
    )
    assert await _cli(sqs_server, "dlq", "redrive", queue.name) == 0
    # A long poll the app abandoned at its stop may take it first: it then comes back after
    # the queue's (short) visibility timeout.
    back: list[dict[str, Any]] = []

    async def arrived() -> bool:
        back.extend(await sqs.drain(queue))
        return bool(back)

    await eventually_async(arrived, within=15)
    assert len(back) == 1
    assert back[0]["Body"] == "tenant work"
    assert back[0]["Attributes"]["MessageGroupId"] == "tenant-7"


async def test_payload_deletes_wait_for_sqs_and_leave_a_retried_messages_object(
    sqs: SQSKit, sqs_server: LocalSQSServer, bucket: Bucket, make_app: Callable[..., App]
) -> None:
    """Three pointers acked with ``delete_payloads=True``: their objects go, after SQS
    confirmed each delete; a fourth, whose handler keeps failing, keeps its object.

    Naive code it catches: deleting the object when the handler returns (before SQS
    confirmed the message's delete) or for a retried message.
    """
    queue = await sqs.create_queue(visibility_timeout=10)
    endpoint = sqs_server.endpoint_url
    async with Producer(
        region=REGION, endpoint_url=endpoint, payload_bucket=bucket.name, payload_offload="always"
    ) as producer:
        for n in range(4):
            await producer.send(queue.name, {"n": n})
    app = make_app(delete_payloads=True)
    done: list[int] = []

    @app.consumer(queue.name, wait_time=1, retry_base_delay=30, retry_max_delay=30)
    async def handle(message: Message) -> None:
        n = message.json()["n"]
        if n == 3:
            raise RuntimeError("not yet")
        done.append(n)

    async with app:
        await eventually(lambda: app.statistics()["handle"].deleted == 3, within=20)
    assert sorted(done) == [0, 1, 2]
    [kept] = await bucket.keys()
    assert json.loads(await bucket.text(kept)) == {"n": 3}


# --- a missing S3 endpoint ---------------------------------------------------------------


def test_s3_at_aws_beside_sqs_of_ones_own_is_a_problem_that_names_the_variable() -> None:
    local = "http://127.0.0.1:4566"
    problem = s3_endpoint_problem(local, "https://s3.amazonaws.com")
    assert problem is not None
    assert f"AWS_ENDPOINT_URL_S3={local}" in problem
    assert s3_endpoint_problem(local, local) is None
    assert s3_endpoint_problem(None, "https://s3.amazonaws.com") is None  # AWS for both
    assert (
        s3_endpoint_problem("https://sqs.eu-west-1.amazonaws.com", "https://s3.amazonaws.com")
        is None
    )


async def test_a_missing_s3_endpoint_is_one_clear_line_per_attempt_and_the_message_is_kept(
    sqs: SQSKit,
    sqs_server: LocalSQSServer,
    make_app: Callable[..., App],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SQS on the local server, AWS_ENDPOINT_URL_S3 unset (an older local-server line): the
    consumer of a pointer says what to set, in one line, and keeps the message.

    Catches the S3 client left to botocore's default: every attempt went to AWS's S3 (no
    network here, or a real bucket) and logged an 80-line traceback of DNS errors, for ever.
    """
    queue = await sqs.create_queue()
    name = f"lost-payloads-{uuid.uuid4().hex[:12]}"
    async with _bucket(sqs_server.endpoint_url, name):
        async with Producer(
            region=REGION,
            endpoint_url=sqs_server.endpoint_url,
            s3_endpoint_url=sqs_server.endpoint_url,
            payload_bucket=name,
            payload_offload="always",
        ) as producer:
            await producer.send(queue.name, "a large body, as far as this test goes")
        assert "AWS_ENDPOINT_URL_S3" not in os.environ
        app = make_app()

        @app.consumer(queue.name, wait_time=1, retry_base_delay=0, retry_max_delay=0)
        async def handle(message: Message) -> None:
            raise AssertionError("never called: the body cannot be fetched")

        caplog.set_level("ERROR", logger="aiosqsworker")
        async with app:
            await eventually(
                lambda: len([r for r in caplog.records if "failed (receive" in r.message]) >= 2,
                within=20,
                what="two attempts",
            )
        failures: list[logging.LogRecord] = [
            r for r in caplog.records if "failed (receive" in r.message
        ]
        assert all(record.exc_info is None for record in failures)
        assert f"AWS_ENDPOINT_URL_S3={sqs_server.endpoint_url}" in failures[0].getMessage()
        assert sum(await sqs.counts(queue)) == 1  # kept, for when the setting is fixed
