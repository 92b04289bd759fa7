"""`stats QUEUE...`: what SQS counts for queues and their dead-letter queues.

`queue_stats` makes a row of a queue's attributes (and its dead-letter queue's);
`format_stats_table` lays the rows out. Both are pure: tests call them directly.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio

from ..._config import EnvironmentSettings
from ..._errors import QueueNotFoundError
from ..._sqs.base import SQSClient
from ..._sqs.redrive import RedrivePolicy
from ..command import (
    Invocation,
    Subparsers,
    add_connection_options,
    add_logging_options,
    argument,
    checked_number,
    command_parser,
)
from ._common import count_of, open_client, queue_depth, queue_name_of, run_coroutine

__all__ = [
    "STATS_COLUMNS",
    "QueueStats",
    "add_parser",
    "format_stats_table",
    "queue_stats",
    "run",
]

STATS_EPILOG = """\
columns:
  VISIBLE       messages waiting to be received (ApproximateNumberOfMessages)
  IN FLIGHT     received, not deleted yet (ApproximateNumberOfMessagesNotVisible)
  DELAYED       sent with a delay that is not over (ApproximateNumberOfMessagesDelayed)
  DLQ           the dead-letter queue of the RedrivePolicy ("-": none)
  DLQ DEPTH     all its messages: visible + in flight + delayed ("missing": no such queue)
  MAX RECEIVES  the RedrivePolicy's maxReceiveCount: receives before SQS dead-letters
  VISIBILITY    the queue's VisibilityTimeout
  SQS's counts are approximate. The age of the oldest message is not shown: SQS's API does
  not report it (CloudWatch's ApproximateAgeOfOldestMessage metric does).

examples:
  python -m aiosqsworker stats orders payments
  python -m aiosqsworker stats orders --watch          every 5 s, until Ctrl-C
  python -m aiosqsworker stats orders --watch 1 --json
"""

#: `--watch SECONDS`
_seconds = checked_number(
    float, lambda value: value > 0 and not math.isinf(value), "a positive number of seconds"
)


@dataclass(frozen=True, slots=True)
class QueueStats:
    """One row of `stats`."""

    queue: str
    visible: int
    in_flight: int
    delayed: int
    visibility_timeout: int | None
    dead_letter_queue: str | None = None
    dead_letter_depth: int | None = None  # None with a dead-letter queue: it does not exist
    max_receive_count: int | None = None


def queue_stats(
    queue: str,
    attributes: Mapping[str, str],
    dead_letter_attributes: Mapping[str, str] | None = None,
) -> QueueStats:
    """A row from the queue's attributes and, if it has one, its dead-letter queue's."""
    policy = RedrivePolicy.of(attributes)
    timeout = attributes.get("VisibilityTimeout")
    return QueueStats(
        queue=queue,
        visible=count_of(attributes, "ApproximateNumberOfMessages"),
        in_flight=count_of(attributes, "ApproximateNumberOfMessagesNotVisible"),
        delayed=count_of(attributes, "ApproximateNumberOfMessagesDelayed"),
        visibility_timeout=int(timeout) if timeout and timeout.isdigit() else None,
        dead_letter_queue=queue_name_of(policy.dead_letter_arn) if policy else None,
        dead_letter_depth=(
            queue_depth(dead_letter_attributes)
            if policy and dead_letter_attributes is not None
            else None
        ),
        max_receive_count=policy.max_receive_count if policy else None,
    )


STATS_COLUMNS = (
    "QUEUE",
    "VISIBLE",
    "IN FLIGHT",
    "DELAYED",
    "DLQ",
    "DLQ DEPTH",
    "MAX RECEIVES",
    "VISIBILITY",
)
_TEXT_COLUMNS = {0, 4}


def _stats_cells(row: QueueStats) -> tuple[str, ...]:
    has_dlq = row.dead_letter_queue is not None
    return (
        row.queue,
        str(row.visible),
        str(row.in_flight),
        str(row.delayed),
        row.dead_letter_queue or "-",
        ("missing" if row.dead_letter_depth is None else str(row.dead_letter_depth))
        if has_dlq
        else "-",
        str(row.max_receive_count) if row.max_receive_count is not None else "-",
        f"{row.visibility_timeout}s" if row.visibility_timeout is not None else "-",
    )


def format_stats_table(rows: Sequence[QueueStats]) -> str:
    """The rows under a header, in aligned columns: names to the left, numbers to the right."""
    table = [STATS_COLUMNS, *(_stats_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(STATS_COLUMNS))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if i in _TEXT_COLUMNS else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in table
    )


async def _stats_rows(
    client: SQSClient, urls: Sequence[str], dead_letter_urls: dict[str, str | None]
) -> list[QueueStats]:
    rows: list[QueueStats | None] = [None] * len(urls)

    async def one(index: int, url: str) -> None:
        attributes = await client.get_queue_attributes(url)
        policy = RedrivePolicy.of(attributes)
        dead_letter_attributes = None
        if policy:
            arn = policy.dead_letter_arn
            if arn not in dead_letter_urls:
                try:
                    dead_letter_urls[arn] = await policy.dead_letter_url(client)
                except QueueNotFoundError:
                    dead_letter_urls[arn] = None
            dead_letter_url = dead_letter_urls[arn]
            if dead_letter_url is not None:
                try:
                    dead_letter_attributes = await client.get_queue_attributes(dead_letter_url)
                except QueueNotFoundError:
                    dead_letter_urls.pop(arn, None)
        rows[index] = queue_stats(queue_name_of(url), attributes, dead_letter_attributes)

    async with anyio.create_task_group() as group:
        for index, url in enumerate(urls):
            group.start_soon(one, index, url)
    return [row for row in rows if row is not None]


async def _stats(args: argparse.Namespace) -> int:
    async with AsyncExitStack() as stack:
        client = await open_client(stack, args, max_connections=8)
        urls = [await client.resolve_queue_url(queue) for queue in args.queues]
        dead_letter_urls: dict[str, str | None] = {}
        clear = args.watch is not None and not args.json and sys.stdout.isatty()
        while True:
            rows = await _stats_rows(client, urls, dead_letter_urls)
            now = datetime.now(tz=UTC).astimezone()
            if args.json:
                for row in rows:
                    print(json.dumps({"time": now.isoformat(), **dataclasses.asdict(row)}))
            else:
                if clear:
                    print("\x1b[H\x1b[2J", end="")
                if args.watch is not None:
                    print(f"{now:%Y-%m-%d %H:%M:%S}  every {args.watch:g} s, Ctrl-C stops")
                print(format_stats_table(rows))
                if args.watch is not None:
                    print()
            sys.stdout.flush()
            if args.watch is None:
                return 0
            await anyio.sleep(args.watch)


def add_parser(sub: Subparsers, env: EnvironmentSettings) -> argparse.ArgumentParser:
    parser = command_parser(
        sub,
        "stats",
        help="show queue depths, in flight, delayed, and dead-letter queues",
        description="Print what SQS counts for each QUEUE (name or URL) and its dead-letter "
        "queue. The age of the oldest message is left out: SQS's API does not report it.",
        epilog=STATS_EPILOG,
    )
    parser.add_argument("queues", metavar="QUEUE", nargs="+", help="queue names or URLs")
    parser.add_argument(
        "--watch",
        nargs="?",
        const=5.0,
        type=argument(_seconds),
        metavar="SECONDS",
        help="refresh every SECONDS (default 5) until Ctrl-C",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per queue")
    add_connection_options(parser)
    add_logging_options(parser, env)
    return parser


def run(call: Invocation) -> int:
    """Print the queues' counts (every --watch seconds, until Ctrl-C)."""
    return run_coroutine(_stats, call.args)
