"""One contender consuming one run's messages, in its own process (run by the harness).

``python -m benchmarks.contender --contender NAME --endpoint URL --messages N ...`` sets up
its consumer, opens the measuring window (which releases the responder's budget), handles
`N` messages with the chosen handler, closes the window at the N-th finished handler, shuts
down cleanly (deletes flushed) and prints one result line (see `_probe`).

Contenders:

- ``aiosqsworker``: the framework with its default settings (the fast path);
- ``aiosqsworker-botocore``: the same with ``App(client="botocore")``;
- ``aiosqsworker-def``: the fast path with the handler a plain ``def`` (run in the
  consumer's handler threads): beside ``aiosqsworker``, the cost of the thread hand-off;
- ``aiobotocore-loop``: a bare loop on aiobotocore: pollers calling ReceiveMessage(10) into a
  small bounded queue, N handler tasks, deletes batched by ten with a 50 ms linger. No
  leases, no retries, no shutdown care: the most anything built on aiobotocore can do;
- ``aiohttp-loop``: the same loop over aiohttp with hand-built JSON, no signing and no
  checks: the floor of a Python asyncio consumer (``aiohttp-loop-asyncio``: the same, always
  on asyncio's own event loop, the floor beside uvloop's);
- ``lean-floor``: the same loop over the lean transport alone (no framework): the floor of
  the fast path. Its calls come from ``benchmarks/lean_floor.py``, which the transport
  provides (`lean_calls`); without it the run fails, saying so, and the report shows why;
- ``lean-transport``: the lean transport with no loop around it: each poller receives ten,
  runs the handler on each in turn and deletes them before polling again (no queue, no task
  per handler). What the transport alone costs a message, the part of every floor no
  engine can take away; run with the no-op handler only.

The bare loops keep open as many polls as aiosqsworker opens at most for the same
concurrency, so that under load the comparison is of client and framework cost, not of
polling strategy; on an idle queue (the idle figure) it is of polling strategy.
"""

from __future__ import annotations

import asyncio
import cProfile
import math
import sys
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any

from ._probe import Options, Tally, Window, emit, parse_options
from .handlers import ASYNC_HANDLERS, SYNC_HANDLERS

__all__ = ["CONTENDERS", "main", "poller_count"]

REGION = "us-east-1"
WAIT_TIME = 20  # seconds: the long poll every contender uses (aiosqsworker's default)
PREFETCH = 10  # messages received ahead of a free handler (aiosqsworker's default)
LINGER = 0.05  # seconds a delete may wait for others to share its batch (aiosqsworker's)
MAX_POLLERS = 16  # aiosqsworker's own bound up to 1,600 messages of room...
ROOM_PER_POLL = 100  # ...then one more poll per 100 messages of room...
MAX_POLLS = 128  # ...up to this many
UNSIGNED_AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=bench/20250101/us-east-1/sqs/aws4_request, "
    "SignedHeaders=host, Signature=0"
)
SETTLE = 0.3  # seconds between the consumer's start and the window's opening


def poller_count(concurrency: int) -> int:
    """Concurrent long polls for `concurrency` handlers: aiosqsworker's most (its `poll_cap`).

    The bare loops keep them all open all the time; aiosqsworker opens that many only
    while polls come back full, and one on an idle queue. The fanferro peer's driver gives
    fanferro as many, importing this from its own environment: this module imports only the
    standard library at its top.
    """
    room = concurrency + PREFETCH
    bound = max(MAX_POLLERS, min(MAX_POLLS, math.ceil(room / ROOM_PER_POLL)))
    return max(1, min(bound, math.ceil(room / 10)))


Consume = Callable[[Options, Window, Tally, asyncio.Event], Awaitable[dict[str, Any]]]


async def _until_done(options: Options, window: Window, finished: asyncio.Event) -> None:
    """Wait for the last message, or the deadline (then the window closes where it stands)."""
    try:
        async with asyncio.timeout(options.deadline):
            await finished.wait()
    except TimeoutError:
        window.stop()


