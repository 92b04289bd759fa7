"""The operator's queue tools: `send`, `stats`, `dlq inspect`, `dlq redrive`, `queue`, `bucket`.

- ``send QUEUE [BODY ...]`` sends messages from arguments, a file or stdin (one per line) in
  SendMessageBatch calls, through `BatchingSender`, many in flight at once (`.send`, reading
  lines with `.lines`);
- ``stats QUEUE...`` prints what SQS counts for queues and their dead-letter queues (`.stats`);
- ``dlq inspect QUEUE`` peeks at dead-lettered messages and the failure record the framework
  attached (``aiosqsworker.failure``) without consuming them (`.dlq`);
- ``dlq redrive QUEUE`` moves dead letters back to their source queue (`.redrive`);
- ``queue create|purge|delete NAME`` makes and removes queues (`.queue`);
- ``bucket create NAME`` makes the S3 bucket of large messages (`.bucket`).

Each command's module holds its parser (``add_parser``) beside what it runs (``run``), as
`aiosqsworker._cli.command` describes; `.dlqcommand` makes `dlq`'s two actions one command;
`._common` holds what they share. Parsing, checking and
formatting are pure functions, exported here, that tests call directly; the commands do the
I/O around them.
"""

from __future__ import annotations

from ._common import Progress, batch_waves, format_rate, queue_name_of
from .bucket import bucket_name_problem
from .dlq import DeadLetterRoute, failure_of, format_peeked
from .lines import LineReader, LineSplitter, decode_line
from .queue import QueuePlan, attribute_conflicts, is_local_endpoint, plan_queues
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
    "send_options_problem",
]
