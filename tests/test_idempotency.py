"""Idempotency tied to the lease: the stores' contract, and scenarios on the SQS server with
a real Redis server (started by the tests, `tests/redisserver.py`)."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis

from aiosqsworker import App, Message
from aiosqsworker._errors import ConfigurationError
from aiosqsworker.idempotency import (
    Claim,
    IdempotencyStore,
    MemoryIdempotencyStore,
    RedisIdempotencyStore,
)
from aiosqsworker.testing import Answer, FaultProxy, LocalSQSServer, ProxiedRequest

from .kit import SQSKit, eventually, eventually_async
from .redisserver import redis_server
from .servers import server_kind


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, redis: Redis) -> IdempotencyStore:
    if request.param == "memory":
        return MemoryIdempotencyStore(done_for=60)
    return RedisIdempotencyStore(redis, prefix=f"{request.node.name}:", done_for=60)


# The stores' contract.


async def test_a_claim_holds_a_key_until_released_and_a_done_key_stays_done(
    store: IdempotencyStore,
) -> None:
    """Naive stores it catches: a claim that overwrites another's (SET without NX), a release
    or extension by a token that does not hold the key, a done record a claim replaces."""
    assert await store.claim("k", "a", 30) == Claim("claimed")
    held = await store.claim("k", "b", 30)
    assert held.state == "in_progress"
    assert 25 < held.expires_in <= 30
    assert not await store.extend("k", "b", 30)  # not b's
    await store.release("k", "b")  # not b's: nothing happens
    assert (await store.claim("k", "b", 30)).state == "in_progress"
    assert await store.extend("k", "a", 60)
    assert (await store.claim("k", "b", 30)).expires_in > 55
    await store.release("k", "a")
    assert await store.claim("k", "b", 30) == Claim("claimed")
    await store.complete("k", "b")
    assert await store.claim("k", "c", 30) == Claim("done")
    await store.release("k", "c")  # a done record is not anyone's to release
    assert not await store.extend("k", "b", 30)
    assert await store.claim("k", "c", 30) == Claim("done")


async def test_an_in_progress_record_expires_with_its_ttl(store: IdempotencyStore) -> None:
    """Naive store it catches: a record that never expires (a crashed worker's claim would
    block its key for ever)."""
    assert await store.claim("k", "a", 0.3) == Claim("claimed")
    await anyio.sleep(0.5)
    assert await store.claim("k", "b", 30) == Claim("claimed")
    await store.complete("k", "a")  # b holds it now: a's completion must not mark it done
    assert (await store.claim("k", "c", 30)).state == "in_progress"


def test_the_settings_are_checked() -> None:
    app = App()
    with pytest.raises(ConfigurationError, match=r"idempotency=.*claim, extend"):
        app.consumer("q", idempotency=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="idempotency_key='order'"):
        app.consumer("q", idempotency_key="order")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not to batch=True"):
        app.consumer("q", batch=True, idempotency=MemoryIdempotencyStore())


# Scenarios.


class ForgetfulExtensions(FaultProxy):
    """Answers every lease extension with success without passing it on: the worker behind
    it believes it holds its messages while SQS lets them go (its visibility runs out during
    the handler, and another worker receives the message)."""

    async def forward(self, request: ProxiedRequest) -> Answer:
        if request.action != "ChangeMessageVisibilityBatch":
            return await super().forward(request)
        entries = request.json()["Entries"]
        if any(int(entry.get("VisibilityTimeout", 0)) == 0 for entry in entries):
            return await super().forward(request)  # a release: let it through
        return Answer.of_json({"Successful": [{"Id": e["Id"]} for e in entries], "Failed": []})


class RefusedExtensions(FaultProxy):
    """Answers every lease extension with "receipt handle invalid": the lease is lost."""

    async def forward(self, request: ProxiedRequest) -> Answer:
        if request.action != "ChangeMessageVisibilityBatch":
            return await super().forward(request)
        entries = request.json()["Entries"]
        failed = [
            {
                "Id": entry["Id"],
                "Code": "ReceiptHandleIsInvalid",
                "Message": "injected",
                "SenderFault": True,
            }
            for entry in entries
        ]
        return Answer.of_json({"Successful": [], "Failed": failed})


async def test_a_message_delivered_twice_runs_its_handler_once_on_redis(
    sqs: SQSKit,
    sqs_server: LocalSQSServer,
    make_app: Callable[..., App],
    redis: Redis,
) -> None:
    """Worker A's handler is slow and its visibility runs out under it (its extensions never
    reach SQS), so worker B receives the message too. B finds the key in progress and
    retries after the time A's record has left; A finishes and deletes; the handler ran once.

    Naive code it catches: no claim before the handler (B runs it again); an in-progress
    record with a fixed time to live, not extended with the lease (it expires while A's
    handler still runs, and B runs it again); a duplicate acked before A's delete is
    confirmed.
    """
    if server_kind() != "moto":
        pytest.skip("needs a delete with an earlier receipt handle to delete, as SQS and moto do")
    queue = await sqs.create_queue(visibility_timeout=2)
    store = RedisIdempotencyStore(redis, prefix=f"{queue.name}:")
    runs: list[tuple[str, int]] = []
    settings: dict[str, Any] = {
        "name": "orders",
        "visibility_timeout": 2,
        "wait_time": 1,
        "idempotency": store,
        "retry_base_delay": 0.5,
    }
    async with ForgetfulExtensions(sqs_server.endpoint_url) as proxy:
        slow, other = make_app(endpoint_url=proxy.url), make_app()

        # One message at a time, none ahead: the duplicate can only go to the other worker.
        @slow.consumer(queue.name, concurrency=1, prefetch=0, **settings)
        async def handle_slowly(message: Message) -> None:
            runs.append(("a", message.receive_count))
            await anyio.sleep(5)

        @other.consumer(queue.name, **settings)
        async def handle(message: Message) -> None:
            runs.append(("b", message.receive_count))

        (message_id,) = await sqs.send(queue, ["order 1"])
        async with slow:
            await eventually(lambda: bool(runs))
            async with other:
                await eventually(lambda: other.statistics()["orders"].received >= 1)
                await eventually(lambda: slow.statistics()["orders"].succeeded == 1, within=15)
                await eventually_async(lambda: _empty(sqs, queue), within=15)
                await anyio.sleep(1)
    assert runs == [("a", 1)]
    assert await redis.get(f"{queue.name}:orders:{message_id}") == b"d"


async def _empty(sqs: SQSKit, queue: Any) -> bool:
    return await sqs.counts(queue) == (0, 0)


async def test_a_duplicate_of_a_done_key_is_deleted_without_running_the_handler(
    sqs: SQSKit, make_app: Callable[..., App], redis: Redis
) -> None:
    """A producer sent order 7 twice (its first send timed out, it sent again): keyed by the
    order's id, the second is deleted without running the handler, and counted.

    Naive code it catches: a done key run again; a skipped duplicate left in the queue
    (returned without an ack) or dead-lettered.
    """
    queue = await sqs.create_queue()
    runs: list[str] = []
    app = make_app()

    @app.consumer(
        queue.name,
        name="orders",
        wait_time=1,
        concurrency=1,
        idempotency=RedisIdempotencyStore(redis, prefix=f"{queue.name}:"),
        idempotency_key=lambda message: str(message.json()["order"]),
    )
    async def handle(message: Message) -> None:
        runs.append(message.message_id)

    async with app:
        await sqs.send(queue, [json.dumps({"order": 7})])
        await eventually(lambda: app.statistics()["orders"].succeeded == 1)
        await sqs.send(queue, [json.dumps({"order": 7})])
        await eventually(lambda: app.statistics()["orders"].duplicates_skipped == 1)
        await eventually(lambda: app.statistics()["orders"].deleted == 2)
        assert await sqs.counts(queue) == (0, 0)
        stats = app.statistics()["orders"]
    assert len(runs) == 1
    assert stats.failed == 0
    assert await redis.get(f"{queue.name}:orders:7") == b"d"


async def test_a_failed_handler_removes_its_record_at_once(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """The handler fails: its record goes, so that the retry runs the handler (and does not
    wait out a record of an attempt that is over); the retry's success marks it done.

    Naive code it catches: a record left in progress after a failure (the retry would be
    put off as "in progress elsewhere" until it expired).
    """
    queue = await sqs.create_queue()
    store = MemoryIdempotencyStore()
    runs: list[int] = []
    failed = anyio.Event()
    app = make_app()

    @app.consumer(queue.name, name="orders", wait_time=1, idempotency=store)
    async def handle(message: Message) -> None:
        runs.append(message.receive_count)
        if len(runs) == 1:
            failed.set()
            raise RuntimeError("the first attempt fails")

    async with app:
        (message_id,) = await sqs.send(queue, ["x"])
        key = f"orders:{message_id}"
        with anyio.fail_after(10):
            await failed.wait()
        await eventually(lambda: store.state(key) == "absent", within=1)
        await eventually(lambda: app.statistics()["orders"].succeeded == 1)
        await eventually(lambda: store.state(key) == "done")
    assert runs == [1, 2]


async def test_a_def_handler_given_up_on_its_timeout_keeps_its_record_while_its_thread_runs(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """A ``def`` handler past its `timeout=`: the message takes its path, but the thread
    runs on (it cannot be stopped), so the record stays in progress, to expire with the
    lease, and no other delivery runs the handler beside the thread meanwhile. A handler that
    raises in its thread (it has returned) still removes its record at once.

    Naive code it catches: the release of an ``async`` handler's timeout applied to a thread's
    (the record removed while the abandoned thread is still doing the work).
    """
    queue = await sqs.create_queue(visibility_timeout=30)
    store = MemoryIdempotencyStore()
    finish = threading.Event()
    app = make_app()

    @app.consumer(
        queue.name, name="orders", wait_time=1, timeout=1, concurrency=4, idempotency=store
    )
    def handle(message: Message) -> None:
        if message.body == "raises":
            raise RuntimeError("fails in its thread")
        finish.wait(20)

    try:
        async with app:
            slow, raises = await sqs.send(queue, ["slow", "raises"])
            await eventually(lambda: app.statistics()["orders"].abandoned_threads == 1)
            assert store.state(f"orders:{slow}") == "in_progress"
            await eventually(lambda: app.statistics()["orders"].failed >= 2)
            await eventually(lambda: store.state(f"orders:{raises}") == "absent", within=1)
            assert store.state(f"orders:{slow}") == "in_progress"
            finish.set()
            app.stop()
    finally:
        finish.set()


async def test_a_lost_lease_removes_the_record_of_its_cancelled_handler(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """SQS refuses the extension (the receipt handle is gone): the handler is cancelled and
    its record removed, for whoever has the message now.

    Naive code it catches: a cancellation that skips the release (`except Exception`), so
    the next delivery waits out the dead attempt's record.
    """
    # The first extension is refused: at once for a watch poll's message, at 1 s otherwise
    # (a 6 s window is extended 5 s before expiry); either way well before the record would
    # expire by itself.
    queue = await sqs.create_queue(visibility_timeout=6)
    store = MemoryIdempotencyStore()
    started, cancelled = anyio.Event(), anyio.Event()
    async with RefusedExtensions(sqs_server.endpoint_url) as proxy:
        app = make_app(endpoint_url=proxy.url)

        claimed: list[str] = []

        @app.consumer(queue.name, name="orders", wait_time=1, idempotency=store)
        async def handle(message: Message) -> None:
            # Read in the handler: a watch poll's lease is extended (and here refused, so
            # lost, and the record removed) as soon as it is received.
            claimed.append(store.state(f"orders:{message.message_id}"))
            started.set()
            try:
                await anyio.sleep(30)
            finally:
                cancelled.set()

        async with app:
            (message_id,) = await sqs.send(queue, ["x"])
            with anyio.fail_after(10):
                await started.wait()
            assert claimed == ["in_progress"]
            with anyio.fail_after(10):
                await cancelled.wait()
            await eventually(lambda: store.state(f"orders:{message_id}") == "absent", within=2)
            app.stop()


class FlakyStore(MemoryIdempotencyStore):
    """A store whose first `failures` claims fail, as a Redis that is down would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def claim(self, key: str, token: str, ttl: float) -> Claim:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("store unreachable")
        return await super().claim(key, token, ttl)