# --- aiosqsworker -------------------------------------------------------------------------
async def _aiosqsworker(
    options: Options,
    window: Window,
    tally: Tally,
    finished: asyncio.Event,
    client: str,
    *,
    sync: bool = False,
) -> dict[str, Any]:
    from aiosqsworker import App, Message

    app = App(
        region=REGION,
        endpoint_url=options.endpoint,
        client="botocore" if client == "botocore" else "fast",
        shutdown_timeout=10,
    )
    if sync:
        sync_handler = SYNC_HANDLERS[options.handler]

        @app.consumer(options.queue, concurrency=options.concurrency)
        def handle_sync(message: Message) -> None:
            tally.begin()
            sync_handler(message.body)
            tally.done()

    else:
        handler = ASYNC_HANDLERS[options.handler]

        @app.consumer(options.queue, concurrency=options.concurrency)
        async def handle(message: Message) -> None:
            tally.begin()
            await handler(message.body)
            tally.done()

    async with app:
        if not options.launch:
            await asyncio.sleep(SETTLE)  # let every poller send its first (waiting) poll
        window.start(options.start_url, options.messages)
        await _until_done(options, window, finished)
    stats = app.statistics()["handle_sync" if sync else "handle"]
    return {"deleted": stats.deleted, "polls": stats.polls, "poll_errors": stats.poll_errors}


async def aiosqsworker_fast(
    options: Options, window: Window, tally: Tally, finished: asyncio.Event
) -> dict[str, Any]:
    return await _aiosqsworker(options, window, tally, finished, "fast")


async def aiosqsworker_botocore(
    options: Options, window: Window, tally: Tally, finished: asyncio.Event
) -> dict[str, Any]:
    return await _aiosqsworker(options, window, tally, finished, "botocore")


async def aiosqsworker_def(
    options: Options, window: Window, tally: Tally, finished: asyncio.Event
) -> dict[str, Any]:
    return await _aiosqsworker(options, window, tally, finished, "fast", sync=True)


# --- the bare loops -----------------------------------------------------------------------
Receive = Callable[[], Awaitable[list[tuple[str, str]]]]  # -> [(body, receipt handle)]
Delete = Callable[[list[str]], Coroutine[Any, Any, int]]  # receipt handles -> entries that failed


async def bare_loop(
    options: Options,
    window: Window,
    tally: Tally,
    finished: asyncio.Event,
    receive: Receive,
    delete: Delete,
) -> dict[str, Any]:
    """Pollers into a bounded queue, N handler tasks, deletes batched by ten with a linger."""
    handler = ASYNC_HANDLERS[options.handler]
    loop = asyncio.get_running_loop()
    work: asyncio.Queue[tuple[str, str]] = asyncio.Queue(maxsize=PREFETCH)
    acks: asyncio.Queue[str | None] = asyncio.Queue()
    pending: set[asyncio.Task[int]] = set()
    failed = 0

    async def poll() -> None:
        while True:
            for message in await receive():
                await work.put(message)

    async def handle() -> None:
        while True:
            body, handle = await work.get()
            tally.begin()
            await handler(body)
            tally.done()
            acks.put_nowait(handle)

    def send(batch: list[str]) -> None:
        task = loop.create_task(delete(batch))
        pending.add(task)
        task.add_done_callback(pending.discard)

    async def ack() -> None:
        while True:
            first = await acks.get()
            if first is None:
                return
            batch = [first]
            deadline = loop.time() + LINGER
            while len(batch) < 10:
                if acks.empty():
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(acks.get(), left)
                    except TimeoutError:
                        break
                else:
                    item = acks.get_nowait()
                if item is None:
                    send(batch)
                    return
                batch.append(item)
            send(batch)

    workers = [loop.create_task(poll()) for _ in range(poller_count(options.concurrency))]
    workers += [loop.create_task(handle()) for _ in range(options.concurrency)]
    acker = loop.create_task(ack())
    await asyncio.sleep(SETTLE)  # let every poller send its first (waiting) poll
    window.start(options.start_url, options.messages)
    await _until_done(options, window, finished)
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    acks.put_nowait(None)
    await acker
    for result in await asyncio.gather(*pending):
        failed += result
    return {"delete_failures": failed}


