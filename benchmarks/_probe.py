"""What every contender process measures about itself, and how it says so.

Standard library only: the peers' drivers import it too, from their own virtual environment.

A contender sets up its consumer (imports, client, queue URL, polls open), then opens the
measuring window (`Window.start`), which also releases the responder's message budget, and
closes it when its handlers have finished the last message (`Window.stop`). Throughput and CPU
are taken over that window only, so interpreter start-up and imports do not count; peak RSS
is the process's whole-life peak. The figures go to the parent as one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

__all__ = [
    "RESULT_MARKER",
    "Options",
    "Tally",
    "Window",
    "current_rss_kib",
    "emit",
    "parse_options",
    "release_budget",
]

RESULT_MARKER = "BENCH-RESULT "


def current_rss_kib() -> int:
    """The resident set size now, in KiB (0 where /proc is not available)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def _peak_rss_kib() -> int:
    """This process's peak resident set, in KiB.

    Linux's VmHWM, not ``ru_maxrss``: a child started with fork (or vfork) and exec inherits
    the parent's ``ru_maxrss``, so a small contender started by a large harness would report
    the harness's size. Elsewhere, ``ru_maxrss`` it is.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # macOS counts bytes


def release_budget(start_url: str | None, messages: int, *, replay: bool = False) -> None:
    """Tell the responder to start handing out `messages` messages (no-op without a URL).

    With `replay`, they carry the body of the last message the contender sent.
    """
    if not start_url:
        return
    query = f"messages={messages}" + ("&replay=1" if replay else "")
    request = urllib.request.Request(f"{start_url}?{query}", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


class Window:
    """Wall time and CPU time between `start` and `stop`, in this process."""

    def __init__(self) -> None:
        self._t0 = self._t1 = 0.0
        self._ru0: resource.struct_rusage | None = None
        self._ru1: resource.struct_rusage | None = None
        self.rss_ready_kib = 0
        self.rss_stop_kib = 0
        self.started_at = 0.0  # wall clock, to compare with the responder's
        #: Called when the window opens and closes (a profiler's enable and disable).
        self.on_start: list[Callable[[], None]] = []
        self.on_stop: list[Callable[[], None]] = []

    @property
    def started(self) -> bool:
        return self._ru0 is not None

    @property
    def stopped(self) -> bool:
        return self._ru1 is not None

    def start(
        self, start_url: str | None = None, messages: int = 0, *, replay: bool = False
    ) -> None:
        self.rss_ready_kib = current_rss_kib()
        self._ru0 = resource.getrusage(resource.RUSAGE_SELF)
        for hook in self.on_start:
            hook()
        self._t0 = time.perf_counter()
        self.started_at = time.time()
        release_budget(start_url, messages, replay=replay)

    def stop(self) -> None:
        if self._ru1 is not None:
            return
        self._t1 = time.perf_counter()
        self._ru1 = resource.getrusage(resource.RUSAGE_SELF)
        self.rss_stop_kib = current_rss_kib()
        for hook in self.on_stop:
            hook()

    def figures(self) -> dict[str, Any]:
        if self._ru0 is None:
            return {"seconds": 0.0, "cpu_user": 0.0, "cpu_sys": 0.0}
        self.stop()
        assert self._ru1 is not None
        return {
            "seconds": self._t1 - self._t0,
            "cpu_user": self._ru1.ru_utime - self._ru0.ru_utime,
            "cpu_sys": self._ru1.ru_stime - self._ru0.ru_stime,
            "rss_ready_kib": self.rss_ready_kib,
            "rss_stop_kib": self.rss_stop_kib,
            "started_at": self.started_at,
        }


class Tally:
    """Counts finished handlers; at `target` it closes the window and calls `on_done`.

    Safe to call from handler threads (the thread-based peers) as well as from a loop.
    """

    def __init__(self, target: int, window: Window, on_done: Callable[[], None]) -> None:
        self.target = target
        self.handled = 0
        self.running = 0
        self.peak_running = 0
        self.first_done_at = 0.0  # wall clock: the launch figure's end
        self._window = window
        self._on_done = on_done
        self._lock = threading.Lock()

    def begin(self) -> None:
        """A handler starts (for the peak number of handlers running at once)."""
        with self._lock:
            self.running += 1
            self.peak_running = max(self.peak_running, self.running)

    def done(self) -> None:
        with self._lock:
            self.running -= 1
            self.handled += 1
            if self.handled == 1:
                self.first_done_at = time.time()
            finished = self.handled == self.target
        if finished:
            self._window.stop()
            self._on_done()


def emit(contender: str, tally: Tally, window: Window, **extra: Any) -> None:
    """Print the result line the parent reads."""
    result = {
        "contender": contender,
        "handled": tally.handled,
        "target": tally.target,
        "timed_out": tally.handled < tally.target,
        "peak_running": tally.peak_running,
        "first_handled_at": tally.first_done_at,
        "peak_rss_kib": _peak_rss_kib(),
        **window.figures(),
        **extra,
    }
    # The process's own stdout: some peers (celery) replace sys.stdout with a logger.
    stdout = sys.__stdout__ or sys.stdout
    stdout.write(RESULT_MARKER + json.dumps(result) + "\n")
    stdout.flush()


class Options(argparse.Namespace):
    """What the harness passes every contender, own or peer."""

    contender: str
    endpoint: str
    queue: str
    messages: int
    handler: str
    concurrency: int
    start_url: str | None
    deadline: float
    loop: str
    profile: str | None
    #: The launch run: the queue holds messages from the start, and the contender opens
    #: its window without the settling pause (what counts is its first handled message).
    launch: bool


def parse_options(argv: list[str] | None, contenders: list[str], prog: str) -> Options:
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--contender", choices=contenders, default=contenders[0])
    parser.add_argument("--endpoint", required=True, help="SQS endpoint URL")
    parser.add_argument("--queue", default="bench")
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--handler", choices=("noop", "io", "cpu", "slow"), default="noop")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--start-url", help="POSTed ?messages=N when the window opens")
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds, then give up")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--profile", help="write a cProfile of the window to this file")
    parser.add_argument(
        "--launch", action="store_true", help="messages wait from the start: no settling pause"
    )
    return parser.parse_args(argv, namespace=Options())
