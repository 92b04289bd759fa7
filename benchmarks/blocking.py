"""CPU-bound handlers four ways: on the loop, in a thread, in processes, and ``--workers 2``.

Against moto's server (`aiosqsworker.testing.LocalSQSServer`), whose visibility timeouts
are real: a job that outlives its lease because the loop could not extend it is received
again, and runs again. Each contender runs ``python -m aiosqsworker
benchmarks.blocking_service:app`` (see there) on a fresh queue with a 2 s visibility
timeout, concurrency 2 and no prefetch, and is timed from its first job's start to its last
job's end, from the ledger its handlers keep. Two workloads:

- short jobs: many jobs of 0.1 s of CPU each, for messages per second;
- long jobs: six jobs of 3 s of CPU each, longer than the visibility timeout, for how many
  times each one runs (the leases of a blocked loop expire).

Run: ``python -m benchmarks.blocking [--quick]``; ``python -m benchmarks`` runs it too.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from aiosqsworker.testing import LocalSQSServer

from .harness import PROJECT_ROOT
from .moto_run import REGION, _client

__all__ = ["MODES", "BlockingOutcome", "Workload", "run_blocking"]

#: (name, label, BLOCKING_MODE, --workers)
MODES = (
    ("loop", "async def on the loop", "loop", 1),
    ("thread", "def (a worker thread)", "thread", 1),
    ("process", 'def, run_in="process", processes=2', "process", 1),
    ("workers", "async def on the loop, --workers 2", "loop", 2),
)


@dataclass(frozen=True)
class Workload:
    name: str
    messages: int
    seconds: float  # CPU time per job
    deadline: float  # the run is cut short after this long


@dataclass
class BlockingOutcome:
    workload: str
    contender: str
    label: str
    messages: int
    done: int
    runs: int
    seconds: float
    timed_out: bool = False
    error: str | None = None

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    @property
    def duplicates(self) -> int:
        """Job runs beyond one per message: a lease that expired while its job ran."""
        return self.runs - self.done


def workloads(quick: bool) -> tuple[Workload, ...]:
    if quick:
        return (Workload("short", 20, 0.1, 60), Workload("long", 2, 3.0, 60))
    return (Workload("short", 60, 0.1, 120), Workload("long", 6, 3.0, 90))


def _read(ledger: Path) -> list[tuple[str, str, float]]:
    if not ledger.exists():
        return []
    return [
        (kind, message_id, float(at))
        for _, kind, message_id, at in (line.split() for line in ledger.read_text().splitlines())
    ]


def run_one(
    server: LocalSQSServer, workload: Workload, mode: tuple[str, str, str, int]
) -> BlockingOutcome:
    name, label, handler_mode, workers = mode
    sqs = _client(server.endpoint_url)
    server.reset()
    url = sqs.create_queue(QueueName="bench-blocking", Attributes={"VisibilityTimeout": "2"})[
        "QueueUrl"
    ]
    body = json.dumps({"seconds": workload.seconds})
    for start in range(0, workload.messages, 10):
        count = min(10, workload.messages - start)
        sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": body} for i in range(count)]
        )
    with tempfile.TemporaryDirectory() as scratch:
        ledger = Path(scratch) / "ledger"
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL_SQS": server.endpoint_url,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "BLOCKING_MODE": handler_mode,
            "BLOCKING_LEDGER": str(ledger),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "aiosqsworker", "benchmarks.blocking_service:app",
             "--workers", str(workers), "--log-level", "ERROR", "--no-progress"],
            cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        timed_out = True
        try:
            deadline = time.monotonic() + workload.deadline
            while time.monotonic() < deadline:
                events = _read(ledger)
                done = {message_id for kind, message_id, _ in events if kind == "done"}
                starts = Counter(message_id for kind, message_id, _ in events if kind == "start")
                running = sum(starts.values()) - sum(1 for kind, *_ in events if kind == "done")
                if len(done) >= workload.messages and running <= 0:
                    timed_out = False
                    break
                time.sleep(0.2)  # sampling the ledger from outside
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        events = _read(ledger)
    done = {message_id for kind, message_id, _ in events if kind == "done"}
    times = [at for _, _, at in events]
    return BlockingOutcome(
        workload=workload.name,
        contender=name,
        label=label,
        messages=workload.messages,
        done=len(done),
        runs=sum(1 for kind, *_ in events if kind == "start"),
        seconds=(max(times) - min(times)) if times else 0.0,
        timed_out=timed_out,
    )


def run_blocking(*, quick: bool = False, progress: bool = True) -> list[BlockingOutcome]:
    """Every workload with every mode, one run each, against one moto server."""
    outcomes = []
    with LocalSQSServer() as server:
        for workload in workloads(quick):
            for mode in MODES:
                outcome = run_one(server, workload, mode)
                outcomes.append(outcome)
                if progress:
                    print(f"  [blocking {workload.name}] {mode[0]:<8} {describe(outcome)}",
                          file=sys.stderr, flush=True)  # fmt: skip
    return outcomes


def describe(outcome: BlockingOutcome) -> str:
    return (
        f"{outcome.done}/{outcome.messages} done in {outcome.seconds:.1f} s = "
        f"{outcome.rate:.2f} msg/s, {outcome.runs} runs ({outcome.duplicates} duplicate)"
        + (" (time-boxed)" if outcome.timed_out else "")
    )


def table(outcomes: list[BlockingOutcome], workload: str) -> list[str]:
    """The markdown rows of one workload."""
    mine = [o for o in outcomes if o.workload == workload]
    reference = next((o for o in mine if o.contender == "loop"), None)
    lines = [
        "| handler | messages done | seconds | messages/s | x on the loop | job runs | "
        "duplicate runs |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for o in mine:
        ratio = f"{o.rate / reference.rate:.2f}x" if reference and reference.rate else "-"
        note = " (time-boxed)" if o.timed_out else ""
        lines.append(
            f"| {o.label} | {o.done}/{o.messages}{note} | {o.seconds:.1f} | {o.rate:.2f} | "
            f"{ratio} | {o.runs} | {o.duplicates} |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.blocking", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer and shorter jobs")
    args = parser.parse_args(argv)
    outcomes = run_blocking(quick=args.quick)
    for workload in workloads(args.quick):
        print(f"\n{workload.name} jobs ({workload.messages} x {workload.seconds:g} s of CPU):")
        print("\n".join(table(outcomes, workload.name)))


if __name__ == "__main__":
    main()