async def test_a_store_that_is_down_delays_the_message_without_losing_or_running_it(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """The store fails twice: the message is retried (not run unguarded, not dead-lettered),
    then handled once.

    Naive code it catches: running the handler when the claim fails (no guard at all then).
    """
    queue = await sqs.create_queue(max_receive_count=5)
    store = FlakyStore(failures=2)
    runs: list[int] = []
    app = make_app()

    @app.consumer(queue.name, name="orders", wait_time=1, idempotency=store)
    async def handle(message: Message) -> None:
        runs.append(message.receive_count)

    async with app:
        await sqs.send(queue, ["x"])
        await eventually(lambda: app.statistics()["orders"].succeeded == 1, within=20)
        stats = app.statistics()["orders"]
    assert runs == [3]
    assert stats.dead_lettered == 0
    assert await sqs.counts(await sqs.dlq_of(queue)) == (0, 0)


class RefusedDeletes(FaultProxy):
    """Answers every delete with "receipt handle invalid", passing nothing on: the message
    stays in SQS, invisible until its visibility timeout runs out."""

    async def forward(self, request: ProxiedRequest) -> Answer:
        if request.action != "DeleteMessageBatch":
            return await super().forward(request)
        failed = [
            {"Id": e["Id"], "Code": "ReceiptHandleIsInvalid", "Message": "x", "SenderFault": True}
            for e in request.json()["Entries"]
        ]
        return Answer.of_json({"Successful": [], "Failed": failed})


async def test_a_lease_found_lost_at_the_delete_removes_the_record(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    """The handler succeeded, but its delete finds the lease lost: the message is not
    deleted, so its record goes at once (the next delivery must run the handler), rather
    than stay in progress for the rest of the 30 s window.

    Naive code it catches: a record only ever removed by a failing handler, or only marked
    done by a confirmed delete (here: in progress until the lease's expiry).
    """
    queue = await sqs.create_queue(visibility_timeout=30)
    store = MemoryIdempotencyStore()
    async with RefusedDeletes(sqs_server.endpoint_url) as proxy:
        app = make_app(endpoint_url=proxy.url)

        @app.consumer(queue.name, name="orders", wait_time=1, idempotency=store)
        async def handle(message: Message) -> None:
            pass

        async with app:
            (message_id,) = await sqs.send(queue, ["x"])
            await eventually(lambda: app.statistics()["orders"].leases_lost == 1)
            await eventually(lambda: store.state(f"orders:{message_id}") == "absent", within=2)
            app.stop()
