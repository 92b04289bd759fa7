"""`queue create|purge|delete NAME`: make and remove queues without writing boto3 one-liners.

- ``queue create NAME`` creates a queue (and, with ``--dead-letter-queue DLQ``, that queue
  too when it does not exist, with a RedrivePolicy pointing at it). A queue that exists with
  the settings asked for is left as it is; one that exists with others is an error that names
  them, for SQS keeps a queue's attributes when CreateQueue is called again.
- ``queue purge NAME`` deletes every message of a queue; ``queue delete NAME`` the queue.
  Both destroy messages, so they ask for ``--yes`` unless the endpoint is this machine's
  (127.0.0.1, localhost: a local server).

`plan_queues`, `attribute_conflicts` and `is_local_endpoint` are pure: tests call them
directly.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..._config import AppConfig, EnvironmentSettings
from ..._errors import ConfigurationError, QueueNotFoundError
from ..._sqs.base import QueueAdmin
from ..._sqs.limits import (
    MAX_DELAY,
    MAX_MESSAGE_BYTES,
    MAX_RECEIVE_COUNT,
    MAX_RETENTION,
    MAX_VISIBILITY,
    MIN_MESSAGE_SIZE,
    MIN_RETENTION,
)
from ..._sqs.open import open_queue_admin
from ..._sqs.redrive import RedrivePolicy, parse_redrive_policy
from ..._sqs.rules import queue_name_refusal
from ..command import (
    Invocation,
    Subparsers,
    action_parser,
    add_connection_options,
    add_logging_options,
    argument,
    checked_number,
    command_group,
)
from ._common import delay_seconds, messages_text, queue_depth, queue_name_of, run_coroutine

__all__ = [
    "QueuePlan",
    "add_parser",
    "attribute_conflicts",
    "is_local_endpoint",
    "plan_queues",
    "queue_name_problem",
    "run",
]

#: The maxReceiveCount of ``--dead-letter-queue`` without ``--max-receive-count``.
DEFAULT_MAX_RECEIVE_COUNT = 5
_LOCAL_HOSTS = {"localhost", "::1"}

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


def queue_name_problem(name: str) -> str | None:
    """Why SQS would refuse `name` as a queue name, or None."""
    refusal = queue_name_refusal(name, fifo=name.endswith(".fifo"))
    return refusal.hint if refusal else None


@dataclass(frozen=True, slots=True)
class QueuePlan:
    """What `queue create` makes: the queue's attributes, and its dead-letter queue's."""

    name: str
    fifo: bool
    attributes: dict[str, str]
    dead_letter_queue: str | None = None
    dead_letter_attributes: dict[str, str] | None = None
    max_receive_count: int | None = None


def plan_queues(
    name: str,
    *,
    fifo: bool = False,
    visibility_timeout: int | None = None,
    content_based_deduplication: bool = False,
    dead_letter_queue: str | None = None,
    max_receive_count: int | None = None,
    max_message_size: int | None = None,
    retention: int | None = None,
    delay: int | None = None,
) -> QueuePlan:
    """Check `queue create`'s options and say what to create (a name ending in .fifo is a
    FIFO queue, and so must its dead-letter queue be). The command line has checked the
    numbers' ranges."""
    for label, queue in (("NAME", name), ("--dead-letter-queue", dead_letter_queue)):
        problem = queue_name_problem(queue) if queue is not None else None
        if problem:
            raise ConfigurationError(f"{label} {queue!r}: {problem}")
    fifo = fifo or name.endswith(".fifo")
    if fifo and not name.endswith(".fifo"):
        raise ConfigurationError(f"{name!r}: a FIFO queue's name ends in .fifo: use {name}.fifo")
    if content_based_deduplication and not fifo:
        raise ConfigurationError(
            "--content-based-deduplication is for FIFO queues (--fifo, a name ending in .fifo)"
        )
    if max_receive_count is not None and dead_letter_queue is None:
        raise ConfigurationError(
            "--max-receive-count needs --dead-letter-queue DLQ: the queue messages go to "
            "after that many receives"
        )
    if dead_letter_queue is not None:
        if dead_letter_queue == name:
            raise ConfigurationError(
                f"--dead-letter-queue {dead_letter_queue}: a queue cannot be its own "
                "dead-letter queue"
            )
        if fifo != dead_letter_queue.endswith(".fifo"):
            kind = "a FIFO queue (a name ending in .fifo)" if fifo else "a standard queue"
            raise ConfigurationError(
                f"--dead-letter-queue {dead_letter_queue}: the dead-letter queue of {name} "
                f"must be {kind}, as SQS requires"
            )
    attributes: dict[str, str] = {}
    if fifo:
        attributes["FifoQueue"] = "true"
    if content_based_deduplication:
        attributes["ContentBasedDeduplication"] = "true"
    for attribute, value in (
        ("VisibilityTimeout", visibility_timeout),
        ("MaximumMessageSize", max_message_size),
        ("MessageRetentionPeriod", retention),
        ("DelaySeconds", delay),
    ):
        if value is not None:
            attributes[attribute] = str(value)
    return QueuePlan(
        name=name,
        fifo=fifo,
        attributes=attributes,
        dead_letter_queue=dead_letter_queue,
        dead_letter_attributes=(
            ({"FifoQueue": "true"} if fifo else {}) if dead_letter_queue is not None else None
        ),
        max_receive_count=(
            (max_receive_count or DEFAULT_MAX_RECEIVE_COUNT)
            if dead_letter_queue is not None
            else None
        ),
    )


