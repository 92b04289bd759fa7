"""Autoscaling simulation: the scaling policies against a bursty day, no AWS needed.

A fluid model, one step per second: messages arrive on a bursty schedule, each running
worker completes up to `PER_WORKER_RATE` messages per second, a new worker serves only after
`STARTUP` seconds, and every `DECISION_EVERY` seconds a policy sets the desired count from
what the SQS API shows (visible, in flight) and, for aiosqsworker's policy, the workers'
completion counters (as `python -m aiosqsworker scale --worker-metrics` reads them). It
compares:

- "1 per 10 queued": ``ceil(visible / 10)`` workers, the rule of thumb behind a KEDA
  ``aws-sqs-queue`` scaler with ``queueLength: 10``;
- "aiosqsworker": `aiosqsworker._run.scaling.recommend` with a 60 s target latency.

Run: ``python -m benchmarks.autoscale [--plot docs/autoscaling.png]``. It prints the
per-policy summary (worst backlog, 95th percentile wait, worker-hours) as a markdown table.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from aiosqsworker._run.scaling import QueueSample, RateMemory, recommend, simple_policy

PER_WORKER_RATE = 25.0  # messages/s one worker completes
STARTUP = 60  # seconds before a new worker serves
DECISION_EVERY = 30  # seconds between scaling decisions
SCALE_DOWN_WINDOW = 300  # seconds of wanted counts a scale-down must respect
MINIMUM, MAXIMUM = 1, 60
TARGET_LATENCY = 60.0
DURATION = 4 * 3600


def arrivals(t: int) -> float:
    """Messages per second at second `t`: a daily-ish wave with bursts and one spike."""
    base = 40 + 30 * math.sin(2 * math.pi * t / (4 * 3600))
    burst = 250 if (t % 1800) < 300 else 0  # five busy minutes every half hour
    spike = 900 if 9000 <= t < 9120 else 0  # a two-minute flood
    return max(0.0, base + burst + spike)


@dataclass
class Run:
    name: str
    workers: list[int] = field(default_factory=list)
    backlog: list[float] = field(default_factory=list)
    wait: list[float] = field(default_factory=list)
    worker_seconds: float = 0.0


Policy = Callable[[QueueSample, QueueSample, int], int]


def simulate(name: str, policy: Policy) -> Run:
    run = Run(name)
    visible = 0.0
    completed = 0.0
    serving = MINIMUM
    starting: list[int] = []  # seconds at which pending workers start serving
    recent: list[tuple[int, int]] = []  # (time, wanted): scale-down stabilization window
    previous = QueueSample(at=0, visible=0, in_flight=0, delayed=0, completed=0, workers=serving)
    for t in range(DURATION):
        visible += arrivals(t)
        serving += sum(1 for ready in starting if ready == t)
        starting = [ready for ready in starting if ready > t]
        capacity = serving * PER_WORKER_RATE
        done = min(visible, capacity)
        visible -= done
        completed += done
        in_flight = int(min(visible, capacity))
        run.workers.append(serving)
        run.backlog.append(visible)
        # A message arriving now waits for the backlog ahead of it to drain at today's pace.
        run.wait.append(visible / capacity if capacity else float("inf"))
        run.worker_seconds += serving + len(starting)
        if t % DECISION_EVERY == 0 and t:
            sample = QueueSample(
                at=t,
                visible=int(visible),
                in_flight=in_flight,
                delayed=0,
                completed=completed,
                workers=serving,
            )
            wanted = policy(previous, sample, serving + len(starting))
            previous = sample
            # As Kubernetes' HPA does: scale up at once, scale down only to the highest
            # count wanted within the stabilization window.
            recent = [(when, count) for when, count in recent if t - when < SCALE_DOWN_WINDOW]
            recent.append((t, wanted))
            target = max(count for _, count in recent)
            pending = serving + len(starting)
            if wanted > pending:
                starting.extend([t + STARTUP] * (wanted - pending))
            elif target < serving:
                serving = max(MINIMUM, target)
    return run


def per_ten_queued(first: QueueSample, last: QueueSample, current: int) -> int:
    return simple_policy(last.visible, messages_per_worker=10, minimum=MINIMUM, maximum=MAXIMUM)


class AiosqsworkerPolicy:
    """`recommend`, with the per-worker rate measured while busy (as `scale --watch` does)."""

    def __init__(self) -> None:
        self.rates = RateMemory()

    def __call__(self, first: QueueSample, last: QueueSample, current: int) -> int:
        return recommend(
            first,
            last,
            target_latency=TARGET_LATENCY,
            minimum=MINIMUM,
            maximum=MAXIMUM,
            per_worker_rate=self.rates.update(first, last),
        ).desired


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(runs: list[Run]) -> str:
    lines = [
        "| policy | worst backlog | p95 wait (s) | p99 wait (s) | worker-hours |",
        "|---|---:|---:|---:|---:|",
    ]
    for run in runs:
        lines.append(
            f"| {run.name} | {max(run.backlog):,.0f} | {percentile(run.wait, 0.95):.0f} | "
            f"{percentile(run.wait, 0.99):.0f} | {run.worker_seconds / 3600:.1f} |"
        )
    return "\n".join(lines)


def plot(runs: list[Run], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [t / 60 for t in range(DURATION)]
    figure, (top, middle, bottom) = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    top.plot(minutes, [arrivals(t) for t in range(DURATION)], color="grey", linewidth=0.8)
    top.set_ylabel("arrivals (msg/s)")
    for run in runs:
        middle.plot(minutes, run.workers, label=run.name, linewidth=1)
        bottom.plot(minutes, run.wait, label=run.name, linewidth=1)
    middle.set_ylabel("workers serving")
    bottom.set_ylabel("wait of a new message (s)")
    bottom.axhline(TARGET_LATENCY, color="black", linestyle=":", linewidth=0.8)
    bottom.set_xlabel("minutes")
    middle.legend(loc="upper left")
    top.set_title(
        f"Scaling policies, {PER_WORKER_RATE:g} msg/s per worker, {STARTUP} s worker start-up"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.autoscale", description=__doc__)
    parser.add_argument("--plot", metavar="PNG", help="write the chart here")
    args = parser.parse_args(argv)
    runs = [
        simulate("1 per 10 queued", per_ten_queued),
        simulate("aiosqsworker", AiosqsworkerPolicy()),
    ]
    print(summary(runs))
    if args.plot:
        plot(runs, args.plot)
        print(f"chart: {args.plot}")


if __name__ == "__main__":
    main()
