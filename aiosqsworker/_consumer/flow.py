"""Flow control: what a consumer may receive and start, decided before ReceiveMessage.

`Capacity` bounds what a consumer holds. `Flow` stands in front of it and adds what a
setting or an operator asks for:

- **pause**: no poll starts and no message starts while paused; what the receiver reserves
  waits for `resume` (the pipeline hands back what it holds that has not started);
- **a rate limit** (`max_rate`): handler starts are paced by a token bucket (`TokenBucket`,
  a tenth of a second's worth of burst), and the messages received but not yet started are
  bounded by a second's worth of the rate (`ahead_limit`). That bound is reserved with the
  room, before the poll, so a limited consumer never sits on messages that other workers
  could take: it receives about as fast as it starts.

- **a circuit breaker's hold** (`hold`, `probe`, `unhold`; the breaker is `breaker.py`):
  like a pause, no poll starts while it holds; half-open, one reservation of one message
  (the probe) is let through. `epoch` changes at each, so that a poll reserved before
  them hands its messages back (it would otherwise run them as extra probes).

The limit belongs here, before the I/O, rather than after it: a bounded wait after
ReceiveMessage would hold messages whose visibility already runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Callable

from .buffer import Capacity
from .clock import now

__all__ = ["Flow", "StartPacer", "TokenBucket", "ahead_limit", "burst_allowance"]

#: A rate limit lets this many seconds' worth of starts through at once (at least one).
BURST_SECONDS = 0.1
#: A rate-limited consumer holds at most this many seconds' worth of unstarted messages.
AHEAD_SECONDS = 1.0
_EPSILON = 1e-9


def burst_allowance(rate: float) -> float:
    """Starts a rate limit lets through at once: a tenth of a second's worth, at least 1."""
    return max(1.0, rate * BURST_SECONDS)


