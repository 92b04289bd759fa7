"""The benchmark suite: which scenarios run, with which contenders, how many times.

Scenarios:

- client cost: every contender against the local responder, per handler (no-op, I/O-bound,
  CPU-bound), concurrency 100, repeated; runs interleave contenders so that drift in the
  machine's speed spreads over all of them;
- scaling: the I/O-bound handler at concurrency 1, 10, 100 and 1000 (throughput, and peak
  RSS against the messages in flight);
- in flight: a 1 s handler at concurrency 1,000 and 10,000 (share of the ideal throughput,
  and RSS per message in flight between the two);
- idle: ReceiveMessage calls per minute on an empty queue at concurrency 10, 100 and 1,000,
  every contender at once for a minute, each on a queue of its own;
- sparse: one message a minute on moto, requests per message (the watch polls' extension);
- end to end: against moto's server with a small refilled backlog;
- blocking and CPU-bound handlers: on the loop, in a thread, in processes and with
  ``--workers 2``, against moto (`benchmarks/blocking.py`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .blocking import BlockingOutcome
from .contender import WAIT_TIME
from .handlers import SLOW_SECONDS
from .harness import CLIENT_COST_HANDLERS, Contender, Outcome, run_contender
from .instructions import InstructionCounts
from .responder import ResponderProcess
from .sparse import SparseOutcome
from .startup import ImportTimes

__all__ = [
    "CLIENT_COST_ONLY",
    "OWN_CONTENDERS",
    "REFERENCE",
    "IdleRun",
    "Plan",
    "Results",
    "run_client_cost",
    "run_idle",
    "run_inflight",
    "run_scaling",
]

OWN_CONTENDERS = (
    Contender.own("aiosqsworker", "aiosqsworker (default: fast path)"),
    Contender.own("aiosqsworker-botocore", 'aiosqsworker (client="botocore")'),
    Contender.own("aiosqsworker-def", "aiosqsworker, `def` handler (in threads)"),
    Contender.own("aiobotocore-loop", "bare aiobotocore loop (ceiling on aiobotocore)"),
    Contender.own("aiohttp-loop", "bare aiohttp loop, unsigned JSON (floor)"),
    Contender.own(
        "aiohttp-loop-asyncio", "bare aiohttp loop on asyncio's loop (floor)", loop="asyncio"
    ),
    Contender.own("lean-floor", "bare loop on the lean transport (floor of the fast path)"),
    Contender.own(
        "lean-transport",
        "the lean transport alone, handlers in turn (no loop)",
        handlers=("noop",),
    ),
)
#: Contenders run in the client cost table only: variants of a row there.
CLIENT_COST_ONLY = frozenset(
    {"aiosqsworker-def", "aiohttp-loop-asyncio", "lean-floor", "lean-transport"}
)
#: Ratios are to this contender, measured in the same invocation.
REFERENCE = "aiobotocore-loop"

Progress = Callable[[str, Contender, int, Outcome], None]


@dataclass
class Plan:
    """How much to run; `quick()` is the smoke run."""

    handlers: tuple[str, ...] = CLIENT_COST_HANDLERS
    #: Messages per run of the own contenders. The no-op runs are long enough (a second or
    #: two) that the window's fixed costs and this machine's jitter weigh little.
    messages: dict[str, int] = field(
        default_factory=lambda: {"noop": 50_000, "io": 5000, "cpu": 3000}
    )
    #: ... and of the peers, the slowest of which handle a few hundred a second.
    peer_messages: dict[str, int] = field(
        default_factory=lambda: {"noop": 5000, "io": 5000, "cpu": 3000}
    )
    repetitions: dict[str, int] = field(default_factory=lambda: {"noop": 5, "io": 3, "cpu": 3})
    concurrency: int = 100
    scaling_levels: tuple[int, ...] = (1, 10, 100, 1000)
    #: Messages per scaling run: about 2-5 s of work at each level for the I/O-bound handler.
    scaling_messages: dict[int, int] = field(
        default_factory=lambda: {1: 60, 10: 400, 100: 4000, 1000: 20000}
    )
    scaling_repetitions: int = 1
    #: The 1 s handler at these concurrencies, `inflight_rounds` messages per handler slot,
    #: every contender `inflight_repetitions` times, interleaved (the table takes medians).
    inflight_levels: tuple[int, ...] = (1000, 10_000)
    inflight_rounds: int = 4
    inflight_repetitions: int = 3
    #: Empty queue, every contender at once, for `idle_seconds` (three long polls of 20 s).
    idle_levels: tuple[int, ...] = (10, 100, 1000)
    idle_seconds: float = 60.0
    #: A message every `sparse_interval` seconds on moto, `sparse_messages` of them.
    sparse_messages: int = 5
    sparse_interval: float = 60.0
    moto_messages: int = 1000
    moto_backlog: int = 300
    moto_repetitions: int = 1
    peer_repetitions: int = 1
    peer_deadline: float = 20.0
    deadline: float = 60.0
    loop: str = "uvloop"
    #: Fresh processes timed for `import aiosqsworker`, and launches to a first message.
    import_runs: int = 15
    launch_runs: int = 3

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            messages={"noop": 1000, "io": 500, "cpu": 500},
            peer_messages={"noop": 1000, "io": 500, "cpu": 500},
            repetitions={"noop": 1, "io": 1, "cpu": 1},
            scaling_levels=(1, 10, 100),
            scaling_messages={1: 20, 10: 100, 100: 500},
            inflight_levels=(100, 1000),
            inflight_rounds=2,
            inflight_repetitions=1,
            idle_levels=(100,),
            idle_seconds=25.0,
            sparse_messages=2,
            sparse_interval=10.0,
            moto_messages=200,
            moto_backlog=100,
            peer_deadline=15.0,
            deadline=30.0,
            import_runs=2,
            launch_runs=1,
        )


@dataclass
class Results:
    """Everything one invocation measured, by scenario, contender and run."""

    client_cost: dict[str, dict[str, list[Outcome]]] = field(default_factory=dict)
    scaling: dict[int, dict[str, list[Outcome]]] = field(default_factory=dict)
    inflight: dict[int, dict[str, list[Outcome]]] = field(default_factory=dict)
    idle: dict[int, dict[str, IdleRun]] = field(default_factory=dict)
    idle_seconds: float = 0.0
    sparse: SparseOutcome | None = None
    moto: dict[str, list[Outcome]] = field(default_factory=dict)
    blocking: list[BlockingOutcome] = field(default_factory=list)
    #: Launch to first message, by contender (`startup.run_launch`).
    launch: dict[str, list[Outcome]] = field(default_factory=dict)
    imports: ImportTimes | None = None
    #: The no-op client cost counted in instructions (`instructions.run_instructions`).
    instructions: InstructionCounts | None = None
    peers: dict[str, str] = field(default_factory=dict)  # peer -> "ran" or why not
    labels: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def describe(outcome: Outcome) -> str:
    if outcome.error:
        return f"FAILED: {outcome.error}"
    rpm = outcome.requests_per_message
    return (
        f"{outcome.handled}/{outcome.messages} msgs in {outcome.seconds:.2f} s = "
        f"{outcome.rate:,.0f}/s, {outcome.cpu_us_per_message:,.0f} µs CPU/msg, "
        + (f"{rpm:.3f} req/msg, " if rpm is not None else "")
        + f"peak RSS {outcome.peak_rss_kib / 1024:.0f} MiB"
        + (" (time-boxed)" if outcome.timed_out else "")
    )


def print_progress(scenario: str, contender: Contender, rep: int, outcome: Outcome) -> None:
    log(f"  [{scenario}] run {rep + 1} {contender.name:<24} {describe(outcome)}")


def run_client_cost(
    plan: Plan,
    contenders: Sequence[Contender],
    responder: ResponderProcess,
    *,
    progress: Progress = print_progress,
    profile: str | None = None,
) -> dict[str, dict[str, list[Outcome]]]:
    """Per handler: every contender, `repetitions` times, interleaved."""
    results: dict[str, dict[str, list[Outcome]]] = {}
    for handler in plan.handlers:
        by_contender: dict[str, list[Outcome]] = {c.name: [] for c in contenders}
        runnable = [c for c in contenders if handler in c.handlers]
        for rep in range(plan.repetitions[handler]):
            for contender in runnable:
                repetitions = plan.peer_repetitions if contender.peer else plan.repetitions[handler]
                if rep >= repetitions:
                    continue
                outcome = run_contender(
                    contender,
                    endpoint=responder.endpoint_url,
                    handler=handler,
                    concurrency=plan.concurrency,
                    messages=(plan.peer_messages if contender.peer else plan.messages)[handler],
                    deadline=plan.peer_deadline if contender.peer else plan.deadline,
                    loop=plan.loop,
                    responder=responder,
                    profile=profile if rep == 0 and contender.name == "aiosqsworker" else None,
                )
                by_contender[contender.name].append(outcome)
                progress(handler, contender, rep, outcome)
        results[handler] = by_contender
    return results


def _run_levels(
    plan: Plan,
    contenders: Sequence[Contender],
    responder: ResponderProcess,
    progress: Progress,
    *,
    handler: str,
    levels: Sequence[int],
    messages: Callable[[int], int],
    repetitions: int,
    label: Callable[[int], str],
) -> dict[int, dict[str, list[Outcome]]]:
    """`handler` at each concurrency of `levels`, every contender `repetitions` times."""
    results: dict[int, dict[str, list[Outcome]]] = {}
    for level in levels:
        by_contender: dict[str, list[Outcome]] = {c.name: [] for c in contenders}
        for rep in range(repetitions):
            for contender in contenders:
                outcome = run_contender(
                    contender,
                    endpoint=responder.endpoint_url,
                    handler=handler,
                    concurrency=level,
                    messages=messages(level),
                    deadline=plan.deadline,
                    loop=plan.loop,
                    responder=responder,
                )
                by_contender[contender.name].append(outcome)
                progress(label(level), contender, rep, outcome)
        results[level] = by_contender
    return results


def run_scaling(
    plan: Plan,
    contenders: Sequence[Contender],
    responder: ResponderProcess,
    *,
    progress: Progress = print_progress,
) -> dict[int, dict[str, list[Outcome]]]:
    """The I/O-bound handler at each concurrency level."""
    return _run_levels(
        plan,
        contenders,
        responder,
        progress,
        handler="io",
        levels=plan.scaling_levels,
        messages=lambda level: plan.scaling_messages[level],
        repetitions=plan.scaling_repetitions,
        label=lambda level: f"io c={level}",
    )


def run_inflight(
    plan: Plan,
    contenders: Sequence[Contender],
    responder: ResponderProcess,
    *,
    progress: Progress = print_progress,
) -> dict[int, dict[str, list[Outcome]]]:
    """The 1 s handler at each in-flight level: every slot busy for `inflight_rounds` s."""
    return _run_levels(
        plan,
        contenders,
        responder,
        progress,
        handler="slow",
        levels=plan.inflight_levels,
        messages=lambda level: level * plan.inflight_rounds,
        repetitions=plan.inflight_repetitions,
        label=lambda level: f"slow c={level:,}",
    )


def ideal_rate(concurrency: int) -> float:
    """Messages a second of `concurrency` handlers that each take `SLOW_SECONDS`."""
    return concurrency / SLOW_SECONDS


@dataclass(frozen=True)
class IdleRun:
    """One contender idle on an empty queue: its ReceiveMessage calls within its window."""

    contender: str
    concurrency: int
    receives: int
    seconds: float
    error: str | None = None

    @property
    def per_minute(self) -> float:
        return 60.0 * self.receives / self.seconds if self.seconds > 0 else 0.0

    @property
    def polls_worth(self) -> float:
        """Receives per minute as a multiple of one long poll's (60 / wait_time)."""
        return self.per_minute / (60.0 / WAIT_TIME)


