"""Stop signals: the first SIGTERM/SIGINT asks for a graceful stop, a second one forces it.

Signals belong to whoever owns the process (the runner, the demo, `App.run(handle_signals=
True)`), never to the worker; the handlers that were installed before are put back after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["SignalLog", "capture_signals"]

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
            again = "Ctrl-C" if signum == signal.SIGINT else signum.name
            logger.info(
                "received %s: shutting down gracefully; %s again to stop now",
                signum.name,
                again,
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