async def aiobotocore_loop(
    options: Options, window: Window, tally: Tally, finished: asyncio.Event
) -> dict[str, Any]:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    config = AioConfig(
        read_timeout=WAIT_TIME + 15,
        connect_timeout=10,
        max_pool_connections=poller_count(options.concurrency) + 8,
        retries={"mode": "standard", "total_max_attempts": 3},
    )
    session = get_session()
    async with session.create_client(
        "sqs", region_name=REGION, endpoint_url=options.endpoint, config=config
    ) as sqs:
        url = (await sqs.get_queue_url(QueueName=options.queue))["QueueUrl"]

        async def receive() -> list[tuple[str, str]]:
            response = await sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=WAIT_TIME,
                VisibilityTimeout=30,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            return [(m["Body"], m["ReceiptHandle"]) for m in response.get("Messages", ())]

        async def delete(handles: list[str]) -> int:
            response = await sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)],
            )
            return len(response.get("Failed", ()))

        return await bare_loop(options, window, tally, finished, receive, delete)


async def aiohttp_loop(
    options: Options, window: Window, tally: Tally, finished: asyncio.Event
) -> dict[str, Any]:
    import json

    import aiohttp

    dumps: Callable[[Any], bytes]
    loads: Callable[[bytes], Any]
    try:
        import orjson
    except ImportError:  # pragma: no cover - depends on the environment
        dumps = lambda value: json.dumps(value, separators=(",", ":")).encode()  # noqa: E731
        loads = json.loads
    else:
        dumps, loads = orjson.dumps, orjson.loads

    endpoint = options.endpoint.rstrip("/") + "/"

    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=poller_count(options.concurrency) + 8),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=WAIT_TIME + 15),
    ) as session:

        async def call(action: str, payload: dict[str, Any]) -> Any:
            headers = {
                "X-Amz-Target": f"AmazonSQS.{action}",
                "Content-Type": "application/x-amz-json-1.0",
                # Not a signature: a constant that moto needs to route the request to SQS.
                "Authorization": UNSIGNED_AUTHORIZATION,
            }
            async with session.post(endpoint, data=dumps(payload), headers=headers) as response:
                raw = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{action}: HTTP {response.status}: {raw[:200]!r}")
            return loads(raw)

        url = (await call("GetQueueUrl", {"QueueName": options.queue}))["QueueUrl"]

        async def receive() -> list[tuple[str, str]]:
            response = await call(
                "ReceiveMessage",
                {
                    "QueueUrl": url,
                    "MaxNumberOfMessages": 10,
                    "WaitTimeSeconds": WAIT_TIME,
                    "VisibilityTimeout": 30,
                    "MessageSystemAttributeNames": ["All"],
                    "MessageAttributeNames": ["All"],
                },
            )
            return [(m["Body"], m["ReceiptHandle"]) for m in response.get("Messages", ())]

        async def delete(handles: list[str]) -> int:
            response = await call(
                "DeleteMessageBatch",
                {
                    "QueueUrl": url,
                    "Entries": [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)],
                },
            )
            return len(response.get("Failed", ()))

        return await bare_loop(options, window, tally, finished, receive, delete)