def ahead_limit(rate: float) -> int:
    """Most messages a rate-limited consumer holds unstarted: a second's worth, at least 1."""
    return max(1, math.ceil(rate * AHEAD_SECONDS))


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; it starts full.

    Pure bookkeeping: the caller passes the clock, so tests can drive it directly.
    """

    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, at: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = at

    def take(self, at: float) -> float:
        """Take a token (returns 0.0), or return the seconds until one is there."""
        self._tokens = min(self.burst, self._tokens + (at - self._stamp) * self.rate)
        self._stamp = at
        if self._tokens >= 1.0 - _EPSILON:  # a token short by a rounding error is a token
            self._tokens = max(0.0, self._tokens - 1.0)
            return 0.0
        return (1.0 - self._tokens) / self.rate

    def put_back(self) -> None:
        """Return a token taken and not used (its taker was cancelled)."""
        self._tokens = min(self.burst, self._tokens + 1.0)


class StartPacer:
    """Permits to start a handler, `rate` a second, granted in the order they were asked.

    One timer for the whole queue of waiters, not one per waiter: the head is granted when
    its token is due, then the next one is considered.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._bucket = TokenBucket(rate, burst_allowance(rate), now())
        self._waiters: deque[asyncio.Future[bool]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._waiters)

    async def permit(self) -> bool:
        """Wait for a start permit: True, or False when `refuse_all` came first."""
        if not self._waiters and self._bucket.take(now()) == 0.0:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._grant()
        try:
            return await waiter
        except BaseException:
            if not waiter.done() or waiter.cancelled():
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            elif waiter.result():
                self._bucket.put_back()  # granted, then cancelled before it could start
                self._grant()
            raise

    def refuse_all(self) -> None:
        """Answer every waiting `permit` with False (a pause, or a stop)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(False)

    def _grant(self) -> None:
        if self._timer is not None:
            return  # the head is already waiting for its token
        waiters = self._waiters
        while waiters:
            if waiters[0].done():  # cancelled: it removes itself, or is removed here
                waiters.popleft()
                continue
            delay = self._bucket.take(now())
            if delay > 0.0:
                self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)
                return
            waiters.popleft().set_result(True)

    def _on_timer(self) -> None:
        self._timer = None
        self._grant()


class Flow:
    """One consumer's gate before ReceiveMessage and before each handler start.

    The receiver calls `reserve` where it would reserve room in `Capacity`, and `give_back`
    for room a poll did not use. With a rate limit, every received message also holds a
    place among the unstarted (`ahead_limit`) until `start` lets it run or `not_started`
    says it was handed back.
    """

    def __init__(self, capacity: Capacity, *, max_rate: float | None = None) -> None:
        self.capacity = capacity
        self.max_rate = max_rate
        self._pacer = StartPacer(max_rate) if max_rate is not None else None
        self._ahead = Capacity(ahead_limit(max_rate)) if max_rate is not None else None
        self._paused = False
        self._closed = False
        self._resumed = asyncio.Event()  # set while a reservation may go ahead
        self._resumed.set()
        self._held = False  # a circuit breaker is open
        self._probing = False  # half-open: `_probe_room` reservations of one message left
        self._probe_room = 0
        self.epoch = 0

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def holding(self) -> bool:
        """Whether what polls bring is handed back: paused, or a circuit breaker open."""
        return self._paused or self._held

    @property
    def idle_on_purpose(self) -> bool:
        """Whether no poll is expected: paused, or a circuit breaker open or probing."""
        return self._paused or self._held or self._probing

    def hold(self) -> None:
        """A circuit breaker opened: start no poll (as a pause does) until `probe`."""
        self._held, self._probing, self._probe_room = True, False, 0
        self.epoch += 1
        if self._pacer is not None:
            self._pacer.refuse_all()
        self._sync_gate()

    def probe(self) -> None:
        """Half-open: let one reservation of one message through (again after `give_back`)."""
        self._held, self._probing, self._probe_room = False, True, 1
        self.epoch += 1
        self._sync_gate()

    def unhold(self) -> None:
        """The circuit breaker closed: polling goes on as before."""
        self._held, self._probing, self._probe_room = False, False, 0
        self._sync_gate()

    def _sync_gate(self) -> None:
        shut = self._paused or self._held or (self._probing and not self._probe_room)
        if shut and not self._closed:
            self._resumed.clear()
        else:
            self._resumed.set()

    @property
    def waiting_to_start(self) -> int:
        """Messages taken from the buffer that wait for the rate to let them start."""
        return len(self._pacer) if self._pacer is not None else 0

    @property
    def paced(self) -> bool:
        """Whether handler starts wait for `start` (there is a rate limit)."""
        return self._pacer is not None

    def pause(self) -> None:
        """Start no poll and no handler until `resume`; waiting starts are refused."""
        self._paused = True
        self._sync_gate()
        if self._pacer is not None:
            self._pacer.refuse_all()

    def resume(self) -> None:
        self._paused = False
        self._sync_gate()

    def close(self) -> None:
        """The consumer stops: every waiting `reserve` returns 0, every waiting start False."""
        self._closed = True
        self._resumed.set()
        self.capacity.close()
        if self._ahead is not None:
            self._ahead.close()
        if self._pacer is not None:
            self._pacer.refuse_all()

    async def reserve(
        self, at_least: int, at_most: int, *, or_when: Callable[[], bool] | None = None
    ) -> int:
        """`Capacity.reserve`, and within the rate's bound; waits while paused or held.

        Returns 0 once `close` has been called.
        """
        while True:
            if not self._resumed.is_set() and not self._closed:
                await self._resumed.wait()
                continue
            if self._closed:
                return 0
            probe = self._probing
            if probe:  # half-open: this reservation is the probe's, of one message
                at_least = at_most = 1
                self._probe_room = 0
                self._sync_gate()
            try:
                room = await self._reserve(at_least, at_most, or_when)
            except BaseException:
                if probe:
                    self._rearm_probe()
                raise
            if self.holding and room:  # paused or held while waiting: wait again instead
                self.give_back(room)
                continue
            return room

    async def _reserve(
        self, at_least: int, at_most: int, or_when: Callable[[], bool] | None
    ) -> int:
        """Room in `Capacity`, within the rate's bound."""
        budget = at_most
        ahead = self._ahead
        if ahead is not None:
            # Half the bound free before a poll: batches stay full, starts never starve.
            budget = await ahead.reserve(min(at_least, math.ceil(ahead.total / 2)), at_most)
            if budget == 0:
                return 0
        try:
            room = await self.capacity.reserve(min(at_least, budget), budget, or_when=or_when)
        except BaseException:
            if ahead is not None:
                ahead.release(budget)
            raise
        if ahead is not None:
            ahead.release(budget - room)
        return room

    def give_back(self, count: int, epoch: int | None = None) -> None:
        """Room reserved for a poll and not used; a probe's poll that brought nothing (of
        this `epoch`) lets the next poll be the probe."""
        self.capacity.release(count)
        if self._ahead is not None:
            self._ahead.release(count)
        if count and epoch == self.epoch:
            self._rearm_probe()

    def _rearm_probe(self) -> None:
        if self._probing and not self._probe_room:
            self._probe_room = 1
            self._sync_gate()

    def not_started(self, count: int = 1) -> None:
        """Received messages handed back without starting (their room goes with their ack)."""
        if self._ahead is not None:
            self._ahead.release(count)

    async def start(self) -> bool:
        """Wait for the rate to let one handler start: False if paused or stopped meanwhile."""
        pacer = self._pacer
        if pacer is None:
            return not (self.holding or self._closed)
        if self.holding or self._closed or not await pacer.permit():
            return False
        if self._ahead is not None:
            self._ahead.release(1)
        return True
