"""Dead-letter queues: finding one, reading its failure records, and `dlq inspect`.

``dlq inspect QUEUE`` peeks at dead-lettered messages and the failure record the framework
attached (``aiosqsworker.failure``) without consuming them: what it receives it makes visible
again at once. A dead letter whose body is in S3 (an extended-client pointer) is shown with
its payload, fetched, and where it is. `failure_of`, `peeked_record` and `format_peeked` are
pure: tests call them directly. `dlq redrive` (in `.redrive`) finds its queues and releases
what it holds with the helpers here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import anyio

from ..._config import EnvironmentSettings
from ..._errors import MessageDecodeError, PayloadError, QueueNotFoundError, SQSError
from ..._message import from_epoch_millis
from ..._sqs.base import SQSClient
from ..._sqs.batches import read_answer
from ..._sqs.limits import MAX_BATCH
from ..._sqs.payloads import RESERVED_ATTRIBUTES, PayloadStore, S3Pointer, pointer_of
from ..._sqs.redrive import FAILURE_ATTRIBUTE, RedrivePolicy
from ..command import (
    Subparsers,
    action_parser,
    add_connection_options,
    add_logging_options,
    argument,
)
from ._common import (
    RECEIVE_WAIT,
    count_of,
    messages_text,
    open_client,
    open_payloads,
    positive_int,
    queue_name_of,
    run_coroutine,
)

__all__ = [
    "DeadLetterRoute",
    "Payload",
    "add_inspect_parser",
    "dlq_action",
    "failure_of",
    "fetch_payload",
    "find_dead_letter_queue",
    "format_peeked",
    "peeked_record",
    "preview",
    "release_at_exit",
    "run_dlq_inspect",
]

INSPECT_EPILOG = """\
which queue:
  A QUEUE with a RedrivePolicy is a source queue: its dead-letter queue is inspected.
  A QUEUE without one is taken as the dead-letter queue itself.

how it peeks:
  Messages are received with a 30 s visibility timeout, printed, and made visible again
  at once: nothing is deleted. A peek is a receive, though: ApproximateReceiveCount grows
  (and if the dead-letter queue has a RedrivePolicy of its own, peeks count towards it).
  Messages in flight elsewhere are not seen; on a FIFO queue, a group shows its first ten.

failure record:
  Messages the framework dead-lettered carry why (message attribute aiosqsworker.failure):
  reason, exception, error, where, attempts, consumer, source queue, times. Messages SQS's
  own redrive moved have none.

examples:
  python -m aiosqsworker dlq inspect orders
  python -m aiosqsworker dlq inspect orders-dlq --max 50 --full
  python -m aiosqsworker dlq inspect orders --json | jq -r .failure.exception
"""

#: Seconds a peeked message stays hidden if the peek dies before making it visible again.
PEEK_VISIBILITY = 30
#: Characters of a body (and of a failure record's error) shown without --full.
BODY_PREVIEW = 300
#: Seconds given to making held messages visible again when a command ends.
RELEASE_TIMEOUT = 15.0


def failure_of(message_attributes: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any] | None:
    """The framework's failure record a dead letter carries, or None."""
    value = (message_attributes or {}).get(FAILURE_ATTRIBUTE)
    if value is None:
        return None
    raw = value.get("StringValue", "")
    try:
        record = json.loads(raw)
    except ValueError:
        return {"unparsed": raw}
    return record if isinstance(record, dict) else {"unparsed": raw}


def _sent_at(raw: Mapping[str, Any]) -> str | None:
    moment = from_epoch_millis((raw.get("Attributes") or {}).get("SentTimestamp"))
    return moment.isoformat() if moment else None


def _one_line(text: str) -> str:
    return text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def preview(text: str, limit: int) -> str:
    """`text` on one line, cut at `limit` characters with a note saying so."""
    if len(text) <= limit:
        return _one_line(text)
    return f"{_one_line(text[:limit])}... ({len(text)} characters, --full shows all)"


_FAILURE_ORDER = (
    "reason",
    "exception",
    "error",
    "where",
    "attempts",
    "consumer",
    "source_queue",
    "failed_at",
    "first_received_at",
    "sent_at",
    "traceback_digest",
    "message_id",
)


def _attribute_text(value: Mapping[str, Any]) -> str:
    if "StringValue" in value:
        return str(value["StringValue"])
    binary = value.get("BinaryValue", b"")
    if isinstance(binary, bytes):
        return f"<{len(binary)} bytes>"
    return str(binary)


