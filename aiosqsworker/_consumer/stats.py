"""Counters each consumer keeps, and the frozen snapshot `App.statistics()` hands out."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field, fields

__all__ = [
    "ConsumerStatistics",
    "Counters",
    "LatencyHistogram",
    "TenantStatistics",
    "record_ages",
]

_SMALLEST = 0.001  # 1 ms
_GROWTH = 1.25  # each bucket 25 % wider than the last: quantiles within ~12 %
_BUCKETS = 80  # up to about 15 hours


class LatencyHistogram:
    """Handler durations in logarithmic buckets: O(1) to record, quantiles on demand."""

    __slots__ = ("_counts", "count")

    def __init__(self) -> None:
        self._counts = [0] * _BUCKETS
        self.count = 0

    def record(self, seconds: float) -> None:
        if seconds <= _SMALLEST:  # most handlers, under load: no logarithm to take
            self._counts[0] += 1
        else:
            index = math.ceil(math.log(seconds / _SMALLEST, _GROWTH))
            self._counts[min(index, _BUCKETS - 1)] += 1
        self.count += 1

    def quantile(self, q: float) -> float | None:
        """The upper bound of the bucket holding quantile `q`, or None with no samples."""
        if not self.count:
            return None
        rank = q * self.count
        seen = 0
        for index, count in enumerate(self._counts):
            seen += count
            if seen >= rank:
                return _SMALLEST * _GROWTH**index
        return _SMALLEST * _GROWTH ** (_BUCKETS - 1)


@dataclass(slots=True)
class Counters:
    """Mutable counters, owned by one consumer's parts (single event loop: no locking)."""

    received: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    released: int = 0
    deleted: int = 0
    delete_failures: int = 0
    visibility_failures: int = 0
    leases_extended: int = 0
    leases_lost: int = 0
    lease_extension_errors: int = 0
    polls: int = 0
    poll_errors: int = 0
    deletes_unconfirmed: int = 0
    running: int = 0
    loop_blocks: int = 0
    loop_blocked_seconds: float = 0.0
    duplicates_skipped: int = 0
    abandoned_threads: int = 0
    last_poll_at: float | None = None  # wall clock (time.time()) of the last completed poll
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    #: Per-message lag (since SentTimestamp) and dwell (since receipt) when the handler
    #: starts; None unless asked for (`App(message_ages=True)`): nothing per message then.
    lag: LatencyHistogram | None = None
    dwell: LatencyHistogram | None = None


def record_ages(
    counters: Counters, sent_timestamp: str | None, received_at: float, started: float
) -> None:
    """A handler starts: its message's lag (now, wall clock, less SQS's ``SentTimestamp`` in
    milliseconds) and dwell (`started` less `received_at`, on the loop's clock). SQS does
    not say when a message last became visible: its receipt here is the nearest known."""
    if counters.dwell is not None:
        counters.dwell.record(max(0.0, started - received_at))
    if counters.lag is not None and sent_timestamp is not None:
        with contextlib.suppress(ValueError):  # not a timestamp: no lag to tell
            counters.lag.record(max(0.0, time.time() - int(sent_timestamp) / 1000))


