"""`--workers N` against one worker: throughput of a CPU-bound consumer, same invocation.

Runs ``python -m aiosqsworker benchmarks.cpu_service --workers N`` against the instant SQS
responder for N = 1 and N = 2, alternating, and reports messages deleted per second of each,
median over the repetitions, and the ratio. A CPU-bound handler (about 1 ms of hashing per
message) makes one process use one core; the responder answers without work of its own.

Run: ``python -m benchmarks.workers [--messages 6000] [--repetitions 3]``.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

from .harness import PROJECT_ROOT
from .responder import ResponderProcess


def run_once(responder: ResponderProcess, workers: int, messages: int) -> float:
    """Messages deleted per second by `workers` processes, from the first delete to the last."""
    responder.reset(messages)
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_SQS": responder.endpoint_url,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "aiosqsworker", "benchmarks.cpu_service",
         "--workers", str(workers), "--log-level", "WARNING", "--no-progress"],
        cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        first: tuple[float, int] | None = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            deleted = int(responder.counts()["deleted"])
            now = time.monotonic()
            if first is None and deleted >= messages // 10:
                first = (now, deleted)  # past start-up: imports, connections
            if deleted >= messages:
                assert first is not None
                return (deleted - first[1]) / (now - first[0])
            time.sleep(0.05)  # sampling the responder's counter from outside
        raise RuntimeError(f"{workers} workers did not finish {messages} messages in 300 s")
    finally:
        process.send_signal(signal.SIGTERM)  # the supervisor forwards it to its workers
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workers", description=__doc__)
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args(argv)
    rates: dict[int, list[float]] = {1: [], 2: []}
    with ResponderProcess() as responder:
        for repetition in range(args.repetitions):
            for workers in (1, 2):
                rate = run_once(responder, workers, args.messages)
                rates[workers].append(rate)
                print(f"run {repetition + 1}: --workers {workers}: {rate:,.0f} msg/s", flush=True)
    one, two = (statistics.median(rates[n]) for n in (1, 2))
    ratios = [b / a for a, b in zip(rates[1], rates[2], strict=True)]
    print(
        f"median: 1 worker {one:,.0f} msg/s, 2 workers {two:,.0f} msg/s; "
        f"ratio per pair {', '.join(f'{r:.2f}' for r in ratios)}, median "
        f"{statistics.median(ratios):.2f}x"
    )


if __name__ == "__main__":
    main()
