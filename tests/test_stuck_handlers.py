"""Handlers that hang: a loop blocked by one handler call after another."""

from __future__ import annotations

import logging
import time

import anyio
import pytest

from aiosqsworker._run.watchdog import LoopWatchdog, code_of

# The loop watchdog.


async def block_the_loop(seconds: float) -> None:
    """An async handler that blocks its loop, as a synchronous SDK call would."""
    time.sleep(seconds)  # noqa: ASYNC251 - blocking the loop is the point


async def test_the_watchdog_names_and_counts_back_to_back_stalls_each_on_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two calls of an async handler block the loop 1.5 s each, the second right after the
    first with no turn of the loop in between (a slot that takes its next message at once).
    Two stalls are named and counted, each about 1.5 s.

    Naive code it catches: a watchdog that ends a stall only when its heartbeat runs again:
    it sees one stall of 3 s charged to the first call, and never names the second.
    """
    stalls: list[tuple[str | None, float]] = []
    code = code_of(block_the_loop)
    assert code is not None
    handlers = {code: "blocker"}
    caplog.set_level(logging.WARNING, logger="aiosqsworker.watchdog")
    with LoopWatchdog(0.5, handlers, lambda consumer, s: stalls.append((consumer, s))):
        await anyio.sleep(0.3)
        await block_the_loop(1.5)
        await block_the_loop(1.5)
        await anyio.sleep(0.6)  # the loop turns: the second stall ends and is counted
    assert [consumer for consumer, _ in stalls] == ["blocker", "blocker"], stalls
    assert all(1.2 <= seconds <= 2.0 for _, seconds in stalls), stalls
    named = [r.message for r in caplog.records if "has not turned" in r.message]
    assert len(named) == 2, named
    assert all("consumer 'blocker' is running handler" in message for message in named)
