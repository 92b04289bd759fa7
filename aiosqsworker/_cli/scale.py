"""`python -m aiosqsworker scale QUEUE`: print the worker count a queue needs."""

from __future__ import annotations

import argparse
import sys
from contextlib import AsyncExitStack

import anyio

from .._config import AppConfig, EnvironmentSettings
from .._errors import ConfigurationError
from .._run.scaling import QueueSample, RateMemory, Recommendation, observe, recommend
from .._sqs.open import open_sqs_client
from .command import (
    Invocation,
    Subparsers,
    add_connection_options,
    add_logging_options,
    command_parser,
)

__all__ = ["add_parser", "format_recommendation", "run", "sampling_note"]

SCALE_EPILOG = """\
how it decides:
  arrivals = completions + growth of the queue (visible + in flight + delayed),
  desired  = ceil((arrivals + visible / --target-latency) / per-worker rate),
  clamped to [--min, --max]. The per-worker rate is --per-worker-rate, or measured
  from the workers' own counters (--worker-metrics, their /metrics endpoints).

examples:
  python -m aiosqsworker scale orders --target-latency 60 --min 1 --max 20 --per-worker-rate 40
  python -m aiosqsworker scale orders --worker-metrics http://10.0.0.5:9090/metrics --watch
"""


#: Seconds between the lines that say a sample is still being taken.
TICK = 5.0


def sampling_note(queue: str, first: QueueSample, interval: float) -> str:
    """What `scale` says while it waits for its second reading: there is nothing to show
    before it, and a silent 10 s looks like a hang."""
    return (
        f"scale: {queue} now holds {first.visible} visible, {first.in_flight} in flight, "
        f"{first.delayed} delayed; a second reading in {interval:g} s gives the rates"
    )


async def _wait_for_next_reading(queue: str, interval: float) -> None:
    remaining = interval
    while remaining > 0:
        step = min(remaining, TICK)
        await anyio.sleep(step)
        remaining -= step
        if remaining > 0:
            print(f"scale: {queue}: next reading in {remaining:.0f} s", file=sys.stderr, flush=True)


def format_recommendation(queue: str, recommendation: Recommendation) -> str:
    r = recommendation
    rates = []
    if r.arrival_rate is not None:
        rates.append(f"arriving {r.arrival_rate:.1f} msg/s")
    if r.completion_rate is not None:
        rates.append(f"completing {r.completion_rate:.1f} msg/s")
    if r.per_worker_rate is not None:
        rates.append(f"{r.per_worker_rate:.1f} msg/s per worker")
    return (
        f"{queue}: desired workers {r.desired} (backlog {r.visible} visible, {r.in_flight} in "
        f"flight{', ' + ', '.join(rates) if rates else ''}): {r.reason}"
    )


async def _scale(args: argparse.Namespace) -> None:
    config = AppConfig(
        region=args.region, endpoint_url=args.endpoint_url, profile=args.profile, client="botocore"
    )
    async with AsyncExitStack() as stack:
        client = await open_sqs_client(stack, config, max_connections=4, longest_wait=0)
        url = await client.resolve_queue_url(args.queue)
        first = await observe(client, url, args.worker_metrics)
        print(sampling_note(args.queue, first, args.interval), file=sys.stderr, flush=True)
        rates = RateMemory(args.per_worker_rate)
        while True:
            await _wait_for_next_reading(args.queue, args.interval)
            last = await observe(client, url, args.worker_metrics)
            recommendation = recommend(
                first,
                last,
                target_latency=args.target_latency,
                minimum=args.minimum,
                maximum=args.maximum,
                per_worker_rate=args.per_worker_rate or rates.update(first, last),
            )
            print(format_recommendation(args.queue, recommendation), flush=True)
            if not args.watch:
                return
            first = last


def add_parser(sub: Subparsers, env: EnvironmentSettings) -> argparse.ArgumentParser:
    parser = command_parser(
        sub,
        "scale",
        help="recommend a worker count for a queue, from SQS's own counters",
        description="Sample the queue (and the workers' metrics, if given) and print how many "
        "workers keep up with arrivals and drain the backlog within --target-latency.",
        epilog=SCALE_EPILOG,
    )
    parser.add_argument("queue", metavar="QUEUE", help="queue name or URL")
    parser.add_argument("--target-latency", type=float, default=60.0, help="seconds")
    parser.add_argument("--min", type=int, default=1, dest="minimum")
    parser.add_argument("--max", type=int, default=20, dest="maximum")
    parser.add_argument(
        "--per-worker-rate", type=float, help="messages/s one worker handles, if known"
    )
    parser.add_argument(
        "--worker-metrics",
        action="append",
        default=[],
        metavar="URL",
        help="a worker's /metrics URL (repeat for each worker): measures the rate",
    )
    parser.add_argument(
        "--interval", type=float, default=10.0, help="seconds between samples (default: 10)"
    )
    parser.add_argument("--watch", action="store_true", help="keep printing")
    add_connection_options(parser)
    add_logging_options(parser, env)
    return parser


def run(call: Invocation) -> int:
    """Sample the queue and print the recommendation (every --interval with --watch)."""
    args = call.args
    if args.target_latency <= 0:
        raise ConfigurationError("--target-latency must be a positive number of seconds")
    if not 0 <= args.minimum <= args.maximum:
        raise ConfigurationError("--min and --max must satisfy 0 <= min <= max")
    if args.interval <= 0:
        raise ConfigurationError("--interval must be a positive number of seconds")
    if args.per_worker_rate is not None and args.per_worker_rate <= 0:
        raise ConfigurationError("--per-worker-rate must be a positive number of messages/s")
    try:
        anyio.run(_scale, args)
    except KeyboardInterrupt:  # pragma: no cover - interactive --watch
        return 130
    return 0
