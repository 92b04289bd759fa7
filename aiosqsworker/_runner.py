"""The runner: signals, the event loop (uvloop when installed) and exit codes.

Signals belong here, never to the worker: the first SIGTERM/SIGINT asks for a graceful stop,
a second one forces it. The handlers that were installed before are put back afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import logging
import signal
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from ._app import App

__all__ = ["capture_signals", "run", "uvloop_available"]

logger = logging.getLogger("aiosqsworker")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SignalLog:
    """Which stop signals arrived, for the exit code."""

    def __init__(self) -> None:
        self.received: list[signal.Signals] = []

    @property
    def forced_by(self) -> signal.Signals | None:
        return self.received[1] if len(self.received) > 1 else None


@contextlib.contextmanager
def capture_signals(
    request_stop: Callable[..., None], signals: tuple[signal.Signals, ...] = STOP_SIGNALS
) -> Iterator[SignalLog]:
    """Turn SIGTERM/SIGINT into `request_stop()`, and a second one into a forced stop."""
    loop = asyncio.get_running_loop()
    log = SignalLog()

    def on_signal(signum: signal.Signals) -> None:
        log.received.append(signum)
        if len(log.received) == 1:
            logger.info(
                "received %s: shutting down gracefully (send it again to force)", signum.name
            )
            request_stop()
        else:
            logger.warning(
                "received %s again: forcing shutdown, cancelling running handlers", signum.name
            )
            request_stop(force=True)

    previous: dict[signal.Signals, Any] = {}
    try:
        for signum in signals:
            previous[signum] = signal.getsignal(signum)
            loop.add_signal_handler(signum, on_signal, signum)
        yield log
    finally:
        for signum, handler in previous.items():
            loop.remove_signal_handler(signum)
            signal.signal(signum, handler)


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def run(
    app: App,
    *,
    use_uvloop: bool | None = None,
    metrics_address: tuple[str, int] | None = None,
    progress_interval: float | None = None,
    supervised: bool = False,
) -> int:
    """Run `app` in a new event loop until a stop signal; return the process exit code.

    0 after a graceful stop; 128 + the signal's number when a second signal forced it.
    With `metrics_address`, /metrics, /healthz and /readyz are served there; with
    `progress_interval`, a progress line is printed that often. A `supervised` worker
    (``--workers N``) leaves SIGINT to its supervisor.
    """
    if use_uvloop is None:
        use_uvloop = uvloop_available()
    stop_signals: tuple[signal.Signals, ...] = STOP_SIGNALS
    if supervised:
        # A Ctrl-C reaches the whole process group; the supervisor forwards one SIGTERM.
        # Counting the SIGINT too would turn every Ctrl-C into a forced stop.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop_signals = (signal.SIGTERM,)

    async def main() -> int:
        from ._metrics import serve_metrics
        from ._progress import report_progress

        failure: BaseException | None = None
        async with anyio.create_task_group() as tg:
            if metrics_address is not None:
                host, port = metrics_address
                await tg.start(functools.partial(serve_metrics, app, host=host, port=port))
            if progress_interval:
                tg.start_soon(functools.partial(report_progress, app, interval=progress_interval))
            with capture_signals(app.stop, stop_signals) as signals:
                try:
                    await app.run()
                except Exception as exc:  # noqa: BLE001 - re-raised below, outside the group
                    failure = exc
            tg.cancel_scope.cancel()
        if failure is not None:
            raise failure
        forced_by = signals.forced_by
        return 128 + int(forced_by) if forced_by is not None else 0

    return anyio.run(main, backend="asyncio", backend_options={"use_uvloop": use_uvloop})
