"""A progress line for interactive runs: rate, in flight, backlog, failures, flow control.

`report_progress` prints one line every `interval` seconds from `App.statistics()` and, every
few lines, the queues' backlog (one GetQueueAttributes per queue: cheap, but not free, hence
not on every line). The CLI runs it with ``--progress`` (the default when stderr is a
terminal).
"""

from __future__ import annotations

import sys
from typing import TextIO

import anyio

from .._consumer.stats import ConsumerStatistics
from .probe import AppProbe

__all__ = ["format_progress", "report_progress"]


def format_progress(
    previous: dict[str, ConsumerStatistics],
    current: dict[str, ConsumerStatistics],
    elapsed: float,
    backlog: dict[str, int],
) -> str:
    """One line: for each consumer, messages/s over `elapsed`, in flight, failures, backlog,
    and its flow control: paused, the circuit breaker, the rate limit, the polls kept."""
    parts = []
    for name, stats in current.items():
        before = previous.get(name)
        done = (
            stats.succeeded + stats.failed - ((before.succeeded + before.failed) if before else 0)
        )
        rate = done / elapsed if elapsed > 0 else 0.0
        part = (
            f"{name}: {rate:7.1f} msg/s, {stats.in_flight} in flight, "
            f"{stats.succeeded} ok, {stats.failed} failed"
        )
        if name in backlog:
            part += f", backlog {backlog[name]}"
        if stats.paused:
            part += ", paused"
        if stats.breaker != "closed":
            part += f", circuit breaker {stats.breaker}"
        if stats.max_rate is not None:
            part += f", at most {stats.max_rate:g}/s"
        part += f", {stats.polling_width} poll{'s' if stats.polling_width != 1 else ''}"
        parts.append(part)
    return " | ".join(parts) if parts else "starting..."


async def report_progress(
    app: AppProbe, *, interval: float = 5.0, stream: TextIO | None = None
) -> None:
    """Print a progress line every `interval` seconds until cancelled."""
    out = stream or sys.stderr
    previous: dict[str, ConsumerStatistics] = {}
    backlog: dict[str, int] = {}
    last = anyio.current_time()
    lines = 0
    while True:
        await anyio.sleep(interval)
        now = anyio.current_time()
        if lines % 6 == 0:
            backlog = await app.backlog()
        current = app.statistics()
        print(format_progress(previous, current, now - last, backlog), file=out, flush=True)
        previous, last, lines = current, now, lines + 1