def _shown(name: str, value: str | None) -> str:
    if value is None:
        return "unset"
    if name == "RedrivePolicy":
        policy = parse_redrive_policy(value)
        if policy:
            return f"to {queue_name_of(policy[0])} after {policy[1]} receives"
    return value


def attribute_conflicts(wanted: Mapping[str, str], existing: Mapping[str, str]) -> list[str]:
    """What differs between the attributes asked for and an existing queue's, in words."""
    conflicts = []
    for name, value in wanted.items():
        have = existing.get(name)
        same = have == value
        if name == "RedrivePolicy":
            same = parse_redrive_policy(have) == parse_redrive_policy(value)
        elif name in ("FifoQueue", "ContentBasedDeduplication"):
            same = (have or "false") == value
        if not same:
            conflicts.append(f"{name} is {_shown(name, have)}, not {_shown(name, value)}")
    return conflicts


def is_local_endpoint(url: str) -> bool:
    """Whether `url` is on this machine (a local server), where no --yes is asked for."""
    host = urlsplit(url).hostname or ""
    return host in _LOCAL_HOSTS or host.startswith("127.")


async def _existing_url(client: QueueAdmin, name: str) -> str | None:
    try:
        return await client.resolve_queue_url(name)
    except QueueNotFoundError:
        return None


async def _ensure(client: QueueAdmin, name: str, wanted: Mapping[str, str]) -> tuple[str, bool]:
    """The URL of queue `name` with `wanted` attributes, created if missing: (url, created)."""
    url = await _existing_url(client, name)
    if url is None:
        return await client.create_queue(name, wanted), True
    conflicts = attribute_conflicts(wanted, await client.get_queue_attributes(url))
    if conflicts:
        raise ConfigurationError(
            f"queue {name} exists with other settings ({'; '.join(conflicts)}): SQS keeps "
            f"them; delete it first (queue delete {name}) or choose another name"
        )
    return url, False