@dataclass(frozen=True, slots=True)
class TenantStatistics:
    """One tenant's messages in a consumer (or, as ``"other"``, those of every tenant not
    among the busiest).

    Attributes:
        tenant: the MessageGroupId (``""`` for messages without one), or ``"other"``.
        running: handlers running now.
        waiting: messages buffered, waiting for the tenant's turn.
        handled: handlers that ended (whatever their outcome).
        surplus: messages made visible again because the tenant had enough waiting.
    """

    tenant: str
    running: int
    waiting: int
    handled: int
    surplus: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsumerStatistics:
    """A consumer's counters at one moment.

    Attributes:
        name: the consumer's name.
        queue: the queue as configured (name or URL).
        received: messages received from SQS.
        succeeded: messages whose handler returned and whose delete SQS confirmed (a
            message whose lease was lost before its delete is counted under leases_lost).
        failed: handlers that raised (each is retried or, at last, dead-lettered).
        retried: messages whose visibility was set for a retry after a failure.
        dead_lettered: messages the framework moved to the dead-letter queue itself (a
            `Reject`, or a failure on the last receive the redrive policy allows).
        released: messages made visible again at once (shutdown, buffered, late polls).
        deleted: messages SQS confirmed deleted.
        delete_failures: delete entries SQS refused for good (the message may come back).
        deletes_unconfirmed: deletes whose outcome is unknown: an attempt's answer was lost
            (a connection reset, a call that timed out), so the message may or may not
            have been deleted, and may come back.
        visibility_failures: visibility changes SQS refused for good.
        leases_extended: visibility extensions SQS confirmed.
        leases_lost: leases that ran out under us: an extension, a delete or a visibility
            change refused because the receipt handle was no longer valid.
        lease_extension_errors: extension calls that failed as a whole, and entries of them
            refused or left out of the answer (all retried).
        polls: ReceiveMessage calls that completed.
        poll_errors: ReceiveMessage calls that failed (retried after a back-off).
        in_flight: messages received and not yet finished, buffered ones included.
        buffered: messages received and waiting for a free handler.
        running: handlers running now.
        loop_blocks: times the event loop stood still past the watchdog's threshold while
            this consumer's handler was on it (`App(watchdog=...)`).
        loop_blocked_seconds: how long those stalls lasted in all.
        duplicates_skipped: deliveries whose idempotency key was done already: deleted
            without running the handler.
        abandoned_threads: threads of a ``def`` handler given up (a timeout, a lost lease,
            a stop) that still run now. Each keeps its place among the consumer's
            `concurrency` threads until it returns: when they fill them all, no new handler
            starts until one returns.
        last_poll_at: when the last ReceiveMessage call completed (seconds since the epoch),
            or None before the first.
        latency_p50, latency_p90, latency_p99: handler durations in seconds (upper bounds of
            logarithmic buckets 25 % wide), or None before the first handler ended.
        lag_p50, lag_p90, lag_p99: seconds from a message's send (``SentTimestamp``) to its
            handler's start; None unless the app keeps them (``App(message_ages=True)``).
        dwell_p50, dwell_p90, dwell_p99: seconds from a message's receipt to its handler's
            start (waiting in the buffer); None unless the app keeps them.
        concurrency: most handlers running at once now (`App.set_concurrency` changes it).
        max_rate: most handler starts per second, or None without a limit.
        paused: whether the consumer is paused (`App.pause`): no poll, no new handler.
        polling_width: long polls kept now, open or waiting for room: one on an idle
            queue, more as polls come back full.
        tenants: with ``max_per_tenant``, the busiest tenants (`TenantStatistics`: running,
            waiting, handled, surplus), then the others summed as ``"other"``; else empty.
        breaker: the circuit breaker's state: ``"closed"``, ``"open"`` or ``"half-open"``.
        breaker_trips: times the circuit breaker opened.
        breaker_held: failures counted as the dependency's, not the message's: retried
            after the cool-down, never dead-lettered for it.
    """

    name: str
    queue: str
    received: int
    succeeded: int
    failed: int
    retried: int
    dead_lettered: int
    released: int
    deleted: int
    delete_failures: int
    visibility_failures: int
    leases_extended: int
    leases_lost: int
    lease_extension_errors: int
    polls: int
    poll_errors: int
    deletes_unconfirmed: int
    duplicates_skipped: int
    in_flight: int
    buffered: int
    running: int
    loop_blocks: int
    loop_blocked_seconds: float
    abandoned_threads: int
    last_poll_at: float | None
    latency_p50: float | None
    latency_p90: float | None
    latency_p99: float | None
    lag_p50: float | None
    lag_p90: float | None
    lag_p99: float | None
    dwell_p50: float | None
    dwell_p90: float | None
    dwell_p99: float | None
    concurrency: int
    max_rate: float | None
    paused: bool
    polling_width: int
    tenants: tuple[TenantStatistics, ...] = ()
    breaker: str = "closed"
    breaker_trips: int = 0
    breaker_held: int = 0

    @classmethod
    def capture(
        cls,
        name: str,
        queue: str,
        counters: Counters,
        *,
        buffered: int,
        concurrency: int,
        max_rate: float | None,
        paused: bool,
        polling_width: int,
        tenants: tuple[TenantStatistics, ...] = (),
        breaker: str = "closed",
        breaker_trips: int = 0,
        breaker_held: int = 0,
    ) -> ConsumerStatistics:
        """A snapshot of `counters`, with `buffered` messages waiting for a handler and the
        consumer's flow control as it is now."""
        values = {
            f.name: getattr(counters, f.name)
            for f in fields(Counters)
            if f.name not in ("latency", "lag", "dwell")
        }
        latency = counters.latency
        lag, dwell = counters.lag, counters.dwell
        return cls(
            name=name,
            queue=queue,
            buffered=buffered,
            in_flight=buffered + counters.running,  # held messages; reserved room is not one
            latency_p50=latency.quantile(0.5),
            latency_p90=latency.quantile(0.9),
            latency_p99=latency.quantile(0.99),
            lag_p50=lag.quantile(0.5) if lag else None,
            lag_p90=lag.quantile(0.9) if lag else None,
            lag_p99=lag.quantile(0.99) if lag else None,
            dwell_p50=dwell.quantile(0.5) if dwell else None,
            dwell_p90=dwell.quantile(0.9) if dwell else None,
            dwell_p99=dwell.quantile(0.99) if dwell else None,
            concurrency=concurrency,
            max_rate=max_rate,
            paused=paused,
            polling_width=polling_width,
            tenants=tenants,
            breaker=breaker,
            breaker_trips=breaker_trips,
            breaker_held=breaker_held,
            **values,
        )
