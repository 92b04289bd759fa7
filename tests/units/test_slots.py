"""The middleware chain (`_consumer/slots.py`).

Pure decisions and small parts, called directly: no server here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from aiosqsworker import (
    Reject,
)
from aiosqsworker._consumer.slots import chain_middleware

from .test_deadletter import PoisonError

Call = Callable[[Any], Awaitable[object]]


def layer(name: str, events: list[str]) -> Callable[[Any, Call], Awaitable[object]]:
    async def middleware(item: Any, call_next: Call) -> object:
        events.append(f"{name}>")
        try:
            return await call_next(item)
        finally:
            events.append(f"<{name}")

    return middleware


async def test_the_first_middleware_is_the_outermost() -> None:
    events: list[str] = []

    async def handler(item: Any) -> object:
        events.append(f"handler {item}")
        return "result"

    chained = chain_middleware(
        [layer("1", events), layer("2", events), layer("3", events)], handler
    )
    assert await chained("m") == "result"
    assert events == ["1>", "2>", "3>", "handler m", "<3", "<2", "<1"]
    assert chain_middleware([], handler) is handler


async def test_middleware_may_change_the_call_stop_it_or_see_its_failure() -> None:
    events: list[str] = []
    seen_errors: list[BaseException] = []

    async def handler(item: Any) -> object:
        if item == "boom":
            raise PoisonError("handler failed")
        return f"handled {item}"

    async def upper(item: Any, call_next: Call) -> object:
        return await call_next(str(item).upper())

    async def guard(item: Any, call_next: Call) -> object:
        if item == "SKIP":
            return "skipped"
        try:
            return await call_next(item)
        except PoisonError as exc:
            seen_errors.append(exc)
            raise

    async def refuse(item: Any, call_next: Call) -> object:
        raise Reject("refused by middleware")

    chained = chain_middleware([layer("log", events), upper, guard], handler)
    assert await chained("x") == "handled X"
    assert await chained("skip") == "skipped"
    with pytest.raises(PoisonError):
        await chain_middleware([guard], handler)("boom")
    assert len(seen_errors) == 1
    called: list[object] = []

    async def recording_handler(item: Any) -> object:
        called.append(item)
        return None

    with pytest.raises(Reject, match="refused by middleware"):
        await chain_middleware([layer("log", events), refuse], recording_handler)("y")
    assert called == []
    assert events == ["log>", "<log", "log>", "<log", "log>", "<log"]
