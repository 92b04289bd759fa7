"""The command line of the queue tools: `send`, `stats`, `dlq` (`inspect`, `redrive`) and
`queue` (`create`, `purge`, `delete`).

`add_admin_parsers` adds them to the CLI's subcommands; the epilogs are their ``--help``
pages' guide (input, what each column or step means, exit codes, examples).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeAlias

from ..._config import MAX_VISIBILITY
from ..._producer import MAX_DELAY
from ..._sqs.base import MAX_MESSAGE_BYTES
from ..command import argument, checked_number
from ._common import delay_seconds
from .queue import (
    DEFAULT_MAX_RECEIVE_COUNT,
    MAX_RECEIVE_COUNT,
    MAX_RETENTION,
    MIN_MESSAGE_SIZE,
    MIN_RETENTION,
)

__all__ = ["add_admin_parsers"]

QUEUE_EPILOG = """\
create:
  Creates NAME (a FIFO queue with --fifo or a name ending in .fifo). With
  --dead-letter-queue DLQ, DLQ is created too when it does not exist (a FIFO queue's must
  be FIFO), and NAME gets a RedrivePolicy: after --max-receive-count receives (default 5)
  a message goes there. --visibility-timeout, --max-message-size, --retention and --delay
  set those attributes of NAME. A queue that exists with the settings asked for is left as
  it is (exit 0); one that exists with other settings is an error naming them.

purge, delete:
  purge deletes every message of NAME; delete deletes the queue (its dead-letter queue is
  kept). Both ask for --yes unless the endpoint is on this machine (127.0.0.1, localhost).
  SQS allows one purge of a queue every 60 s, and a deleted queue's name can be taken
  again only 60 s later.

exit codes:
  0 done; 1 an error (a queue that does not exist, other settings, no --yes); 2 bad usage.

examples:
  python -m aiosqsworker queue create orders --dead-letter-queue orders-dlq --max-receive-count 5
  python -m aiosqsworker queue create orders.fifo --content-based-deduplication
  python -m aiosqsworker queue create reports --max-message-size 1048576 --retention 86400
  python -m aiosqsworker queue purge orders
  python -m aiosqsworker queue delete orders --yes
"""

BUCKET_EPILOG = """\
create:
  Creates bucket NAME at the S3 endpoint: --endpoint-url, else AWS_ENDPOINT_URL_S3, else
  AWS_ENDPOINT_URL, else AWS's own (local-server serves S3 and prints AWS_ENDPOINT_URL_S3).
  Outside us-east-1 the bucket is created in the region in use. A bucket that exists and
  is yours is left as it is (exit 0).

