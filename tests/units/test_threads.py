"""`HandlerThreads` and `TimeLimit` on their own: the bound on a ``def`` handler's threads,
and what a timeout says about where the handler was."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from typing import cast

import anyio
import anyio.from_thread
import pytest

from aiosqsworker._consumer.stats import Counters
from aiosqsworker._consumer.threads import HandlerThreads, running_handlers
from aiosqsworker._consumer.timeouts import StuckAt, TimeLimit, is_timeout, timeout_site

from ..kit import eventually


def wait_for(gate: threading.Event) -> str:
    gate.wait(10)  # blocks its thread: the line a timeout must point at
    return "returned"


async def waits_for(gate: anyio.Event) -> None:
    await gate.wait()  # the line a timeout must point at


def line_of(function: object, text: str) -> int:
    code = function.__code__  # type: ignore[attr-defined]
    with open(code.co_filename) as source:
        lines = source.read().splitlines()
    return next(n for n, line in enumerate(lines, 1) if text in line and n > code.co_firstlineno)


async def test_a_thread_past_its_timeout_keeps_its_place_until_it_returns() -> None:
    """Catches: giving an abandoned thread's place back at once (the next call starts a
    second thread beside the hung one), and a bare TimeoutError that says nothing."""
    gate = threading.Event()
    counters = Counters()
    threads = HandlerThreads(
        wait_for,
        bound=lambda: 1,
        label="handler tests.wait_for of consumer 'c'",
        consumer="c",
        counters=counters,
        timeout=0.2,
    )
    with pytest.raises(TimeoutError) as raised:
        await threads.run(gate)
    error = raised.value
    assert (
        str(error) == "handler tests.wait_for of consumer 'c' timed out after 0.2 s (timeout=0.2)"
    )
    assert is_timeout(error)
    assert isinstance(error.__cause__, StuckAt)
    assert timeout_site(error) == f"{__file__}:{line_of(wait_for, 'gate.wait(10)')} in wait_for"
    assert (threads.alive, threads.abandoned, counters.abandoned_threads) == (1, 1, 1)
    assert running_handlers()["handler tests.wait_for of consumer 'c'"] == 1

    result: list[object] = []

    async def next_call() -> None:
        result.append(await threads.run(threading.Event()))  # would block: must wait first

    async with anyio.create_task_group() as tg:
        tg.start_soon(next_call)
        await anyio.sleep(0.3)
        assert not result, "a second thread started beside the hung one"
        assert threads.alive == 1
        tg.cancel_scope.cancel()  # the waiting call never began: nothing to abandon
    assert (threads.alive, threads.abandoned) == (1, 1)
    gate.set()
    await eventually(lambda: threads.alive == 0)
    assert (threads.abandoned, counters.abandoned_threads) == (0, 0)
    assert not running_handlers()["handler tests.wait_for of consumer 'c'"]


async def test_the_bound_follows_the_consumers_live_concurrency() -> None:
    """Catches: a bound fixed at the configured concurrency: after `set_concurrency` raised
    it, the new slots would wait for a thread that no one frees."""
    limit = [1]
    threads = HandlerThreads(
        wait_for, bound=lambda: limit[0], label="h", consumer="c", counters=Counters()
    )
    gates = [threading.Event(), threading.Event()]
    async with anyio.create_task_group() as tg:
        tg.start_soon(threads.run, gates[0])
        await anyio.sleep(0.1)
        limit[0] = 2
        with anyio.fail_after(5):
            gates[1].set()
            assert await threads.run(gates[1]) == "returned"
        gates[0].set()
    assert threads.alive == 0


async def test_an_async_handler_past_its_time_limit_points_at_its_await() -> None:
    """Catches: anyio's fail_after raising a bare TimeoutError whose traceback ends in its
    own fail_at, with no word of the handler."""
    limit = TimeLimit(0.1, "handler tests.waits_for of consumer 'c'", waits_for)
    call = limit.around(waits_for)
    with pytest.raises(TimeoutError) as raised:
        await call(anyio.Event())
    error = raised.value
    assert "timed out after 0.1 s (timeout=0.1)" in str(error)
    assert (
        timeout_site(error) == f"{__file__}:{line_of(waits_for, 'await gate.wait()')} in waits_for"
    )


async def test_a_timeout_error_the_handler_raises_itself_is_not_a_time_limit() -> None:
    async def raises(item: object) -> None:
        raise TimeoutError("upstream timed out")

    with pytest.raises(TimeoutError) as raised:
        await TimeLimit(5, "h").around(raises)(None)
    assert str(raised.value) == "upstream timed out"
    assert not is_timeout(raised.value)


request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


async def test_the_pool_keeps_its_threads_within_the_bound_and_hands_back_every_outcome() -> None:
    """Catches: a pool that starts a thread for each call it cannot hand to an idle one at
    once (more threads than the consumer's concurrency), and outcomes settled in one loop
    callback losing all but the first call that ended in that turn."""
    idents: set[int] = set()

    def work(n: int) -> int:
        idents.add(threading.get_ident())
        time.sleep(0.001)
        return n * 2

    threads = HandlerThreads(work, bound=lambda: 4, label="h", consumer="c", counters=Counters())
    with anyio.fail_after(20):
        results = await asyncio.gather(*(threads.run(n) for n in range(300)))
    assert results == [n * 2 for n in range(300)]
    assert len(idents) <= 4
    assert threads.threads <= 4
    assert threads.alive == 0


async def test_a_call_runs_in_the_callers_context_and_can_reach_the_loop() -> None:
    """Catches: a pool thread calling the handler in its own context (a contextvar the
    middleware set, say a request id, is lost) or without anyio's loop token (the documented
    `anyio.from_thread.run(app.send, ...)` fails with "Not running inside an AnyIO worker
    thread")."""

    async def on_the_loop(value: str) -> str:
        return f"loop saw {value}"

    def handler(value: str) -> tuple[str, str]:
        return request_id.get(), anyio.from_thread.run(on_the_loop, value)

    threads = HandlerThreads(handler, bound=lambda: 2, label="h", consumer="c", counters=Counters())

    async def one(n: int) -> tuple[str, str]:
        request_id.set(f"req-{n}")
        return cast(tuple[str, str], await threads.run(str(n)))

    with anyio.fail_after(10):
        results = await asyncio.gather(*(one(n) for n in range(5)))
    assert results == [(f"req-{n}", f"loop saw {n}") for n in range(5)]


async def test_a_handlers_exception_reaches_its_caller_and_the_thread_serves_on() -> None:
    """Catches: a pool thread that dies with the handler's exception (the next call waits
    for a thread that never takes it) or a StopIteration the future cannot carry."""

    def handler(kind: str) -> str:
        if kind == "value":
            raise ValueError("bad body")
        if kind == "stop":
            raise StopIteration
        return "fine"

    threads = HandlerThreads(handler, bound=lambda: 1, label="h", consumer="c", counters=Counters())
    with anyio.fail_after(10):
        with pytest.raises(ValueError, match="bad body"):
            await threads.run("value")
        with pytest.raises(RuntimeError, match="StopIteration"):
            await threads.run("stop")
        assert await threads.run("ok") == "fine"
    assert threads.threads == 1
    assert threads.alive == 0