def run_idle(
    plan: Plan,
    contenders: Sequence[Contender],
    responder: ResponderProcess,
    *,
    progress: Callable[[str], None] | None = None,
) -> dict[int, dict[str, IdleRun]]:
    """Every contender at every idle level at once, each on its own empty queue.

    An idle consumer costs almost no CPU, so they share the minute; the responder records
    when each ReceiveMessage arrived, by queue, and each run's calls are counted within its
    own measuring window (after its set-up, before its shutdown).
    """
    responder.reset(0)
    runs = [(c, level) for level in plan.idle_levels for c in contenders]

    def idle(run: tuple[Contender, int]) -> tuple[Contender, int, Outcome]:
        contender, level = run
        outcome = run_contender(
            contender,
            endpoint=responder.endpoint_url,
            handler="noop",
            concurrency=level,
            messages=0,
            deadline=plan.idle_seconds,
            loop=plan.loop,
            queue=f"idle-{contender.name}-{level}",
        )
        return contender, level, outcome

    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        finished = list(pool.map(idle, runs))
    arrivals = responder.receive_times()
    results: dict[int, dict[str, IdleRun]] = {level: {} for level in plan.idle_levels}
    for contender, level, outcome in finished:
        started = float(outcome.extra.get("started_at", 0.0))
        seconds = outcome.seconds
        times = arrivals.get(f"idle-{contender.name}-{level}", [])
        receives = sum(1 for t in times if started <= t < started + seconds)
        run = IdleRun(contender.name, level, receives, seconds, outcome.error)
        results[level][contender.name] = run
        if progress is not None:
            progress(
                f"  [idle c={level:,}] {contender.name:<24} "
                + (f"FAILED: {run.error}" if run.error else f"{run.per_minute:.1f} receives/min")
            )
    return results


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started
