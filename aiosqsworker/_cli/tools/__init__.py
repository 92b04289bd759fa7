"""The operator's queue tools: `send`, `stats`, `dlq inspect`, `dlq redrive` and `queue`.

- ``send QUEUE [BODY ...]`` sends messages from arguments, a file or stdin (one per line) in
  SendMessageBatch calls, through `BatchingSender`, many in flight at once (`.send`, reading
  lines with `.lines`);
- ``stats QUEUE...`` prints what SQS counts for queues and their dead-letter queues (`.stats`);
- ``dlq inspect QUEUE`` peeks at dead-lettered messages and the failure record the framework
  attached (``aiosqsworker.failure``) without consuming them (`.dlq`);
- ``dlq redrive QUEUE`` moves dead letters back to their source queue (`.redrive`);
- ``queue create|purge|delete NAME`` makes and removes queues (`.queue`);
- ``bucket create NAME`` makes the S3 bucket of large messages (`.bucket`).

`.parsers` holds their command line; `._common` what they share. Parsing, checking and
formatting are pure functions, exported here, that tests call directly; the commands do the
I/O around them.
"""

from __future__ import annotations

import argparse

from ._common import Progress, batch_waves, format_rate, queue_name_of
from .bucket import bucket_name_problem, run_bucket
from .dlq import DeadLetterRoute, failure_of, format_peeked
from .lines import LineReader, LineSplitter, decode_line
from .parsers import add_admin_parsers
from .queue import QueuePlan, attribute_conflicts, is_local_endpoint, plan_queues, run_queue
from .redrive import MoveEntry, redrive_decision, redrive_entry
from .send import (
    SendTarget,
    body_problem,
    collect_attributes,
    parse_attribute,
    send_options_problem,
)
from .stats import QueueStats, format_stats_table, queue_stats

__all__ = [
    "DeadLetterRoute",
    "LineReader",
    "LineSplitter",
    "MoveEntry",
    "Progress",
    "QueuePlan",
    "QueueStats",
    "SendTarget",
    "add_admin_parsers",
    "attribute_conflicts",
    "batch_waves",
    "body_problem",
    "bucket_name_problem",
    "collect_attributes",
    "decode_line",
    "failure_of",
    "format_peeked",
    "format_rate",
    "format_stats_table",
    "is_local_endpoint",
    "parse_attribute",
    "plan_queues",
    "queue_name_of",
    "queue_stats",
    "redrive_decision",
    "redrive_entry",
    "run_command",
    "send_options_problem",
]


def run_command(args: argparse.Namespace) -> int:
    """Run the tool `args` names (the CLI's entry point into this package)."""
    if args.command == "queue":
        return run_queue(args)
    if args.command == "bucket":
        return run_bucket(args)
    raise AssertionError(args.command)