async def _create(args: argparse.Namespace, plan: QueuePlan) -> int:
    async with AsyncExitStack() as stack:
        client = await open_queue_admin(stack, _config(args))
        wanted = dict(plan.attributes)
        if plan.dead_letter_queue is not None:
            assert plan.dead_letter_attributes is not None
            assert plan.max_receive_count is not None
            dlq_url, created = await _ensure(
                client, plan.dead_letter_queue, plan.dead_letter_attributes
            )
            print(f"{'created' if created else 'exists:'} {plan.dead_letter_queue} {dlq_url}")
            arn = (await client.get_queue_attributes(dlq_url)).get("QueueArn")
            if not arn:
                raise ConfigurationError(
                    f"SQS gave no QueueArn for {plan.dead_letter_queue}: cannot point a "
                    "RedrivePolicy at it"
                )
            wanted["RedrivePolicy"] = RedrivePolicy(arn, plan.max_receive_count).attribute()
        url, created = await _ensure(client, plan.name, wanted)
        note = (
            f" (dead letters to {plan.dead_letter_queue} after {plan.max_receive_count} receives)"
            if plan.dead_letter_queue
            else ""
        )
        print(f"{'created' if created else 'exists:'} {plan.name} {url}{note}")
    return 0


def _config(args: argparse.Namespace) -> AppConfig:
    return AppConfig(region=args.region, endpoint_url=args.endpoint_url, profile=args.profile)


def _confirmed(args: argparse.Namespace, client: QueueAdmin, what: str) -> None:
    """Refuse a destructive command on a remote endpoint without --yes."""
    if args.yes or is_local_endpoint(client.endpoint.url):
        return
    raise ConfigurationError(
        f"queue {args.queue_command} {args.name} {what} at {client.endpoint.url} "
        f"(region {client.endpoint.region}): add --yes to confirm (a local endpoint, "
        "127.0.0.1 or localhost, needs none)"
    )


async def _purge(args: argparse.Namespace) -> int:
    async with AsyncExitStack() as stack:
        client = await open_queue_admin(stack, _config(args))
        _confirmed(args, client, "would delete every message of the queue")
        url = await client.resolve_queue_url(args.name)
        depth = queue_depth(await client.get_queue_attributes(url))
        await client.purge_queue(url)
    print(f"purged {queue_name_of(url)}: about {messages_text(depth)} deleted")
    return 0


async def _delete(args: argparse.Namespace) -> int:
    async with AsyncExitStack() as stack:
        client = await open_queue_admin(stack, _config(args))
        _confirmed(args, client, "would delete the queue and its messages")
        url = await client.resolve_queue_url(args.name)
        attributes = await client.get_queue_attributes(url)
        await client.delete_queue(url)
    print(f"deleted {queue_name_of(url)} (about {messages_text(queue_depth(attributes))} with it)")
    policy = RedrivePolicy.of(attributes)
    if policy:
        dlq = queue_name_of(policy.dead_letter_arn)
        print(f"its dead-letter queue {dlq} is kept: queue delete {dlq} removes it")
    return 0


def add_parser(sub: Subparsers, env: EnvironmentSettings) -> argparse.ArgumentParser:
    parser, actions = command_group(
        sub,
        "queue",
        help="create, purge or delete a queue",
        description="Create a queue (and its dead-letter queue), delete its messages, or "
        "delete it.",
        epilog=QUEUE_EPILOG,
    )
    create = action_parser(
        actions,
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
        action = action_parser(
            actions,
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
    for action in (create, *destroyers):
        add_connection_options(action)
        add_logging_options(action, env)
    return parser


def run(call: Invocation) -> int:
    """Create, purge or delete the queue `call` names."""
    args = call.args
    if args.queue_command == "create":
        plan = plan_queues(
            args.name,
            fifo=args.fifo,
            visibility_timeout=args.visibility_timeout,
            content_based_deduplication=args.content_based_deduplication,
            dead_letter_queue=args.dead_letter_queue,
            max_receive_count=args.max_receive_count,
            max_message_size=args.max_message_size,
            retention=args.retention,
            delay=args.delay,
        )
        return run_coroutine(_create, args, plan)
    if args.queue_command == "purge":
        return run_coroutine(_purge, args)
    return run_coroutine(_delete, args)