exit codes:
  0 created or already yours; 1 an error (a name S3 refuses, another account's bucket).

examples:
  python -m aiosqsworker bucket create orders-payloads
"""


_visibility = checked_number(
    int, lambda value: 0 <= value <= MAX_VISIBILITY, f"whole seconds from 0 to {MAX_VISIBILITY}"
)
_receive_count = checked_number(
    int,
    lambda value: 1 <= value <= MAX_RECEIVE_COUNT,
    f"a whole number from 1 to {MAX_RECEIVE_COUNT}",
)
_message_size = checked_number(
    int,
    lambda value: MIN_MESSAGE_SIZE <= value <= MAX_MESSAGE_BYTES,
    f"bytes from {MIN_MESSAGE_SIZE} to {MAX_MESSAGE_BYTES}",
)
_retention = checked_number(
    int,
    lambda value: MIN_RETENTION <= value <= MAX_RETENTION,
    f"whole seconds from {MIN_RETENTION} to {MAX_RETENTION} (14 days)",
)


_PROG = "python -m aiosqsworker"
_Actions: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _command_group(
    sub: _Actions, name: str, *, help: str, description: str, epilog: str
) -> _Actions:
    """A command made of actions (`queue create`, ...): its parser's ACTION subcommands."""
    group = sub.add_parser(
        name,
        prog=f"{_PROG} {name}",
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return group.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)


def _action(
    actions: _Actions, command: str, *, help: str, description: str, epilog: str
) -> argparse.ArgumentParser:
    """One action of a command group; `command` is its whole name (``queue create``)."""
    return actions.add_parser(
        command.rsplit(" ", 1)[-1],
        prog=f"{_PROG} {command}",
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_admin_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    connection_options: Callable[[argparse.ArgumentParser], None],
    logging_options: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add `send`, `stats`, `dlq`, `queue` and `bucket` to the CLI's subcommands."""
    queue_actions = _command_group(
        sub,
        "queue",
        help="create, purge or delete a queue",
        description="Create a queue (and its dead-letter queue), delete its messages, or "
        "delete it.",
        epilog=QUEUE_EPILOG,
    )
    create = _action(
        queue_actions,
        "queue create",
        help="create a queue, and its dead-letter queue",
        description="Create queue NAME; with --dead-letter-queue, that queue too when it does "
        "not exist, and a RedrivePolicy to it.",
        epilog=QUEUE_EPILOG,
    )
    create.add_argument("name", metavar="NAME", help="the queue's name (FIFO: ends in .fifo)")
    create.add_argument("--fifo", action="store_true", help="a FIFO queue (NAME ends in .fifo)")
    create.add_argument(
        "--visibility-timeout",
        type=argument(_visibility),
        metavar="SECONDS",
        help="the queue's VisibilityTimeout, 0 to 43200 (default: SQS's, 30)",
    )
    create.add_argument(
        "--max-message-size",
        type=argument(_message_size),
        metavar="BYTES",
        help=f"the queue's MaximumMessageSize, {MIN_MESSAGE_SIZE} to {MAX_MESSAGE_BYTES} "
        "(default: SQS's)",
    )
    create.add_argument(
        "--retention",
        type=argument(_retention),
        metavar="SECONDS",
        help=f"the queue's MessageRetentionPeriod, {MIN_RETENTION} to {MAX_RETENTION} "
        "(default: SQS's, 4 days)",
    )
    create.add_argument(
        "--delay",
        type=argument(delay_seconds),
        metavar="SECONDS",
        help=f"the queue's DelaySeconds, 0 to {MAX_DELAY} (default: 0)",
    )
    create.add_argument(
        "--content-based-deduplication",
        action="store_true",
        help="FIFO queues: deduplicate by the body's SHA-256, so sends need no --dedup-id",
    )
    create.add_argument(
        "--dead-letter-queue",
        metavar="DLQ",
        help="where messages go after --max-receive-count receives (created if missing)",
    )
    create.add_argument(
        "--max-receive-count",
        type=argument(_receive_count),
        metavar="N",
        help=f"receives before a message goes to DLQ, 1 to {MAX_RECEIVE_COUNT} "
        f"(default: {DEFAULT_MAX_RECEIVE_COUNT})",
    )
    destroyers = []
    for name, does in (
        ("purge", "delete every message of a queue"),
        ("delete", "delete a queue (its dead-letter queue is kept)"),
    ):
        action = _action(
            queue_actions,
            f"queue {name}",
            help=does,
            description=f"{does[0].upper()}{does[1:]}.",
            epilog=QUEUE_EPILOG,
        )
        action.add_argument("name", metavar="NAME", help="queue name or URL")
        action.add_argument(
            "--yes",
            action="store_true",
            help="confirm (needed unless the endpoint is 127.0.0.1 or localhost)",
        )
        destroyers.append(action)

    bucket_actions = _command_group(
        sub,
        "bucket",
        help="create the S3 bucket of large messages",
        description="Create an S3 bucket, for large messages (payload_bucket=).",
        epilog=BUCKET_EPILOG,
    )
    create_bucket = _action(
        bucket_actions,
        "bucket create",
        help="create a bucket (exit 0 if it exists and is yours)",
        description="Create bucket NAME at the S3 endpoint (--endpoint-url, else "
        "AWS_ENDPOINT_URL_S3, else AWS's).",
        epilog=BUCKET_EPILOG,
    )
    create_bucket.add_argument("name", metavar="NAME", help="the bucket's name")

    for parser in (create, *destroyers):
        connection_options(parser)
        logging_options(parser)
    # The S3 endpoint is the bucket command's own.
    create_bucket.add_argument("--region", help="AWS region (default: AWS_REGION, then botocore's)")
    create_bucket.add_argument(
        "--endpoint-url", help="S3 endpoint (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL)"
    )
    create_bucket.add_argument("--profile", help="AWS profile (default: AWS_PROFILE)")
    logging_options(create_bucket)