@dataclass(frozen=True, slots=True)
class Payload:
    """A dead letter's body in S3: where it is, and its text or why it could not be had."""

    pointer: S3Pointer
    size: int
    text: str | None = None
    error: str | None = None


async def fetch_payload(store: PayloadStore, raw: Mapping[str, Any]) -> Payload | None:
    """The S3 payload a received message points to, fetched; None for an ordinary message."""
    attributes = raw.get("MessageAttributes") or {}
    try:
        pointer = pointer_of(raw.get("Body", ""), attributes)
    except MessageDecodeError:
        return None  # shown as it is: its body, and the reserved attribute
    if pointer is None:
        return None
    reserved = next(name for name in RESERVED_ATTRIBUTES if name in attributes)
    size = count_of({reserved: str(attributes[reserved].get("StringValue", ""))}, reserved)
    try:
        return Payload(pointer, size, text=await store.fetch(pointer))
    except (PayloadError, MessageDecodeError) as exc:
        return Payload(pointer, size, error=str(exc))


def peeked_record(raw: Mapping[str, Any], payload: Payload | None = None) -> dict[str, Any]:
    """What `dlq inspect --json` prints of one message (``body``: the payload, if in S3)."""
    attributes = raw.get("MessageAttributes") or {}
    system = raw.get("Attributes") or {}
    record: dict[str, Any] = {
        "message_id": raw.get("MessageId"),
        "receive_count": count_of(system, "ApproximateReceiveCount"),
        "sent_at": _sent_at(raw),
        "group_id": system.get("MessageGroupId"),
        "attributes": {
            name: _attribute_text(value)
            for name, value in attributes.items()
            if name != FAILURE_ATTRIBUTE
        },
        "failure": failure_of(attributes),
        "body": raw.get("Body", ""),
    }
    if payload is not None:
        record["payload"] = {
            "location": str(payload.pointer),
            "size": payload.size,
            "error": payload.error,
        }
        if payload.text is not None:
            record["body"] = payload.text
    return record


def format_peeked(
    raw: Mapping[str, Any], *, full: bool = False, payload: Payload | None = None
) -> str:
    """One dead letter for people: id, receive count, sent time, attributes, failure, body."""
    record = peeked_record(raw, payload)
    rows: list[tuple[str, str]] = [
        ("receive count", f"{record['receive_count']} (this peek included)"),
        ("sent at", record["sent_at"] or "?"),
    ]
    if record["group_id"]:
        rows.append(("group", record["group_id"]))
    if payload is not None:
        where = f"{payload.pointer} ({payload.size} bytes)"
        rows.append(("payload", where if payload.error is None else f"{where}: {payload.error}"))
    for name, text in record["attributes"].items():
        rows.append((f"attribute {name}", text if full else preview(text, BODY_PREVIEW)))
    failure: dict[str, Any] | None = record["failure"]
    if failure is None:
        rows.append(("failure", "no aiosqsworker.failure record (moved by SQS's redrive?)"))
    else:
        order = [key for key in _FAILURE_ORDER if key in failure]
        order += sorted(key for key in failure if key not in _FAILURE_ORDER)
        for key in order:
            text = "-" if failure[key] is None else str(failure[key])
            rows.append((f"failure.{key}", text if full else preview(text, BODY_PREVIEW)))
    width = max(len(key) for key, _ in rows)
    lines = [f"message {record['message_id']}"]
    lines += [f"  {key.ljust(width)}  {value}" for key, value in rows]
    body: str = record["body"]
    if full:
        lines.append(f"  body ({len(body)} characters):")
        lines.append(body)
    else:
        lines.append(f"  {'body'.ljust(width)}  {preview(body, BODY_PREVIEW)}")
    return "\n".join(lines)


async def _release(client: SQSClient, queue_url: str, handles: Sequence[str]) -> int:
    """Make received messages visible again at once; returns how many could not be."""
    failed = 0
    for start in range(0, len(handles), MAX_BATCH):
        chunk = handles[start : start + MAX_BATCH]
        try:
            result = await client.change_visibility_batch(
                queue_url, [(str(i), handle, 0) for i, handle in enumerate(chunk)]
            )
        except SQSError:
            failed += len(chunk)
        else:  # a handle the answer left out is not taken as released
            failed += len(chunk) - len(read_answer(chunk, result).done)
    return failed


