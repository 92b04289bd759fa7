"""Autoscaling: how many workers a queue needs, from what SQS and the workers measure.

Conservation of messages gives the arrival rate without CloudWatch: over an interval, what
arrived is what the workers completed plus the growth of the queue (visible + in flight +
delayed). With the per-worker throughput measured from the workers' own counters (their
``/metrics``) or given by the operator, the desired count is what keeps up with arrivals and
drains the visible backlog within the target latency:

    desired = ceil((arrival_rate + visible_backlog / target_latency) / per_worker_rate)

clamped to [minimum, maximum], and at least one worker while messages are visible or in
flight (a minimum of 0 scales to zero only an empty queue). A worker's rate is measured only
while a backlog kept it busy (`measured_rate`; `RateMemory` keeps the best seen). `recommend`
is that formula as a pure function; `observe` samples SQS (and optionally the workers) to
feed it.
"""

from __future__ import annotations

import math
import re
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

import anyio

from .._sqs.base import SQSClient

__all__ = [
    "QueueSample",
    "RateMemory",
    "Recommendation",
    "measured_rate",
    "observe",
    "recommend",
    "simple_policy",
]


@dataclass(frozen=True, slots=True)
class QueueSample:
    """SQS's approximate counts at one moment, and the workers' completions so far."""

    at: float
    visible: int
    in_flight: int
    delayed: int
    completed: float | None = None  # sum of the workers' succeeded+failed counters
    workers: int | None = None  # workers whose metrics answered

    @property
    def total(self) -> int:
        return self.visible + self.in_flight + self.delayed


@dataclass(frozen=True, slots=True)
class Recommendation:
    desired: int
    visible: int
    in_flight: int
    arrival_rate: float | None
    completion_rate: float | None
    per_worker_rate: float | None
    reason: str


def _bounded(desired: int, last: QueueSample, minimum: int, maximum: int) -> int:
    """`desired` within [minimum, maximum]; never 0 while messages wait or are held: with
    `minimum=0`, zero workers would leave a backlog for ever, or stop the workers that hold
    the leases of the messages in flight."""
    floor = max(minimum, 1) if last.visible or last.in_flight else minimum
    return min(maximum, max(floor, desired))


def simple_policy(backlog: int, *, messages_per_worker: int, minimum: int, maximum: int) -> int:
    """The usual "one worker per N queued messages" rule, for comparison."""
    return max(minimum, min(maximum, math.ceil(backlog / messages_per_worker)))


def measured_rate(first: QueueSample, last: QueueSample) -> float | None:
    """Messages/s one worker completed between two samples, if that measures its capacity.

    Only while a backlog waited throughout were the workers busy: otherwise they completed
    what arrived, which says nothing of what they could do.
    """
    if first.completed is None or last.completed is None or not last.workers:
        return None
    if first.visible == 0 or last.visible == 0:
        return None
    elapsed = last.at - first.at
    if elapsed <= 0:
        return None
    return max(0.0, last.completed - first.completed) / elapsed / last.workers


class RateMemory:
    """The best per-worker rate measured so far (capacity is what busy workers achieve)."""

    def __init__(self, initial: float | None = None) -> None:
        self.rate = initial

    def update(self, first: QueueSample, last: QueueSample) -> float | None:
        measured = measured_rate(first, last)
        if measured is not None and measured > 0:
            self.rate = max(self.rate or 0.0, measured)
        return self.rate


def recommend(
    first: QueueSample,
    last: QueueSample,
    *,
    target_latency: float,
    minimum: int,
    maximum: int,
    per_worker_rate: float | None = None,
) -> Recommendation:
    """Workers needed to keep up with arrivals and drain the backlog within `target_latency`.

    `per_worker_rate` is what one busy worker completes per second (from `RateMemory`, or
    given); without it, a waiting backlog doubles the current count.
    """
    elapsed = max(last.at - first.at, 1e-9)
    completion_rate: float | None = None
    if first.completed is not None and last.completed is not None:
        completion_rate = max(0.0, (last.completed - first.completed) / elapsed)
    growth = (last.total - first.total) / elapsed
    arrival_rate = max(0.0, growth + completion_rate) if completion_rate is not None else None
    current = last.workers or minimum
    if not per_worker_rate:
        desired = current * 2 if last.visible else current
        return Recommendation(
            desired=_bounded(desired, last, minimum, maximum),
            visible=last.visible,
            in_flight=last.in_flight,
            arrival_rate=arrival_rate,
            completion_rate=completion_rate,
            per_worker_rate=None,
            reason="no per-worker rate known yet (give --per-worker-rate, or --worker-metrics "
            "while a backlog keeps the workers busy)"
            + ("; backlog waiting: doubling" if last.visible else "; holding"),
        )
    inflow = arrival_rate if arrival_rate is not None else max(0.0, growth)
    needed = (inflow + last.visible / target_latency) / per_worker_rate
    desired = _bounded(math.ceil(needed - 1e-9), last, minimum, maximum)
    return Recommendation(
        desired=desired,
        visible=last.visible,
        in_flight=last.in_flight,
        arrival_rate=arrival_rate,
        completion_rate=completion_rate,
        per_worker_rate=per_worker_rate,
        reason=(
            f"({inflow:.1f} msg/s arriving + {last.visible} queued / {target_latency:g} s) / "
            f"{per_worker_rate:.1f} msg/s per worker = {needed:.2f}"
        ),
    )


_COMPLETED = re.compile(
    r"^aiosqsworker_messages_(?:succeeded|failed)_total(?:\{[^}]*\})?\s+([0-9.eE+-]+)$", re.M
)


def _scrape_completed(url: str) -> float | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    return sum(float(value) for value in _COMPLETED.findall(text))


async def observe(
    client: SQSClient, queue_url: str, worker_metrics: Sequence[str] = ()
) -> QueueSample:
    """One sample of the queue's counts (and of the workers' completions, if given)."""
    attributes = await client.get_queue_attributes(queue_url)
    completed: float | None = None
    answered = 0
    if worker_metrics:
        scraped = [await anyio.to_thread.run_sync(_scrape_completed, url) for url in worker_metrics]
        values = [value for value in scraped if value is not None]
        answered = len(values)
        completed = sum(values) if values else None
    return QueueSample(
        at=anyio.current_time(),
        visible=int(attributes.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
        completed=completed,
        workers=answered or None,
    )
