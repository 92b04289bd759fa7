"""A ``def`` handler's threads: at most `bound` alive at once, abandoned ones included.

The threads are a pool of the consumer's own, kept between calls: a call is put on a queue
that an idle thread takes, and its outcome comes back to the loop with the outcomes of the
other threads that ended in the same loop turn (one wake-up of the loop for all of them), so
a call costs a queue hand-off rather than a fresh thread hand-off each time. A thread idle for
`IDLE_SECONDS` ends; the pool's threads are daemons, so an idle one never keeps the process.

A thread cannot be stopped from outside. When its call is abandoned (the consumer's
`timeout=`, a lost lease, a forced stop or the shutdown timeout), the message takes its path
at once, but the thread runs on, holding whatever it holds (a socket, a pooled database
connection). So an abandoned thread keeps its place until it really returns: a consumer
never has more than `bound` handler threads alive (its `concurrency`). While abandoned
threads fill that bound, the next handler waits for one of them to come back, its message
held and its lease kept, instead of starting yet another thread beside a hung dependency;
a warning says so once, an info line when they come back, and the consumer's statistics
count them (`abandoned_threads`).

`timeout=` is timed from the moment a thread has the call (waiting for one does not count),
and its error says where the thread was (`timeouts.py`). The call runs in a copy of the
caller's context (contextvars), and `anyio.from_thread.run` reaches the loop from it.

The process keeps a register of the handler threads still running (`running_handlers`):
after a worker has stopped, only abandoned ones can be left, and the command line then exits
without waiting for them (`_run/runner.exit_process`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio.lowlevel

# anyio's own worker threads say which loop `anyio.from_thread.run` goes back to here; ours
# say the same, so a handler calls async code from its thread as it would from anyio's.
from anyio._core._eventloop import threadlocals as _anyio_thread

from .._text import plural
from .stats import Counters
from .timeouts import TimeLimit, stack_of_thread

__all__ = ["IDLE_SECONDS", "HandlerThreads", "running_handlers"]

logger = logging.getLogger("aiosqsworker.offload")

IDLE_SECONDS = 10.0  # a pool thread with no call for this long ends

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

    __slots__ = (
        "abandoned_at",
        "args",
        "context",
        "ended",
        "failed",
        "future",
        "ident",
        "lock",
        "loop",
        "outcome",
        "skipped",
        "started",
        "started_at",
        "timer",
        "token",
    )

    def __init__(
        self,
        args: tuple[Any, ...],
        loop: asyncio.AbstractEventLoop,
        token: anyio.lowlevel.EventLoopToken,
    ) -> None:
        self.args = args
        self.context = contextvars.copy_context()
        self.loop = loop
        self.token = token
        self.future: asyncio.Future[object] = loop.create_future()
        self.lock = threading.Lock()
        self.started = self.ended = self.skipped = self.failed = False
        self.ident: int | None = None
        self.started_at: float | None = None
        self.abandoned_at: float | None = None
        self.outcome: object = None
        self.timer: asyncio.TimerHandle | None = None

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
        self.alive = 0  # calls running in a thread or about to; abandoned ones included
        self.abandoned = 0
        self._waiting = 0
        self._returned = asyncio.Event()
        self._said_full = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._token: anyio.lowlevel.EventLoopToken | None = None
        # The pool: calls to take, and how many threads wait for one that no call has
        # been put on the queue for (the ones that may end when idle).
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._pool_lock = threading.Lock()
        self._idle = 0
        self._threads = 0
        # Calls ended in threads, on their way to the loop in one callback.
        self._ended: list[_Job] = []
        self._ended_lock = threading.Lock()

    @property
    def threads(self) -> int:
        """The pool's threads now, idle ones included (never more than calls at once)."""
        return self._threads

    async def run(self, *args: Any) -> object:
        """The handler's result for `args`, from a thread; `TimeoutError` past `timeout`."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._token = loop, anyio.lowlevel.current_token()
        assert self._token is not None
        if self.alive >= self.bound():
            await self._thread_free()
        job = _Job(args, loop, self._token)
        self.alive += 1
        self._hand_over(job)
        limit = self._time_limit
        if limit is not None:
            job.timer = loop.call_later(limit.seconds, self._check_time, job, limit)
        try:
            return await job.future
        except asyncio.CancelledError:
            if job.timer is not None:
                job.timer.cancel()
            self._abandoned(job, "was cancelled")
            raise

    async def _thread_free(self) -> None:
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

    # --- the pool ---------------------------------------------------------------------
    def _hand_over(self, job: _Job) -> None:
        """Put `job` on the queue, for an idle thread or a new one."""
        with self._pool_lock:
            start = not self._idle
            if start:
                self._threads += 1
            else:
                self._idle -= 1  # that thread is spoken for
        self._jobs.put(job)
        if start:
            threading.Thread(
                target=self._serve, name=f"aiosqsworker {self._consumer}", daemon=True
            ).start()

    def _serve(self) -> None:
        """A pool thread: run calls until none comes for `IDLE_SECONDS`."""
        take = self._jobs.get
        while True:
            try:
                job = take(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._pool_lock:
                    if self._idle:  # no call is on its way to this thread: end it
                        self._idle -= 1
                        self._threads -= 1
                        return
                continue  # a call was put for an idle thread: take it
            ran = self._call(job)
            # Idle before its outcome reaches the loop: the next call, which that outcome
            # makes room for, finds this thread rather than starting one beside it.
            with self._pool_lock:
                self._idle += 1
            if ran:
                self._post(job)

    def _call(self, job: _Job) -> bool:
        """Run `job` in this thread: False if it was abandoned before it began."""
        with job.lock:
            if job.skipped:  # abandoned before this thread began it
                return False
            job.started = True
            job.ident = ident = threading.get_ident()
            job.started_at = time.monotonic()
        with _register_lock:
            _running[ident] = self._label
        _anyio_thread.current_token = job.token
        try:
            job.outcome = job.context.run(self._handler, *job.args)
        except BaseException as exc:  # noqa: BLE001 - the awaiting slot gets it, whatever it is
            job.failed = True
            job.outcome = exc
        finally:
            with _register_lock:
                _running.pop(ident, None)
            with job.lock:
                job.ended = True
            job.args = job.context = None  # type: ignore[assignment] # hold no message
        return True

    def _post(self, job: _Job) -> None:
        """Send `job`'s end to the loop: one wake-up for every call ended in the same turn."""
        with self._ended_lock:
            self._ended.append(job)
            first = len(self._ended) == 1
        if first:
            try:
                job.loop.call_soon_threadsafe(self._settle_ended)
            except RuntimeError:  # the loop closed: nobody is waiting or counting
                with self._ended_lock:
                    self._ended.clear()

    def _settle_ended(self) -> None:
        with self._ended_lock:
            ended, self._ended = self._ended, []
        for job in ended:
            if job.timer is not None:
                job.timer.cancel()
            future = job.future
            if not future.done():  # not abandoned: its slot waits for it
                outcome = job.outcome
                if not job.failed:
                    future.set_result(outcome)
                elif isinstance(outcome, StopIteration):  # a future refuses it as it is
                    future.set_exception(RuntimeError(f"{self._label} raised {outcome!r}"))
                else:
                    future.set_exception(outcome)  # type: ignore[arg-type]
            job.outcome = None
            self._thread_ended(job)

    # --- time and abandonment -----------------------------------------------------------
    def _check_time(self, job: _Job, limit: TimeLimit) -> None:
        """The call's time is up unless its thread began it later than the timer began."""
        if job.future.done():
            return
        started_at = job.started_at
        left = (
            limit.seconds if started_at is None else started_at + limit.seconds - time.monotonic()
        )
        if left > 0:
            job.timer = job.loop.call_later(left, self._check_time, job, limit)
            return
        where = stack_of_thread(job.ident)
        self._abandoned(job, "timed out")
        job.future.set_exception(limit.error(where))

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
        if self._waiting:
            self._returned.set()
