"""The circuit breaker: a consumer whose dependency is down stops taking messages.

A handler raising `DependencyDown` (or one of the `Breaker`'s `trip_on` classes), or enough
failures of one exception class within a window, opens the breaker:

```text
CLOSED ──trip──► OPEN ──cool-down──► HALF_OPEN ──the probe succeeds──► CLOSED
                  ▲                      │
                  └──the probe fails─────┘  (cool-down doubled, at most max_cooldown)
```

While it is open, `Flow` starts no poll and the pipeline releases what is buffered; running
handlers finish. Half-open, `Flow` lets one poll of one message through: the probe.

Receive counts. SQS counts every delivery, and the framework dead-letters a message on the
last receive its redrive policy allows. While the dependency is down, messages are not
received (no poll) so their counts do not move; the message that tripped the breaker, and
those failing the same way while it is open (running ones, probes), are retried after the
next probe (`retry_in`) and never dead-lettered for that failure: the failure was the
dependency's, not theirs. Only the probes are received meanwhile.

The window of failures (`FailureWindow`) and the cool-downs (`next_cooldown`) are pure,
tested directly; the timer is one `call_later`, nothing runs while the breaker is closed.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
from collections import deque
from collections.abc import Callable

from .._config import Breaker
from .._errors import DependencyDown, MessageDecodeError, Reject, Retry
from .clock import now
from .outcomes import within_visibility_cap

__all__ = ["BreakerState", "CircuitBreaker", "FailureWindow", "next_cooldown"]

logger = logging.getLogger("aiosqsworker.breaker")

#: Control flow and bad input say nothing about a dependency: never counted in the window.
_NOT_A_DEPENDENCY = (Retry, Reject, MessageDecodeError)


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


def next_cooldown(current: float, settings: Breaker) -> float:
    """The cool-down after a failed probe: twice the last one, at most `max_cooldown`."""
    return min(current * 2, settings.max_cooldown)


class FailureWindow:
    """Failures per exception class within the last `window` seconds (clock passed in)."""

    def __init__(self, failures: int, window: float) -> None:
        self.failures = failures
        self.window = window
        self._times: dict[type[BaseException], deque[float]] = {}

    def add(self, kind: type[BaseException], at: float) -> bool:
        """Count a failure of `kind` at `at`; True once `failures` of it fall in the window."""
        times = self._times.setdefault(kind, deque())
        times.append(at)
        while times and times[0] <= at - self.window:
            times.popleft()
        return len(times) >= self.failures

    def clear(self) -> None:
        self._times.clear()


class CircuitBreaker:
    """One consumer's breaker; `on_open`, `on_probe` and `on_close` act on its pipeline."""

    def __init__(
        self,
        settings: Breaker,
        *,
        consumer: str,
        on_open: Callable[[], None],
        on_probe: Callable[[], None],
        on_close: Callable[[], None],
        quiet: bool = False,
    ) -> None:
        """`quiet`: no log lines, for a breaker that stands in for the consumer's where
        nothing is paused or probed (`testing.call_consumer`)."""
        self.settings = settings
        self._quiet = quiet
        self.state = BreakerState.CLOSED
        self.trips = 0
        self.held = 0  # messages retried for the dependency, not counted as attempts
        self._consumer = consumer
        self._on_open = on_open
        self._on_probe = on_probe
        self._on_close = on_close
        self._trip_on: tuple[type[BaseException], ...] = (DependencyDown, *settings.trip_on)
        self._window = (
            FailureWindow(settings.failures, settings.window)
            if settings.failures is not None
            else None
        )
        self._kind: type[BaseException] | None = None  # what a window trip counted
        self._cooldown = settings.cooldown
        self._opened_at = 0.0
        self._probe_at = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def is_down(self, error: BaseException) -> bool:
        """A handler failed with `error`: whether that is the dependency being down. If so,
        the breaker is open (now, or already) and the message waits out the cool-down."""
        if isinstance(error, _NOT_A_DEPENDENCY):
            return False
        kind = type(error)
        marked = isinstance(error, self._trip_on)
        if not marked and self.state is not BreakerState.CLOSED and kind is self._kind:
            marked = True  # the failure a window trip counted, while the breaker is open
        if not marked and self._window is not None and self._window.add(kind, now()):
            self._kind = kind
            marked = True
        if not marked:
            self.ended()  # a probe that failed otherwise: the dependency answered
            return False
        self.held += 1
        if self.state is not BreakerState.OPEN:
            self._open(error)
        return True

    def held_delay(self, error: BaseException, held_for: float) -> int | None:
        """The visibility timeout of a message whose handler failed with `error` after it
        was held `held_for` seconds, when that failure is the dependency being down (the
        breaker opens: see `is_down`); None when it is not."""
        if not self.is_down(error):
            return None
        return within_visibility_cap(self.retry_in(), held_for)

    def ended(self) -> None:
        """A message ended in a way that says the dependency answered: half-open, that
        closes the breaker."""
        if self.state is BreakerState.HALF_OPEN:
            self._close()

    def retry_in(self) -> int:
        """Seconds until a held message is visible again: past the next probe and the
        cool-down after it, should that probe fail. A held message is then not the next
        probe: each probe costs its message a receive, and a message that were the probe
        time after time would reach the redrive's maxReceiveCount."""
        later = next_cooldown(self._cooldown, self.settings)
        return max(1, math.ceil(self._probe_at - now() + later))

    def close(self) -> None:
        """The consumer stops: no probe will come."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _open(self, error: BaseException) -> None:
        reopened = self.state is BreakerState.HALF_OPEN
        self._cooldown = (
            next_cooldown(self._cooldown, self.settings) if reopened else self.settings.cooldown
        )
        if not reopened:
            self.trips += 1
            self._opened_at = now()
        self.state = BreakerState.OPEN
        self._probe_at = now() + self._cooldown
        self._timer = asyncio.get_running_loop().call_later(self._cooldown, self._half_open)
        if not self._quiet:
            self._log_opened(error, reopened=reopened)
        self._on_open()

    def _log_opened(self, error: BaseException, *, reopened: bool) -> None:
        if reopened:
            logger.warning(
                "[%s] circuit breaker: the probe failed (%s); open again, next probe in %g s",
                self._consumer,
                error,
                self._cooldown,
            )
        else:
            logger.warning(
                "[%s] circuit breaker open: %s: %s. Polling paused, buffered messages "
                "released, running handlers finish; a probe in %g s",
                self._consumer,
                type(error).__name__,
                error,
                self._cooldown,
            )

    def _half_open(self) -> None:
        self._timer = None
        self.state = BreakerState.HALF_OPEN
        logger.info("[%s] circuit breaker half-open: one probe message let through", self._consumer)
        self._on_probe()

    def _close(self) -> None:
        self.close()
        self.state = BreakerState.CLOSED
        self._cooldown = self.settings.cooldown
        if self._window is not None:
            self._window.clear()
        self._kind = None
        logger.warning(
            "[%s] circuit breaker closed: the probe succeeded after %.1f s; polling resumes",
            self._consumer,
            now() - self._opened_at,
        )
        self._on_close()
