"""The loop watchdog: a thread that notices when the event loop stops turning, and names why.

Every lease extension, poll and acknowledgement of the process waits for the event loop; an
``async`` handler that calls blocking code (``time.sleep``, a synchronous SDK, heavy CPU
work) stops all of them. The loop stamps a heartbeat a few times a second; a thread checks
it, and once the loop has missed it for longer than the threshold, the thread logs a WARNING
while the loop is still stuck, naming the consumer and handler on the loop's stack and the
line it is at. When the loop turns again, the stall's length is handed to the loop
(`on_block`, which counts it in the consumer's statistics) and logged.

A stall is one handler call's: the heartbeat cannot tell two calls apart when a slot takes
its next message at once and the loop never turns in between, so while the loop is stuck
the thread looks at its stack each beat, and a different handler frame ends one stall and
starts the next.

Reading the loop thread's stack from another thread uses `sys._current_frames`, CPython's
documented hook for such monitors (faulthandler and profilers use the same).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["LoopWatchdog"]

logger = logging.getLogger("aiosqsworker.watchdog")

#: The heartbeat's period, at most: fine enough to measure a stall to a quarter second.
MAX_BEAT = 0.25


class LoopWatchdog:
    """Watches the running event loop from a thread while the ``with`` block lasts.

    `handlers` maps each handler's code object to its consumer's name; `on_block(consumer,
    seconds)` is called on the loop after each stall, with the consumer found on the stack
    (or None).
    """

    def __init__(
        self,
        threshold: float,
        handlers: Mapping[types.CodeType, str],
        on_block: Callable[[str | None, float], None],
    ) -> None:
        self.threshold = threshold
        self._handlers = dict(handlers)
        self._on_block = on_block
        self._beat_every = min(MAX_BEAT, threshold / 4)
        self._last_beat = time.monotonic()
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name="aiosqsworker-watchdog", daemon=True
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._loop_thread = 0

    def __enter__(self) -> LoopWatchdog:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._beat()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._stopping.set()
        self._thread.join()

    def _beat(self) -> None:
        assert self._loop is not None
        self._last_beat = time.monotonic()
        self._timer = self._loop.call_later(self._beat_every, self._beat)

    def _watch(self) -> None:
        beat = self._last_beat  # the last beat seen
        busy_since = beat  # when the loop's current stretch of work began
        stall: _Stall | None = None
        while not self._stopping.wait(self._beat_every):
            last, now = self._last_beat, time.monotonic()
            if last != beat:  # the loop turned again
                if stall is not None:
                    self._ended(stall, last - stall.since, blocked_still=False)
                beat = busy_since = last
                stall = None
            elif stall is None:
                if now - busy_since > self.threshold:
                    stall = self._culprit(busy_since)
                    logger.warning(
                        "the event loop has not turned for %.1f s: %s. Leases, polls and "
                        "acknowledgements of every consumer wait meanwhile. Make a handler "
                        "that blocks a plain def (it then runs in a thread), or await the "
                        "blocking call in anyio.to_thread.run_sync",
                        now - busy_since,
                        stall.where,
                    )
            elif self._culprit(now).frame is not stall.frame:
                # Another handler call blocks the loop now, without a turn in between (a
                # slot that takes its next message at once): a stall of its own.
                self._ended(stall, now - stall.since, blocked_still=True)
                busy_since, stall = now, None

    def _ended(self, stall: _Stall, seconds: float, *, blocked_still: bool) -> None:
        by = f" blocked by consumer {stall.consumer!r}" if stall.consumer else ""
        if blocked_still:
            logger.warning(
                "the event loop was held for about %.1f s%s; another call holds it now",
                seconds,
                by,
            )
        else:
            logger.warning("the event loop ran again after about %.1f s%s", seconds, by)
        self._report(stall.consumer, seconds)

    def _report(self, consumer: str | None, seconds: float) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is left to count it
            self._loop.call_soon_threadsafe(self._on_block, consumer, seconds)

    def _culprit(self, since: float) -> _Stall:
        """A stall begun at `since`: the consumer whose handler is on the loop's stack (its
        frame tells one call from the next), and where the loop is."""
        frame: types.FrameType | None = sys._current_frames().get(self._loop_thread)
        if frame is None:
            return _Stall(since, None, None, "the loop's thread is gone")
        innermost = _place(frame)
        current: types.FrameType | None = frame
        while current is not None:
            consumer = self._handlers.get(current.f_code)
            if consumer is not None:
                handler = f"{current.f_globals.get('__name__', '?')}.{current.f_code.co_qualname}"
                where = f"consumer {consumer!r} is running handler {handler} at {_place(current)}"
                if current is not frame:
                    where += f" (innermost: {innermost})"
                return _Stall(since, consumer, current, where)
            current = current.f_back
        return _Stall(since, None, None, f"no handler is on the loop's stack; it is at {innermost}")


@dataclass(frozen=True, slots=True)
class _Stall:
    """One stall: since when, by which consumer's handler call (its frame, held so that no
    later call's frame can take its identity), and where the loop was."""

    since: float
    consumer: str | None
    frame: types.FrameType | None
    where: str


def _place(frame: types.FrameType) -> str:
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
