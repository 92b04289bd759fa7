"""The supervisor of `--workers N` and `--reload`: worker processes on one queue set.

SQS is the distributed engine, so scaling out is just more processes reading the same queues.
The supervisor starts them, forwards SIGTERM/SIGINT for a graceful drain (a second signal is
forwarded too, which forces), restarts a worker that dies unexpectedly with a back-off
against crash loops (`restart_delay`), and exits 0 once every worker has drained cleanly.

Each worker is told the supervisor's pid, and drains by itself if the supervisor dies
without a word (`orphan.watch_supervisor`). In burst mode a worker that exits 0 is done,
not restarted, and so is one that exits `BURST_FAILED` (a handler failed in its run: the
supervisor then exits with that code). With file changes to follow (`--reload`), a change
names the files and stops every worker gracefully (SIGTERM: buffered messages released,
running handlers finish, acknowledgements flushed, so nothing stays hidden for long) and
starts it again once it has exited (an idle worker stops at once: see
`_consumer/receiver.py`), saying how long that took; a worker that dies is started again
at the next change, not in a back-off loop (a module that fails to import waits for its
fix).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from .._text import plural
from .burst import BURST_FAILED

__all__ = ["FileChanges", "restart_delay", "supervise"]

#: What `--reload` follows: given the supervisor's stop event, the sets of changed files.
FileChanges = Callable[[asyncio.Event], AsyncIterator[set[str]]]

logger = logging.getLogger("aiosqsworker.supervisor")

#: A worker that ran this long before dying is not crash-looping: its back-off starts over.
STABLE_AFTER = 30.0
MAX_RESTART_DELAY = 30.0


def restart_delay(consecutive_quick_deaths: int) -> float:
    """Seconds to wait before restarting a worker: 0 at first, then 1 s doubling to 30 s."""
    if consecutive_quick_deaths <= 1:
        return 0.0 if consecutive_quick_deaths == 0 else 1.0
    return min(MAX_RESTART_DELAY, 2.0 ** (consecutive_quick_deaths - 1))


@dataclass
class _Slot:
    index: int
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    restarts: int = 0
    exit_codes: list[int] = field(default_factory=list)
    reloading: bool = False  # stopped for a reload: start it again at once
    reload_asked_at: float | None = None  # when that stop was asked, to say how long it took
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # a file changed since start


class Supervisor:
    def __init__(
        self,
        worker_argv: Sequence[str],
        workers: int,
        *,
        burst: bool = False,
        file_changes: FileChanges | None = None,
    ) -> None:
        self._argv = list(worker_argv)
        self._slots = [_Slot(index) for index in range(workers)]
        self._stopping = asyncio.Event()
        self._signals = 0
        self._burst = burst
        self._file_changes = file_changes

    async def _spawn(self, slot: _Slot) -> None:
        slot.changed.clear()
        env = {
            **os.environ,
            "AIOSQSWORKER_WORKER_INDEX": str(slot.index),
            "AIOSQSWORKER_SUPERVISOR_PID": str(os.getpid()),  # a worker drains when it dies
        }
        slot.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "aiosqsworker",
            *self._argv,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
        )
        slot.started_at = time.monotonic()
        if slot.reload_asked_at is None:
            logger.info("worker %d started (pid %d)", slot.index, slot.process.pid)
        else:
            logger.info(
                "worker %d restarted with the new code in %.1f s (pid %d)",
                slot.index,
                slot.started_at - slot.reload_asked_at,
                slot.process.pid,
            )
            slot.reload_asked_at = None

    def _on_signal(self, signum: signal.Signals) -> None:
        self._signals += 1
        self._stopping.set()
        if self._signals == 1:
            logger.info("received %s: draining %s", signum.name, plural(len(self._slots), "worker"))
        else:
            logger.warning("received %s again: forcing the workers to stop", signum.name)
        for slot in self._slots:
            slot.changed.set()  # a worker waiting for a change to restart stops waiting
            if slot.process is not None and slot.process.returncode is None:
                slot.process.send_signal(signal.SIGTERM)

    async def _reload_on_changes(self, file_changes: FileChanges) -> None:
        async for paths in file_changes(self._stopping):
            shown = ", ".join(sorted(_shown_path(path) for path in paths)[:5])
            more = f" and {len(paths) - 5} more" if len(paths) > 5 else ""
            logger.info("changed: %s%s; restarting the workers gracefully", shown, more)
            for slot in self._slots:
                slot.changed.set()
                running = slot.process is not None and slot.process.returncode is None
                if running and not slot.reloading:  # a second SIGTERM would force it
                    assert slot.process is not None
                    slot.reloading = True
                    slot.reload_asked_at = time.monotonic()
                    slot.process.send_signal(signal.SIGTERM)

    async def _watch(self, slot: _Slot) -> None:
        while True:
            await self._spawn(slot)
            assert slot.process is not None
            code = await slot.process.wait()
            if self._stopping.is_set() and self._signals == 1 and code == -signal.SIGTERM:
                # Killed by the one SIGTERM forwarded to it: it did not handle signals yet, so
                # it had not polled (a worker handles them before its first poll) and held
                # nothing. (A second SIGTERM may kill a worker that has drained and let go of
                # its handlers: that one exits as it does, not as a clean stop.)
                logger.info(
                    "worker %d stopped before it was ready (the stop came while it started): "
                    "it held no message",
                    slot.index,
                )
                slot.exit_codes.append(0)
                return
            slot.exit_codes.append(code)
            if self._stopping.is_set():
                logger.info("worker %d exited with code %d", slot.index, code)
                return
            if slot.reloading:
                slot.reloading = False
                logger.info("worker %d stopped for the reload (code %d)", slot.index, code)
                continue
            if self._burst and code == 0:
                logger.info("worker %d finished: its queues are empty", slot.index)
                return
            if self._burst and code == BURST_FAILED:
                logger.warning("worker %d finished its burst, with failures", slot.index)
                return
            if self._file_changes is not None:
                logger.error(
                    "worker %d (pid %d) exited with code %d; it starts again when a file changes",
                    slot.index,
                    slot.process.pid,
                    code,
                )
                await slot.changed.wait()
                if self._stopping.is_set():
                    return
                continue
            lived = time.monotonic() - slot.started_at
            slot.quick_deaths = slot.quick_deaths + 1 if lived < STABLE_AFTER else 1
            delay = restart_delay(slot.quick_deaths)
            logger.error(
                "worker %d (pid %d) died unexpectedly with code %d after %.1f s; restarting "
                "in %.0f s",
                slot.index,
                slot.process.pid,
                code,
                lived,
                delay,
            )
            slot.restarts += 1
            if delay:
                with contextlib.suppress(TimeoutError):  # a stop cuts the back-off short
                    await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        reloader = None
        if self._file_changes is not None:
            reloader = asyncio.ensure_future(self._reload_on_changes(self._file_changes))
        try:
            await asyncio.gather(*(self._watch(slot) for slot in self._slots))
        finally:
            if reloader is not None:
                reloader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reloader
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        last_codes = [slot.exit_codes[-1] if slot.exit_codes else 0 for slot in self._slots]
        logger.info("all workers stopped (exit codes %s)", last_codes)
        if all(code == 0 for code in last_codes):
            return 0
        if self._burst and all(code in (0, BURST_FAILED) for code in last_codes):
            return BURST_FAILED  # the burst ended, and some handler failed in it
        return 1


def _shown_path(path: str) -> str:
    """A changed file as the log names it: relative to the working directory when under it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def supervise(
    worker_argv: Sequence[str],
    workers: int,
    *,
    burst: bool = False,
    file_changes: FileChanges | None = None,
) -> int:
    """Run `python -m aiosqsworker *worker_argv` in `workers` processes; return the exit code.

    `burst`: a worker that exits 0 is done. `file_changes`: restart the workers on each.
    """
    supervisor = Supervisor(worker_argv, workers, burst=burst, file_changes=file_changes)
    return asyncio.run(supervisor.run())
