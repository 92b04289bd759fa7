"""A ``def`` handler's threads: at most `bound` alive at once, abandoned ones included.

A thread cannot be stopped from outside. When its call is abandoned (the consumer's
`timeout=`, a lost lease, a forced stop or the shutdown timeout), the message takes its path
at once, but the thread runs on, holding whatever it holds (a socket, a pooled database
connection). So an abandoned thread keeps its place until it really returns: a consumer
never has more than `bound` handler threads alive (its `concurrency`). While abandoned
threads fill that bound, the next handler waits for one of them to come back, its message
held and its lease kept, instead of starting yet another thread beside a hung dependency;
a warning says so once, an info line when they come back, and the consumer's statistics
count them (`abandoned_threads`).

`timeout=` is timed here, from the moment a thread has the call (waiting for one does not
count), and its error says where the thread was (`timeouts.py`).

The process keeps a register of the handler threads still running (`running_handlers`):
after a worker has stopped, only abandoned ones can be left, and the command line then exits
without waiting for them (`_run/runner.exit_process`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread

from .._text import plural
from .stats import Counters
from .timeouts import TimeLimit, stack_of_thread

__all__ = ["HandlerThreads", "running_handlers"]

logger = logging.getLogger("aiosqsworker.offload")

_register_lock = threading.Lock()
_running: dict[int, str] = {}  # thread ident -> the label of the handler it runs


def running_handlers() -> Counter[str]:
    """How many threads of the process run each handler now (by its label)."""
    with _register_lock:
        return Counter(_running.values())


class _Job:
    """One call of the handler in a thread, and whether the thread has started or ended it.

    The thread and the loop both read and write it, under its lock: a call abandoned before
    its thread began is never begun.
    """

    __slots__ = ("abandoned_at", "ended", "ident", "lock", "skipped", "started")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = self.ended = self.skipped = False
        self.ident: int | None = None
        self.abandoned_at: float | None = None

    def abandon(self) -> bool:
        """Give the call up: True if its thread runs on, False if it never began."""
        with self.lock:
            if not self.started:
                self.skipped = True
                return False
            if self.ended:  # its end is on its way to the loop
                return False
            self.abandoned_at = time.monotonic()
            return True


class HandlerThreads:
    """Runs one consumer's sync `handler` in threads, at most `bound()` alive at once (the
    consumer's concurrency as it is now: `App.set_concurrency` changes it)."""

    def __init__(
        self,
        handler: Callable[..., object],
        *,
        bound: Callable[[], int],
        label: str,
        consumer: str,
        counters: Counters,
        timeout: float | None = None,
    ) -> None:
        self.bound = bound
        self._handler = handler
        self._label = label
        self._consumer = consumer
        self._counters = counters
        self._time_limit = TimeLimit(timeout, label, handler) if timeout is not None else None
        # anyio's own limiter never makes a call wait: `alive` is the bound. (Its default
        # limiter, 40 threads shared by the whole process, would.)
        self._limiter = anyio.CapacityLimiter(math.inf)
        self.alive = 0  # threads running a call or about to; abandoned ones included
        self.abandoned = 0
        self._waiting = 0
        self._returned = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._said_full = False

    async def run(self, *args: Any) -> object:
        """The handler's result for `args`, from a thread; `TimeoutError` past `timeout`."""
        self._loop = self._loop or asyncio.get_running_loop()
        await self._thread_free()
        job = _Job()
        self.alive += 1
        limit = self._time_limit
        deadline = anyio.current_time() + limit.seconds if limit is not None else math.inf
        with anyio.CancelScope(deadline=deadline) as scope:
            try:
                return await anyio.to_thread.run_sync(
                    self._in_thread, job, args, abandon_on_cancel=True, limiter=self._limiter
                )
            except anyio.get_cancelled_exc_class():
                timed_out = scope.cancel_called
                where = stack_of_thread(job.ident) if timed_out else []
                self._abandoned(job, "timed out" if timed_out else "was cancelled")
                if not timed_out:
                    raise
        assert limit is not None  # only our deadline ends the scope without returning
        raise limit.error(where)

    async def _thread_free(self) -> None:
        if self.alive < self.bound():
            return
        self._waiting += 1
        try:
            while self.alive >= (bound := self.bound()):
                if self.abandoned and not self._said_full:
                    self._said_full = True
                    logger.warning(
                        "[%s] %s abandoned after a timeout or cancellation still "
                        "%s: with %s of %s the consumer starts no new handler until "
                        "one returns; its messages wait, their leases kept",
                        self._consumer,
                        plural(self.abandoned, "handler thread"),
                        "runs" if self.abandoned == 1 else "run",
                        plural(self.alive, "thread"),
                        f"at most {bound}",
                    )
                self._returned.clear()
                await self._returned.wait()
        finally:
            self._waiting -= 1

    def _in_thread(self, job: _Job, args: tuple[Any, ...]) -> object:
        with job.lock:
            if job.skipped:  # abandoned before this thread began it
                return None
            job.started = True
            job.ident = threading.get_ident()
        with _register_lock:
            _running[job.ident] = self._label
        try:
            return self._handler(*args)
        finally:
            with _register_lock:
                _running.pop(job.ident, None)
            with job.lock:
                job.ended = True
            loop = self._loop
            if loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop closed: nobody is counting
                    loop.call_soon_threadsafe(self._thread_ended, job)

    def _abandoned(self, job: _Job, how: str) -> None:
        if not job.abandon():  # it never began, or it has just ended: its place is free
            if not job.started:
                self._thread_ended(job)
            return
        self.abandoned += 1
        self._counters.abandoned_threads = self.abandoned
        logger.warning(
            "%s %s: a thread cannot be stopped, so it runs on and what it returns or raises "
            "is ignored; it keeps its place among the consumer's %s until it returns",
            self._label,
            how,
            plural(self.bound(), "thread"),
        )

    def _thread_ended(self, job: _Job) -> None:
        self.alive -= 1
        if job.abandoned_at is not None:
            self.abandoned -= 1
            self._counters.abandoned_threads = self.abandoned
            start_again = self._said_full and self._waiting > 0
            logger.info(
                "[%s] an abandoned handler thread returned %.1f s after it was given up%s",
                self._consumer,
                time.monotonic() - job.abandoned_at,
                "; handlers start again" if start_again else "",
            )
            if start_again or not self.abandoned:
                self._said_full = False  # said once; the next time the bound is reached too
        self._returned.set()