async def transport_alone(
    options: Options,
    window: Window,
    tally: Tally,
    finished: asyncio.Event,
    receive: Receive,
    delete: Delete,
) -> dict[str, Any]:
    """Pollers that each receive ten, run the handler on each in turn, and delete them
    before polling again: a transport's cost with no loop (queues, handler tasks) around it.
    Handlers run one after another, so only a handler that never waits gives a fair figure."""
    handler = ASYNC_HANDLERS[options.handler]
    loop = asyncio.get_running_loop()
    receiving: set[asyncio.Task[None]] = set()  # the pollers a stop may cancel
    stopping = False
    failed = 0

    async def poll() -> None:
        nonlocal failed
        poller = asyncio.current_task()
        assert poller is not None
        while not stopping:
            receiving.add(poller)
            try:
                messages = await receive()
            finally:
                receiving.discard(poller)
            for body, _ in messages:
                tally.begin()
                await handler(body)
                tally.done()
            if messages:
                failed += await delete([handle for _, handle in messages])

    pollers = [loop.create_task(poll()) for _ in range(poller_count(options.concurrency))]
    await asyncio.sleep(SETTLE)  # let every poller send its first (waiting) poll
    window.start(options.start_url, options.messages)
    await _until_done(options, window, finished)
    stopping = True  # a poller deleting finishes that; one waiting on a poll is cancelled
    for task in receiving:
        task.cancel()
    await asyncio.gather(*pollers, return_exceptions=True)
    return {"delete_failures": failed}


def _lean_calls(options: Options) -> AbstractAsyncContextManager[tuple[Receive, Delete]]:
    """`benchmarks/lean_floor.py`'s (receive, delete) over the lean transport, or an exit
    saying that the transport is not in this tree."""
    try:
        from .lean_floor import lean_calls  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise SystemExit(
            f"{options.contender}: the lean transport is not in this tree "
            f"(benchmarks/lean_floor.py with lean_calls: {exc})"
        ) from None
    calls: AbstractAsyncContextManager[tuple[Receive, Delete]] = lean_calls(options)
    return calls


async def lean_floor(
    options: Options, window: Window, tally: Tally, finished: asyncio.Event
) -> dict[str, Any]:
    """The bare loop over the lean transport: `lean_calls(options)`, an async context
    manager of `benchmarks/lean_floor.py`, yields its (receive, delete) as `bare_loop` takes
    them (``ReceiveMessage`` of ten with `WAIT_TIME`; ``DeleteMessageBatch``)."""
    async with _lean_calls(options) as (receive, delete):
        return await bare_loop(options, window, tally, finished, receive, delete)


async def lean_transport(
    options: Options, window: Window, tally: Tally, finished: asyncio.Event
) -> dict[str, Any]:
    """The lean transport alone, with no loop around it (`transport_alone`)."""
    async with _lean_calls(options) as (receive, delete):
        return await transport_alone(options, window, tally, finished, receive, delete)


CONTENDERS: dict[str, Consume] = {
    "aiosqsworker": aiosqsworker_fast,
    "aiosqsworker-botocore": aiosqsworker_botocore,
    "aiosqsworker-def": aiosqsworker_def,
    "aiobotocore-loop": aiobotocore_loop,
    "aiohttp-loop": aiohttp_loop,
    "aiohttp-loop-asyncio": aiohttp_loop,  # the harness runs it on asyncio's loop
    "lean-floor": lean_floor,
    "lean-transport": lean_transport,
}


def main(argv: list[str] | None = None) -> None:
    options = parse_options(argv, list(CONTENDERS), "python -m benchmarks.contender")
    window = Window()
    if options.profile:
        profiler = cProfile.Profile()
        window.on_start.append(profiler.enable)
        window.on_stop.append(profiler.disable)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    if options.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            options.loop = "asyncio"
        else:
            loop_factory = uvloop.new_event_loop
    consume = CONTENDERS[options.contender]
    result: dict[str, Any] = {}

    async def run() -> None:
        finished = asyncio.Event()
        loop = asyncio.get_running_loop()

        # The last handler may end in a thread (``aiosqsworker-def``): wake the loop safely.
        def on_done() -> None:
            loop.call_soon_threadsafe(finished.set)

        tally = Tally(options.messages, window, on_done)
        result.update(await consume(options, window, tally, finished))
        emit(options.contender, tally, window, loop=options.loop, **result)

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(run())
    if options.profile:
        profiler.dump_stats(options.profile)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
