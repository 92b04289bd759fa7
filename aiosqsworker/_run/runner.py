"""The runner: one app in a process of its own, with its event loop, probes and exit code.

It picks the event loop (uvloop when installed), turns stop signals into `app.stop()`
(`signals.py`), serves the metrics and health endpoints and the progress line beside the
app, and returns the process's exit code. It knows the app only through `probe.RunnableApp`.
A worker of ``--workers N`` also stops gracefully when its supervisor dies (`orphan.py`).
`exit_process` ends the process without waiting for handler threads the worker abandoned.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import signal
import sys
from typing import NoReturn

import anyio

from .._consumer.threads import running_handlers
from .._errors import AioSQSWorkerError, single_error
from .burst import burst_ended, stop_when_empty
from .orphan import watch_supervisor
from .probe import RunnableApp
from .progress import report_progress
from .signals import STOP_SIGNALS, capture_signals

__all__ = ["exit_process", "run", "uvloop_available"]

logger = logging.getLogger("aiosqsworker")


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def run(
    app: RunnableApp,
    *,
    use_uvloop: bool | None = None,
    metrics_address: tuple[str, int] | None = None,
    progress_interval: float | None = None,
    supervisor_pid: int | None = None,
    burst: bool = False,
) -> int:
    """Run `app` in a new event loop until a stop signal; return the process exit code.

    0 after a graceful stop; 128 + the signal's number when a second signal forced it; in
    `burst` mode, `burst.BURST_FAILED` when a handler failed during the run.
    With `metrics_address`, /metrics, /healthz and /readyz are served there; with
    `progress_interval`, a progress line is printed that often. A worker of ``--workers N``
    or ``--reload`` (its `supervisor_pid` given) leaves SIGINT to its supervisor, and stops
    gracefully when that process dies. In `burst` mode the app stops gracefully by itself
    once its queues are empty and nothing is in flight.
    """
    if use_uvloop is None:
        use_uvloop = uvloop_available()
    stop_signals: tuple[signal.Signals, ...] = STOP_SIGNALS
    if supervisor_pid is not None:
        # A Ctrl-C reaches the whole process group; the supervisor forwards one SIGTERM.
        # Counting the SIGINT too would turn every Ctrl-C into a forced stop.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop_signals = (signal.SIGTERM,)

    async def main() -> int:
        failure: BaseException | None = None
        async with anyio.create_task_group() as tg:
            if metrics_address is not None:
                from .metrics import serve_metrics  # aiohttp: imported only to serve /metrics

                host, port = metrics_address
                await tg.start(functools.partial(serve_metrics, app, host=host, port=port))
            if progress_interval:
                tg.start_soon(functools.partial(report_progress, app, interval=progress_interval))
            if burst:
                tg.start_soon(stop_when_empty, app)
            if supervisor_pid is not None:
                tg.start_soon(watch_supervisor, supervisor_pid, app.stop)
            with capture_signals(app.stop, stop_signals) as signals:
                try:
                    await app.run()
                # Re-raised below, outside the group: an error of the run, or a handler's
                # SystemExit / KeyboardInterrupt once the worker has drained.
                except (Exception, SystemExit, KeyboardInterrupt) as exc:  # noqa: BLE001
                    failure = exc
            tg.cancel_scope.cancel()
        if failure is not None:
            raise failure
        forced_by = signals.forced_by
        if forced_by is not None:
            return 128 + int(forced_by)
        return burst_ended(app.statistics().values()) if burst else 0

    try:
        return anyio.run(main, backend="asyncio", backend_options={"use_uvloop": use_uvloop})
    except BaseExceptionGroup as group:  # the metrics server's start, say: its one error
        error = single_error(group)
        if isinstance(error, AioSQSWorkerError):
            raise error from None
        raise


def exit_process(status: int | str | None) -> NoReturn:
    """End the process with `status`, as `sys.exit` takes it (0, a code, or a message).

    The interpreter waits at exit for every thread still running, and a ``def`` handler's
    thread abandoned at a timeout or at the shutdown timeout may never return: the worker has
    drained and said which handlers it left (`Worker`), so the process ends without them.
    """
    if not running_handlers():
        sys.exit(status)
    if not isinstance(status, str):
        code = status or 0
    else:
        print(status, file=sys.stderr)
        code = 1
    logging.shutdown()  # flush the logs: os._exit runs no exit handlers
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