async def release_at_exit(
    client: SQSClient, queue_url: str, handles: Sequence[str], hidden_for: int
) -> None:
    """Make `handles` visible again, even when cancelled; warn of those still hidden for
    `hidden_for` seconds."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(RELEASE_TIMEOUT):
        failed = await _release(client, queue_url, handles)
        if failed:
            print(
                f"warning: {messages_text(failed)} could not be made visible again: they come back "
                f"after their visibility timeout ({hidden_for} s)",
                file=sys.stderr,
            )


@dataclass(frozen=True, slots=True)
class DeadLetterRoute:
    """A dead-letter queue, and the queue named on the command line as its source, if any."""

    dead_letter_url: str
    source_url: str | None


async def find_dead_letter_queue(client: SQSClient, queue: str) -> DeadLetterRoute:
    """QUEUE's dead-letter queue by its RedrivePolicy; without one, QUEUE itself."""
    url = await client.resolve_queue_url(queue)
    policy = RedrivePolicy.of(await client.get_queue_attributes(url))
    if policy is None:
        return DeadLetterRoute(url, None)
    arn = policy.dead_letter_arn
    try:
        dead_letter_url = await policy.dead_letter_url(client)
    except QueueNotFoundError as exc:
        raise QueueNotFoundError(
            f"the dead-letter queue of {queue!r} ({arn}, from its RedrivePolicy) does not "
            "exist: create it, or fix the RedrivePolicy",
            code=exc.code,
            operation=exc.operation,
        ) from None
    return DeadLetterRoute(dead_letter_url, url)


async def _inspect(args: argparse.Namespace) -> int:
    async with AsyncExitStack() as stack:
        client = await open_client(stack, args, max_connections=4)
        route = await find_dead_letter_queue(client, args.queue)
        dlq = route.dead_letter_url
        name = queue_name_of(dlq)
        if route.source_url is None:
            print(
                f"note: {queue_name_of(args.queue)} has no RedrivePolicy: inspecting it as a "
                "dead-letter queue",
                file=sys.stderr,
            )
        about = count_of(await client.get_queue_attributes(dlq), "ApproximateNumberOfMessages")
        peeked: dict[str, Mapping[str, Any]] = {}
        handles: dict[str, str] = {}
        try:
            while len(peeked) < args.max:
                batch = await client.receive_messages(
                    dlq,
                    max_messages=min(MAX_BATCH, args.max - len(peeked)),
                    wait_time=RECEIVE_WAIT,
                    visibility_timeout=PEEK_VISIBILITY,
                )
                fresh = [raw for raw in batch if raw["MessageId"] not in peeked]
                for raw in batch:
                    handles[raw["MessageId"]] = raw["ReceiptHandle"]
                if not fresh:
                    break
                for raw in fresh:
                    peeked[raw["MessageId"]] = raw
            store = open_payloads(stack, args)
            payloads = {
                message_id: await fetch_payload(store, message)
                for message_id, message in peeked.items()
            }
            if args.json:
                for message_id, message in peeked.items():
                    print(json.dumps(peeked_record(message, payloads[message_id])))
            else:
                print(
                    f"{name}: {messages_text(len(peeked))} shown, of about {about} visible; "
                    "all stay in the queue"
                )
                for message_id, message in peeked.items():
                    print()
                    print(format_peeked(message, full=args.full, payload=payloads[message_id]))
            sys.stdout.flush()
        finally:
            await release_at_exit(client, dlq, list(handles.values()), PEEK_VISIBILITY)
    return 0


def dlq_action(
    actions: Subparsers, name: str, *, help: str, description: str, epilog: str
) -> argparse.ArgumentParser:
    """A `dlq` action and its QUEUE argument: a source queue, or the dead-letter queue itself."""
    parser = action_parser(
        actions, f"dlq {name}", help=help, description=description, epilog=epilog
    )
    parser.add_argument(
        "queue", metavar="QUEUE", help="source queue (its DLQ is read) or the DLQ itself"
    )
    return parser


def add_inspect_parser(actions: Subparsers, env: EnvironmentSettings) -> None:
    parser = dlq_action(
        actions,
        "inspect",
        help="peek at dead-lettered messages without consuming them",
        description="Show up to --max dead-lettered messages: id, receive count, sent time, "
        "body and the failure record the framework attached. Nothing is deleted.",
        epilog=INSPECT_EPILOG,
    )
    parser.add_argument(
        "--max",
        type=argument(positive_int),
        default=10,
        metavar="N",
        help="show at most N messages (default: %(default)s)",
    )
    parser.add_argument(
        "--full", action="store_true", help="whole bodies and errors, not their first 300 chars"
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per message, whole bodies"
    )
    add_connection_options(parser)
    add_logging_options(parser, env)


def run_dlq_inspect(args: argparse.Namespace) -> int:
    return run_coroutine(_inspect, args)
