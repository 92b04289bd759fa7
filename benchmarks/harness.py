"""Running one contender for one run, in a subprocess, and what came out of it.

The parent never consumes: it resets the responder (or fills moto's queue), starts the
contender's process, waits for its result line, and reads the responder's request counts.
Every process it starts it stops, by PID.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._probe import RESULT_MARKER
from .responder import ResponderProcess

__all__ = [
    "CLIENT_COST_HANDLERS",
    "HOT_ACTIONS",
    "PROJECT_ROOT",
    "Contender",
    "Outcome",
    "Summary",
    "child_environment",
    "run_contender",
    "summarize",
]

PROJECT_ROOT = Path(__file__).resolve().parents[1]

#: The calls a consumer makes per message (control-plane calls at start-up are left out).
HOT_ACTIONS = (
    "ReceiveMessage",
    "DeleteMessage",
    "DeleteMessageBatch",
    "ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch",
)
#: The handlers of the client cost tables, each a table of its own (`benchmarks.handlers`).
CLIENT_COST_HANDLERS = ("noop", "io", "cpu")


@dataclass(frozen=True)
class Contender:
    """How to start one contender: its Python, its module and its fixed arguments."""

    name: str
    label: str
    module: str = "benchmarks.contender"
    args: tuple[str, ...] = ()
    python: str = sys.executable
    peer: bool = False
    #: Handlers it can run.
    handlers: tuple[str, ...] = CLIENT_COST_HANDLERS
    #: A contender that is not Python (the Node.js peer): its command, run instead of
    #: ``python -m module``.
    program: tuple[str, ...] = ()
    #: Variables added to its environment.
    env: tuple[tuple[str, str], ...] = ()
    #: The event loop it always runs on (the asyncio floor beside the uvloop one); None:
    #: the suite's.
    loop: str | None = None

    @property
    def command(self) -> list[str]:
        return [*(self.program or (self.python, "-m", self.module)), *self.args]

    @classmethod
    def own(
        cls,
        name: str,
        label: str,
        *,
        loop: str | None = None,
        handlers: tuple[str, ...] = CLIENT_COST_HANDLERS,
    ) -> Contender:
        return cls(name=name, label=label, args=("--contender", name), loop=loop, handlers=handlers)


@dataclass
class Outcome:
    """One run of one contender."""

    contender: str
    handler: str
    concurrency: int
    messages: int
    handled: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_kib: int = 0
    rss_ready_kib: int = 0
    rss_stop_kib: int = 0
    peak_running: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    received: int = 0
    deleted: int = 0
    #: From the window's opening to the responder's last delete (the run's true end).
    completed_seconds: float = 0.0
    responder_cpu_seconds: float = 0.0
    timed_out: bool = False
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: From just before the process was started to its first handled message (wall clock).
    launch_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.handled > 0

    @property
    def rate(self) -> float:
        return self.handled / self.seconds if self.seconds > 0 else 0.0

    @property
    def completed_rate(self) -> float:
        """Messages handled and deleted per second, to the last delete the server saw."""
        return self.deleted / self.completed_seconds if self.completed_seconds > 0 else 0.0

    @property
    def cpu_us_per_message(self) -> float:
        return 1e6 * self.cpu_seconds / self.handled if self.handled else 0.0

    @property
    def hot_requests(self) -> int:
        return sum(self.requests.get(action, 0) for action in HOT_ACTIONS)

    @property
    def requests_per_message(self) -> float | None:
        if not self.requests or not self.handled:
            return None
        return self.hot_requests / self.handled

    @property
    def responder_load(self) -> float:
        """Share of one core the responder used during the run (1.0: it was the limit)."""
        return self.responder_cpu_seconds / self.seconds if self.seconds > 0 else 0.0


#: Where the contenders' bytecode is written and read back, outside the tree: an installed
#: package reads its bytecode, so a launch that compiled every module would not be what a
#: user's launch costs (and the peers' own environments have theirs).
BYTECODE_CACHE = Path(tempfile.gettempdir()) / "aiosqsworker-benchmarks-bytecode"


def child_environment() -> dict[str, str]:
    """The contender's environment: fake credentials, none of the user's AWS configuration,
    bytecode in `BYTECODE_CACHE`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AWS_") and name not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        PYTHONPYCACHEPREFIX=str(BYTECODE_CACHE),
    )
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_contender(
    contender: Contender,
    *,
    endpoint: str,
    handler: str,
    concurrency: int,
    messages: int,
    deadline: float,
    loop: str = "uvloop",
    queue: str = "bench",
    profile: str | None = None,
    responder: ResponderProcess | None = None,
    launch: bool = False,
) -> Outcome:
    """Run one contender once; with a `responder`, reset it first and read its counts after.

    With a responder, the contender releases the budget (`messages`) when its window opens.
    """
    before = responder.reset(0) if responder is not None else None
    command = contender.command
    command += ["--endpoint", endpoint, "--queue", queue, "--messages", str(messages)]
    command += ["--handler", handler, "--concurrency", str(concurrency)]
    command += ["--deadline", str(deadline), "--loop", contender.loop or loop]
    if launch:
        command += ["--launch"]
    if responder is not None:
        command += ["--start-url", responder.release_url]
    if profile:
        command += ["--profile", profile]
    outcome = Outcome(contender.name, handler, concurrency, messages)
    launched_at = time.time()
    try:
        completed = subprocess.run(
            command,
            cwd=PROJECT_ROOT,
            env={**child_environment(), **dict(contender.env)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=deadline + 90,
            check=False,
        )
    except subprocess.TimeoutExpired:  # subprocess.run kills the child before raising
        outcome.error = f"no result within {deadline + 90:.0f} s"
        return outcome
    result = _result_line(completed.stdout.decode(errors="replace"))
    if result is None:
        tail = completed.stderr.decode(errors="replace").strip().splitlines()[-6:]
        outcome.error = f"exit code {completed.returncode}: " + " | ".join(tail)[-600:]
        return outcome
    outcome.handled = int(result.pop("handled"))
    outcome.seconds = float(result.pop("seconds"))
    outcome.cpu_seconds = float(result.pop("cpu_user")) + float(result.pop("cpu_sys"))
    outcome.peak_rss_kib = int(result.pop("peak_rss_kib"))
    outcome.rss_ready_kib = int(result.pop("rss_ready_kib", 0))
    outcome.rss_stop_kib = int(result.pop("rss_stop_kib", 0))
    outcome.peak_running = int(result.pop("peak_running", 0))
    outcome.timed_out = bool(result.pop("timed_out", False))
    outcome.extra = result
    first = float(result.get("first_handled_at") or 0.0)
    outcome.launch_seconds = first - launched_at if first else 0.0
    if responder is not None and before is not None:
        after = responder.counts()
        outcome.requests = dict(after["requests"])
        outcome.received = int(after["received"])
        outcome.deleted = int(after["deleted"])
        outcome.responder_cpu_seconds = after["cpu_seconds"] - before["cpu_seconds"]
        started_at = float(result.get("started_at", 0.0))
        if after.get("last_delete_at") and started_at:
            outcome.completed_seconds = max(0.0, float(after["last_delete_at"]) - started_at)
    return outcome


def _result_line(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        at = line.find(RESULT_MARKER)
        if at >= 0:
            result: dict[str, Any] = json.loads(line[at + len(RESULT_MARKER) :])
            return result
    return None


@dataclass(frozen=True)
class Summary:
    """Medians of one contender's runs of one scenario."""

    contender: str
    runs: int
    failed: int
    rate: float
    rate_low: float
    rate_high: float
    completed_rate: float
    cpu_us: float
    requests_per_message: float | None
    peak_rss_mib: float
    rss_growth_mib: float
    responder_load: float
    handled: int
    messages: int
    timed_out: bool
    error: str | None

    @property
    def ok(self) -> bool:
        return self.runs > 0


def summarize(contender: str, outcomes: Sequence[Outcome]) -> Summary:
    good = [o for o in outcomes if o.ok]
    errors = [o.error for o in outcomes if o.error]
    if not good:
        return Summary(
            contender, 0, len(outcomes), 0, 0, 0, 0, 0, None, 0, 0, 0, 0, 0, False,
            errors[0] if errors else "no run",
        )  # fmt: skip
    rates = [o.rate for o in good]
    per_message = [o.requests_per_message for o in good if o.requests_per_message is not None]
    return Summary(
        contender=contender,
        runs=len(good),
        failed=len(outcomes) - len(good),
        rate=statistics.median(rates),
        rate_low=min(rates),
        rate_high=max(rates),
        completed_rate=statistics.median(o.completed_rate for o in good),
        cpu_us=statistics.median(o.cpu_us_per_message for o in good),
        requests_per_message=statistics.median(per_message) if per_message else None,
        peak_rss_mib=statistics.median(o.peak_rss_kib for o in good) / 1024,
        rss_growth_mib=statistics.median(max(0, o.rss_stop_kib - o.rss_ready_kib) for o in good)
        / 1024,
        responder_load=statistics.median(o.responder_load for o in good),
        handled=int(statistics.median(o.handled for o in good)),
        messages=good[0].messages,
        timed_out=any(o.timed_out for o in good),
        error=errors[0] if errors else None,
    )
