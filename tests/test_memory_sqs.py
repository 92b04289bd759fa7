"""The in-memory SQS (`aiosqsworker.testing.MemorySQS`): SQS's rules, with no server process.

The scenarios the in-memory SQS shares with the server (``also_in_memory`` in the other
modules) hold it to the server's behaviour end to end. These check, call by call, the rules
those scenarios reach only by chance: what a receive hides and counts, when the redrive
moves a message, FIFO order, locking and deduplication, delays, batch limits and their
codes, digests, and handing an `App` a client instance. Most run on a `ManualClock`, so a
visibility timeout or a delay passes in no time and no assertion depends on wall time. Each
docstring names the naive implementation the scenario exists to catch.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import anyio
import pytest

from aiosqsworker import (
    App,
    ConfigurationError,
    Message,
    Producer,
    QueueNotFoundError,
    Retry,
    SQSError,
)
from aiosqsworker._sqs.checksums import md5_of_attributes, md5_of_body
from aiosqsworker._sqs.redrive import RedrivePolicy
from aiosqsworker.testing import (
    ManualClock,
    MemorySQS,
    QueueCounts,
    run_until_empty,
)

from .kit import SQSKit, eventually


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def memory(clock: ManualClock) -> MemorySQS:
    return MemorySQS(clock=clock)


async def receive(
    memory: MemorySQS, queue: str, *, most: int = 10, wait: int = 0, visibility: int = 30
) -> list[dict[str, Any]]:
    return await memory.receive_messages(
        memory.queue_url(queue), max_messages=most, wait_time=wait, visibility_timeout=visibility
    )


async def send(memory: MemorySQS, queue: str, *entries: dict[str, Any]) -> list[str]:
    """Send entries (their Id added); returns the MessageIds, failing on any failed entry."""
    numbered = [{"Id": str(i), **entry} for i, entry in enumerate(entries)]
    result = await memory.send_message_batch(memory.queue_url(queue), numbered)
    assert not result.failed, result.failed
    return [result.sent[entry["Id"]][0] for entry in numbered]


# A consumer end to end, without a server.


async def test_a_consumer_runs_end_to_end_on_the_in_memory_sqs_without_aws_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """30 messages sent by a Producer, handled by an App, the queue empty after: no server,
    no region, no credentials, on the event loop's own clock.

    Catches an `App(client=...)` that still resolves a region or credentials before using
    the client, and a long poll that sleeps out its wait instead of waking on a send.
    """
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    memory = MemorySQS()
    memory.create_queue("orders", dead_letter_queue="orders-dlq", max_receive_count=3)
    app = App(client=memory)
    seen: Counter[int] = Counter()

    @app.consumer("orders", concurrency=10, wait_time=20)
    async def handle(message: Message) -> None:
        seen[message.json()["n"]] += 1

    async with Producer(client=memory) as producer:
        for n in range(30):
            await producer.send("orders", {"n": n})
    await run_until_empty(app, check_every=0.01)
    assert seen == Counter(range(30))
    assert app.statistics()["handle"].deleted == 30
    assert memory.counts("orders") == QueueCounts()
    assert memory.counts("orders-dlq") == QueueCounts()


async def test_a_retry_delay_passes_when_the_manual_clock_is_advanced(
    memory: MemorySQS, clock: ManualClock
) -> None:
    """``Retry(delay=60)`` on an app whose SQS runs on a ManualClock: the message stays in
    flight through 59 s of that clock and is handled again once the 60th has passed.

    Catches visibility measured on the wall clock rather than the SQS's own (the test would
    have to wait a minute), and a delay applied to the queue rather than the message.
    """
    memory.create_queue("later")
    app = App(client=memory)
    receives: list[int] = []

    @app.consumer("later", wait_time=20, ack_linger=0)
    async def handle(message: Message) -> None:
        receives.append(message.receive_count)
        if message.receive_count == 1:
            raise Retry(delay=60)

    async with app:
        await app.send("later", "once more")
        await eventually(lambda: app.statistics()["handle"].retried == 1, within=10)
        await eventually(lambda: memory.counts("later").in_flight == 1, within=10)
        clock.advance(59)
        await anyio.sleep(0.05)
        assert receives == [1]
        assert memory.counts("later") == QueueCounts(in_flight=1)
        clock.advance(1)
        await eventually(lambda: app.statistics()["handle"].deleted == 1, within=10)
    assert receives == [1, 2]
    assert memory.counts("later") == QueueCounts()


async def test_a_consumer_of_a_queue_deleted_under_it_stops_with_queue_not_found() -> None:
    """Deleting the queue wakes the open long polls, which then fail as SQS's would.

    Catches long polls that keep waiting on a queue that is gone (the worker would hang
    until its wait time ran out, then poll a queue that no longer exists forever).
    """
    memory = MemorySQS()
    memory.create_queue("doomed")
    app = App(client=memory)

    @app.consumer("doomed", wait_time=20)
    async def handle(message: Message) -> None:
        raise AssertionError("nothing was sent")

    async def delete_it_while_polled() -> None:
        async with app:
            await eventually(lambda: app.statistics()["handle"].polls == 0)
            await anyio.sleep(0.05)  # the polls are open
            memory.delete_queue("doomed")
            await anyio.sleep_forever()

    with anyio.fail_after(10), pytest.raises(QueueNotFoundError, match="'doomed'"):
        await delete_it_while_polled()


async def test_a_stop_gives_up_open_polls_at_once_since_they_take_nothing(
    memory: MemorySQS, caplog: pytest.LogCaptureFixture
) -> None:
    """On a ManualClock the app's 20 s long polls never end by themselves: the graceful stop
    gives them up at once (no warning: nothing can be stranded), and a message sent after
    the stop is there, visible, for the next consumer.

    Catches a stop that waits for open polls on every client: on the in-memory SQS every
    test would spend its consumers' wait time (here: the whole shutdown budget) stopping.
    """
    memory.create_queue("idle")
    app = App(client=memory, shutdown_timeout=60)

    @app.consumer("idle", wait_time=20)
    async def handle(message: Message) -> None:
        raise AssertionError("nothing is sent while it runs")

    with anyio.fail_after(10):
        async with app:
            await anyio.sleep(0.05)  # its polls are open
    await send(memory, "idle", {"MessageBody": "after the stop"})
    assert memory.counts("idle") == QueueCounts(visible=1)
    assert not [r for r in caplog.records if "abandoning" in r.getMessage()]


# Visibility, receive counts, redrive.


async def test_a_received_message_is_hidden_for_its_visibility_timeout_then_counted_again(
    memory: MemorySQS, clock: ManualClock
) -> None:
    """Received with a 30 s visibility timeout: hidden from other receives for 30 s of the
    clock, then delivered again with ``ApproximateReceiveCount`` 2 and a new receipt handle.

    Catches a receive that does not hide what it hands out, and a receive count kept per
    receipt instead of per message.
    """
    memory.create_queue("jobs")
    (message_id,) = await send(memory, "jobs", {"MessageBody": "job"})
    [first] = await receive(memory, "jobs", visibility=30)
    assert first["Attributes"]["ApproximateReceiveCount"] == "1"
    assert await receive(memory, "jobs") == []
    assert memory.counts("jobs") == QueueCounts(in_flight=1)
    clock.advance(29.9)
    assert await receive(memory, "jobs") == []
    clock.advance(0.1)
    [second] = await receive(memory, "jobs")
    assert second["MessageId"] == first["MessageId"] == message_id
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"
    assert second["ReceiptHandle"] != first["ReceiptHandle"]
    assert (
        second["Attributes"]["ApproximateFirstReceiveTimestamp"]
        == first["Attributes"]["ApproximateFirstReceiveTimestamp"]
    )


async def test_visibility_changes_need_the_latest_receipt_of_a_message_in_flight(
    memory: MemorySQS, clock: ManualClock
) -> None:
    """An extension works on the latest receipt, also once its timeout ran out (no one
    received the message since: it is hidden again, as on SQS), and fails (as a lost lease:
    `receipt_invalid`) for an older receipt. Nothing stays invisible past 12 hours from its
    receipt.

    Catches extensions that succeed after another receive took the message (the framework
    would never learn that its lease was lost).
    """
    memory.create_queue("jobs")
    url = memory.queue_url("jobs")
    await send(memory, "jobs", {"MessageBody": "job"})
    [first] = await receive(memory, "jobs", visibility=10)
    handle = first["ReceiptHandle"]
    extended = await memory.change_visibility_batch(url, [("a", handle, 10)])
    assert (extended.successful, extended.failed) == (("a",), ())
    clock.advance(10)
    late = await memory.change_visibility_batch(url, [("a", handle, 10)])
    assert (late.successful, late.failed) == (("a",), ())
    assert await receive(memory, "jobs") == []
    clock.advance(10)
    [second] = await receive(memory, "jobs", visibility=43_000)
    [stale] = (await memory.change_visibility_batch(url, [("old", handle, 10)])).failed
    assert "expired" in stale.message
    assert stale.receipt_invalid
    clock.advance(42_950)
    latest = second["ReceiptHandle"]
    [capped] = (await memory.change_visibility_batch(url, [("cap", latest, 251)])).failed
    assert capped.code == "InvalidParameterValue"
    assert "43200" in capped.message
    assert not capped.receipt_invalid
    assert (await memory.change_visibility_batch(url, [("in", latest, 250)])).successful == ("in",)
    [garbage] = (await memory.change_visibility_batch(url, [("x", "not-a-handle", 5)])).failed
    assert (garbage.code, garbage.receipt_invalid) == ("ReceiptHandleIsInvalid", True)


async def test_a_visibility_of_zero_makes_the_message_visible_at_once(memory: MemorySQS) -> None:
    """A release (visibility 0) hands the message to the next receive without any wait.

    Catches a release that is only noticed when the original timeout runs out.
    """
    memory.create_queue("jobs")
    await send(memory, "jobs", {"MessageBody": "job"})
    [first] = await receive(memory, "jobs", visibility=300)
    url = memory.queue_url("jobs")
    await memory.change_visibility_batch(url, [("0", first["ReceiptHandle"], 0)])
    [again] = await receive(memory, "jobs")
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"


async def test_the_redrive_policy_moves_a_message_on_the_receive_after_max_receive_count(
    memory: MemorySQS, clock: ManualClock
) -> None:
    """maxReceiveCount 2: received twice, then the third receive moves it to the
    dead-letter queue (same id and body, `DeadLetterQueueSourceArn` set, its receive count
    carried on);
    the source's old receipt handle no longer deletes anything.

    Catches a redrive one receive early or late, and a moved message whose old handle
    still "deletes" it from the source.
    """
    memory.create_queue("orders", dead_letter_queue="orders-dlq", max_receive_count=2)
    (message_id,) = await send(memory, "orders", {"MessageBody": "poison"})
    handles = []
    for count in ("1", "2"):
        [message] = await receive(memory, "orders", visibility=5)
        assert message["Attributes"]["ApproximateReceiveCount"] == count
        handles.append(message["ReceiptHandle"])
        clock.advance(5)
    assert await receive(memory, "orders") == []
    assert memory.counts("orders") == QueueCounts()
    [letter] = memory.messages("orders-dlq")
    assert (letter.message_id, letter.body, letter.state) == (message_id, "poison", "visible")
    assert letter.receive_count == 2  # carried on, as SQS does
    source_arn = (await memory.get_queue_attributes(memory.queue_url("orders")))["QueueArn"]
    assert letter.attributes["DeadLetterQueueSourceArn"] == source_arn
    [gone] = (
        await memory.delete_message_batch(memory.queue_url("orders"), [("0", handles[1])])
    ).failed
    assert gone.code == "ReceiptHandleIsInvalid"


async def test_deletes_take_the_latest_receipt_and_are_idempotent(
    memory: MemorySQS, clock: ManualClock
) -> None:
    """A delete with the latest receipt removes the message, a second one succeeds too; a
    delete with an older receipt (the message was received again) leaves the message.

    Catches deletes by message id rather than by receipt: a worker whose lease ran out
    would delete a message that another worker is handling.
    """
    memory.create_queue("jobs")
    url = memory.queue_url("jobs")
    await send(memory, "jobs", {"MessageBody": "a"}, {"MessageBody": "b"})
    [a] = await receive(memory, "jobs", most=1, visibility=300)
    [b] = await receive(memory, "jobs", most=1, visibility=5)
    clock.advance(5)
    [b_again] = await receive(memory, "jobs")
    assert b_again["MessageId"] == b["MessageId"]
    result = await memory.delete_message_batch(
        url, [("a", a["ReceiptHandle"]), ("b", b["ReceiptHandle"])]
    )
    assert (sorted(result.successful), result.failed) == (["a", "b"], ())
    assert [message.body for message in memory.messages("jobs")] == ["b"]
    again = await memory.delete_message_batch(
        url, [("a", a["ReceiptHandle"]), ("b", b_again["ReceiptHandle"])]
    )
    assert (sorted(again.successful), again.failed) == (["a", "b"], ())
    assert memory.counts("jobs") == QueueCounts()


# FIFO queues.


async def test_a_fifo_group_is_handed_out_in_order_and_locked_while_in_flight(
    memory: MemorySQS,
) -> None:
    """A1 A2 B1 A3 sent: a receive of one gives A1; while A1 is in flight the next receive
    gives B1 and nothing of A; A1 deleted, A2 and A3 follow in order.

    Catches a FIFO queue that hands out a group's next message while one is in flight, or
    that skips a message of a group to reach a later one.
    """
    memory.create_queue("tasks.fifo", content_based_deduplication=True)
    await send(
        memory,
        "tasks.fifo",
        *({"MessageBody": body, "MessageGroupId": body[0]} for body in ("A1", "A2", "B1", "A3")),
    )
    [a1] = await receive(memory, "tasks.fifo", most=1)
    assert a1["Body"] == "A1"
    assert [m["Body"] for m in await receive(memory, "tasks.fifo")] == ["B1"]
    assert await receive(memory, "tasks.fifo") == []
    await memory.delete_message_batch(memory.queue_url("tasks.fifo"), [("0", a1["ReceiptHandle"])])
    rest = await receive(memory, "tasks.fifo")
    assert [m["Body"] for m in rest] == ["A2", "A3"]
    numbers = [int(m["Attributes"]["SequenceNumber"]) for m in rest]
    assert numbers == sorted(numbers)


async def test_a_waiting_fifo_poll_wakes_when_the_group_is_released(memory: MemorySQS) -> None:
    """A long poll on a FIFO queue whose only group is in flight returns its next message
    as soon as the one in flight is deleted, long before its wait would end.

    Catches long polls that wake only for new messages (a FIFO consumer would stall for
    its whole wait time after every message).
    """
    memory.create_queue("tasks.fifo", content_based_deduplication=True)
    await send(
        memory,
        "tasks.fifo",
        {"MessageBody": "first", "MessageGroupId": "g"},
        {"MessageBody": "second", "MessageGroupId": "g"},
    )
    [first] = await receive(memory, "tasks.fifo", most=1)
    got: list[dict[str, Any]] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def poll() -> None:
                got.extend(await receive(memory, "tasks.fifo", wait=20))

            tg.start_soon(poll)
            await anyio.sleep(0.01)
            assert got == []
            url = memory.queue_url("tasks.fifo")
            await memory.delete_message_batch(url, [("0", first["ReceiptHandle"])])
    assert [m["Body"] for m in got] == ["second"]


async def test_fifo_deduplication_holds_for_five_minutes(
    memory: MemorySQS, clock: ManualClock
) -> None:
    """The same MessageDeduplicationId within 5 minutes is accepted (with the first one's
    MessageId) but not stored again; after 5 minutes it is a new message. With
    ContentBasedDeduplication the body's SHA-256 is the id.

    Catches deduplication that refuses the duplicate (a producer retrying a send would see
    an error) or that never expires.
    """
    memory.create_queue("once.fifo")
    entry = {"MessageBody": "pay 10", "MessageGroupId": "g", "MessageDeduplicationId": "pay-1"}
    (first,) = await send(memory, "once.fifo", entry)
    clock.advance(299)
    (again,) = await send(memory, "once.fifo", entry)
    assert again == first
    assert len(memory.messages("once.fifo")) == 1
    clock.advance(1)
    (later,) = await send(memory, "once.fifo", entry)
    assert later != first
    assert len(memory.messages("once.fifo")) == 2

    memory.create_queue("content.fifo", content_based_deduplication=True)
    same = {"MessageBody": "same body", "MessageGroupId": "g"}
    (one,) = await send(memory, "content.fifo", same)
    (two,) = await send(memory, "content.fifo", same)
    assert one == two
    [stored] = memory.messages("content.fifo")
    assert stored.attributes["MessageDeduplicationId"] == hashlib.sha256(b"same body").hexdigest()


async def test_fifo_sends_without_a_group_or_a_deduplication_id_are_refused(
    memory: MemorySQS,
) -> None:
    """Each entry fails on its own with SQS's code; the valid entry of the batch is sent.

    Catches a FIFO queue that accepts messages it could not order or deduplicate.
    """
    memory.create_queue("strict.fifo")
    result = await memory.send_message_batch(
        memory.queue_url("strict.fifo"),
        [
            {"Id": "no-group", "MessageBody": "x", "MessageDeduplicationId": "1"},
            {"Id": "no-dedup", "MessageBody": "x", "MessageGroupId": "g"},
            {
                "Id": "delayed",
                "MessageBody": "x",
                "MessageGroupId": "g",
                "MessageDeduplicationId": "2",
                "DelaySeconds": 5,
            },
            {"Id": "ok", "MessageBody": "x", "MessageGroupId": "g", "MessageDeduplicationId": "3"},
        ],
    )
    assert list(result.sent) == ["ok"]
    codes = {failure.id: failure.code for failure in result.failed}
    assert codes == {
        "no-group": "MissingParameter",
        "no-dedup": "InvalidParameterValue",
        "delayed": "InvalidParameterValue",
    }
    assert all(failure.sender_fault and not failure.retryable for failure in result.failed)


# Delays and long polls.


async def test_delayed_messages_wait_out_their_delay(memory: MemorySQS, clock: ManualClock) -> None:
    """A per-message delay (and the queue's DelaySeconds) keeps a message out of receives,
    counted as delayed, until the clock has passed it.

    Catches delays that are accepted and ignored.
    """
    memory.create_queue("slow", delay=10)
    await send(memory, "slow", {"MessageBody": "queue's delay"})
    await send(memory, "slow", {"MessageBody": "own delay", "DelaySeconds": 30})
    assert memory.counts("slow") == QueueCounts(delayed=2)
    clock.advance(10)
    assert [m["Body"] for m in await receive(memory, "slow")] == ["queue's delay"]
    assert memory.counts("slow") == QueueCounts(in_flight=1, delayed=1)
    clock.advance(20)
    assert [m["Body"] for m in await receive(memory, "slow")] == ["own delay"]


async def test_a_long_poll_returns_as_soon_as_a_message_is_sent(memory: MemorySQS) -> None:
    """On a ManualClock that never moves, a 20 s long poll can only end through a send.

    Catches long polls that look for messages only at their start and end.
    """
    memory.create_queue("jobs")
    got: list[dict[str, Any]] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def poll() -> None:
                got.extend(await receive(memory, "jobs", wait=20))

            tg.start_soon(poll)
            await anyio.sleep(0.01)
            assert got == []
            await send(memory, "jobs", {"MessageBody": "wake up"})
    assert [m["Body"] for m in got] == ["wake up"]


async def test_simultaneous_long_polls_never_share_a_message(memory: MemorySQS) -> None:
    """Eight long polls waiting on an empty queue, then 50 messages: each comes out once.

    Catches a wake-up that lets every poll read the same messages before any marks them.
    """
    memory.create_queue("jobs")
    received: Counter[str] = Counter()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def poll() -> None:
                while True:
                    for message in await receive(memory, "jobs", wait=20):
                        received[message["Body"]] += 1

            for _ in range(8):
                tg.start_soon(poll)
            await anyio.sleep(0.01)
            for start in range(0, 50, 10):
                await send(
                    memory, "jobs", *({"MessageBody": f"m{n}"} for n in range(start, start + 10))
                )
            await eventually(lambda: sum(received.values()) >= 50, within=5)
            await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
    assert received == Counter({f"m{n}": 1 for n in range(50)})


# Batch calls: limits, per-entry failures, digests.


@pytest.mark.parametrize(
    ("entries", "code"),
    [
        ([], "AWS.SimpleQueueService.EmptyBatchRequest"),
        ([str(n) for n in range(11)], "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"),
        (["same", "same"], "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"),
        (["not valid!"], "AWS.SimpleQueueService.InvalidBatchEntryId"),
    ],
    ids=["empty", "eleven", "repeated-id", "bad-id"],
)
async def test_batch_calls_out_of_bounds_are_refused_whole_with_sqs_codes(
    memory: MemorySQS, entries: list[str], code: str
) -> None:
    """All three batch calls refuse the same malformed batches, with SQS's error codes.

    Catches a batch call that quietly takes eleven entries (the framework's batching
    would never notice it sends too many).
    """
    memory.create_queue("jobs")
    url = memory.queue_url("jobs")
    calls = [
        memory.send_message_batch(url, [{"Id": id_, "MessageBody": "x"} for id_ in entries]),
        memory.delete_message_batch(url, [(id_, "handle") for id_ in entries]),
        memory.change_visibility_batch(url, [(id_, "handle", 0) for id_ in entries]),
    ]
    for call in calls:
        with pytest.raises(SQSError) as info:
            await call
        assert info.value.code == code


async def test_a_batch_over_one_mebibyte_is_refused_whole(memory: MemorySQS) -> None:
    """Ten entries of 200 KiB each: the call is refused as BatchRequestTooLong.

    Catches a size limit checked per message only.
    """
    memory.create_queue("jobs")
    entries = [{"Id": str(n), "MessageBody": "x" * 200_000} for n in range(10)]
    with pytest.raises(SQSError) as info:
        await memory.send_message_batch(memory.queue_url("jobs"), entries)
    assert info.value.code == "AWS.SimpleQueueService.BatchRequestTooLong"
    assert memory.counts("jobs") == QueueCounts()


async def test_invalid_messages_fail_their_own_entry_only(memory: MemorySQS) -> None:
    """A control character, a body over the queue's MaximumMessageSize, eleven attributes,
    an AWS.-prefixed attribute name and a Number that is not one each fail their own entry
    with SQS's code; the good entry is stored.

    Catches a test double that stores what SQS would refuse, so that a test passes for
    a message production can never send.
    """
    memory.create_queue("jobs", attributes={"MaximumMessageSize": "1024"})
    eleven = {f"a{n}": {"DataType": "String", "StringValue": "v"} for n in range(11)}
    result = await memory.send_message_batch(
        memory.queue_url("jobs"),
        [
            {"Id": "control", "MessageBody": "bell \x07"},
            {"Id": "large", "MessageBody": "x" * 1025},
            {"Id": "eleven", "MessageBody": "x", "MessageAttributes": eleven},
            {
                "Id": "reserved",
                "MessageBody": "x",
                "MessageAttributes": {"AWS.trace": {"DataType": "String", "StringValue": "v"}},
            },
            {
                "Id": "nan",
                "MessageBody": "x",
                "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "many"}},
            },
            {"Id": "good", "MessageBody": "fine \t\n\u00e9\U0001f600"},
        ],
    )
    codes = {failure.id: failure.code for failure in result.failed}
    assert codes == {
        "control": "InvalidMessageContents",
        "large": "InvalidParameterValue",
        "eleven": "InvalidParameterValue",
        "reserved": "InvalidParameterValue",
        "nan": "InvalidParameterValue",
    }
    assert list(result.sent) == ["good"]
    assert [message.body for message in memory.messages("jobs")] == ["fine \t\n\u00e9\U0001f600"]


ATTRIBUTES: dict[str, dict[str, Any]] = {
    "source": {"DataType": "String", "StringValue": "web"},
    "count": {"DataType": "Number", "StringValue": "42"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
    "custom": {"DataType": "String.json", "StringValue": '{"a": 1}'},
    "Zeta": {"DataType": "String", "StringValue": "z"},
}


async def test_digests_match_what_the_server_computes(sqs: SQSKit, memory: MemorySQS) -> None:
    """The same message through the test server and through the in-memory SQS: the same
    MD5OfBody and MD5OfMessageAttributes (and the server's agree with the digest functions).

    Catches an attribute digest that sorts, encodes or frames the attributes differently
    from SQS: clients that check it would refuse every message with attributes.
    """
    body = "héllo"
    entry = {"Id": "0", "MessageBody": body, "MessageAttributes": ATTRIBUTES}
    server_queue = await sqs.create_queue()
    await sqs.sqs.send_message_batch(server_queue.url, [entry])
    [on_server] = await sqs.receive(server_queue)
    memory.create_queue("digests")
    await memory.send_message_batch(memory.queue_url("digests"), [entry])
    [in_memory] = await receive(memory, "digests")
    for key in ("MD5OfBody", "MD5OfMessageAttributes", "Body", "MessageAttributes"):
        assert in_memory[key] == on_server[key], key
    assert on_server["MD5OfBody"] == md5_of_body(body)
    assert on_server["MD5OfMessageAttributes"] == md5_of_attributes(ATTRIBUTES)


# Queues: attributes, errors, the helpers.


async def test_queue_attributes_show_counts_and_the_redrive_policy(
    memory: MemorySQS, clock: ManualClock
) -> None:
    """GetQueueAttributes as SQS answers it, and the dead-letter queue knows its sources.

    Catches counts that leave out delayed or in-flight messages (`run_until_empty` would
    stop with a retry still pending).
    """
    memory.create_queue(
        "orders", visibility_timeout=45, dead_letter_queue="dlq", max_receive_count=4
    )
    await send(memory, "orders", {"MessageBody": "a"}, {"MessageBody": "b"})
    await send(memory, "orders", {"MessageBody": "c", "DelaySeconds": 60})
    await receive(memory, "orders", most=1)
    attributes = await memory.get_queue_attributes(memory.queue_url("orders"))
    assert attributes["VisibilityTimeout"] == "45"
    assert attributes["ApproximateNumberOfMessages"] == "1"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"
    dlq_url = memory.queue_url("dlq")
    dlq_arn = (await memory.get_queue_attributes(dlq_url))["QueueArn"]
    assert RedrivePolicy.of(attributes) == RedrivePolicy(dlq_arn, 4)
    assert await memory.queue_url_from_arn(dlq_arn) == dlq_url
    assert await memory.list_dead_letter_source_queues(dlq_url) == [memory.queue_url("orders")]


async def test_every_call_on_a_missing_queue_says_which_and_how_to_create_it(
    memory: MemorySQS,
) -> None:
    """Catches a KeyError (or an empty answer) where SQS would say the queue does not exist."""
    memory.create_queue("present")
    url = memory.queue_url("present").replace("present", "absent")
    calls = [
        memory.resolve_queue_url("absent"),
        memory.get_queue_attributes(url),
        memory.receive_messages(url, max_messages=1, wait_time=0, visibility_timeout=1),
        memory.delete_message_batch(url, [("0", "h")]),
        memory.change_visibility_batch(url, [("0", "h", 1)]),
        memory.send_message_batch(url, [{"Id": "0", "MessageBody": "x"}]),
        memory.list_dead_letter_source_queues(url),
        memory.queue_url_from_arn("arn:aws:sqs:us-east-1:123456789012:absent"),
    ]
    for call in calls:
        with pytest.raises(QueueNotFoundError, match=r"'[^']*absent'.*present.*create_queue"):
            await call


def test_create_queue_checks_names_and_attributes_as_sqs_does(memory: MemorySQS) -> None:
    """A name SQS refuses, an unknown attribute (with a suggestion), a value out of range,
    a FIFO queue with a standard dead-letter queue, a queue that exists with other
    attributes: each refused with SQS's code; the same queue again returns its URL.

    Catches a test double that accepts queues no real account could create.
    """
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"name": "has space"}, "InvalidParameterValue", "alphanumeric"),
        (
            {"name": "q", "attributes": {"VisibiltyTimeout": "5"}},
            "InvalidAttributeName",
            "did you mean 'VisibilityTimeout'",
        ),
        ({"name": "q", "visibility_timeout": 43_201}, "InvalidAttributeValue", "VisibilityTimeout"),
        (
            {"name": "q", "attributes": {"ContentBasedDeduplication": "true"}},
            "InvalidAttributeName",
            "ContentBasedDeduplication",
        ),
    ]
    for arguments, code, words in cases:
        with pytest.raises(SQSError, match=words) as info:
            memory.create_queue(**arguments)
        assert info.value.code == code
    memory.create_queue("standard-dlq")
    with pytest.raises(SQSError, match="same type") as redrive:
        memory.create_queue("jobs.fifo", dead_letter_queue="standard-dlq", max_receive_count=3)
    assert redrive.value.code == "InvalidParameterValue"
    url = memory.create_queue("jobs", visibility_timeout=10)
    assert memory.create_queue("jobs", visibility_timeout=10) == url
    with pytest.raises(SQSError) as exists:
        memory.create_queue("jobs", visibility_timeout=20)
    assert exists.value.code == "QueueAlreadyExists"
    with pytest.raises(ConfigurationError, match="together"):
        memory.create_queue("lonely", dead_letter_queue="dlq")


# Handing an App a client.


def test_an_app_takes_a_client_instance_and_refuses_what_is_not_one() -> None:
    """Catches a client setting that accepts any object (the first poll would fail with an
    AttributeError deep in the pipeline) or a typo of "fast" (it would run botocore's path).
    """
    memory = MemorySQS()
    assert App(client=memory).config.client is memory
    with pytest.raises(ConfigurationError, match=r"did you mean 'fast'"):
        App(client="fsat")  # type: ignore[arg-type]

    class HalfAClient:
        endpoint = memory.endpoint

        def receive_messages(self) -> None: ...

    with pytest.raises(
        ConfigurationError,
        match=(
            r"HalfAClient lacks cancelled_polls_take_messages, resolve_queue_url, "
            r".*receive_messages \(must be async\)"
        ),
    ):
        App(client=HalfAClient())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"endpoint_url=.* cannot be used with client="):
        App(client=memory, endpoint_url="http://127.0.0.1:4566")
    with pytest.raises(ConfigurationError, match="region="):
        Producer(client=memory, region="eu-west-1")
