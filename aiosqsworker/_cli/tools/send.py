"""`send QUEUE [BODY ...]`: messages from arguments, a file or stdin (one per line).

They go out in SendMessageBatch calls, through `BatchingSender`, many in flight at once; to a
FIFO queue one batch at a time, in input order. Checking is pure functions (`parse_attribute`,
`collect_attributes`, `body_problem`, `send_options_problem`) that tests call directly.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import sys
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import IO, Any

import anyio
from anyio.abc import TaskGroup

from ..._config import EnvironmentSettings
from ..._errors import AioSQSWorkerError, ConfigurationError, SQSError
from ..._producer import BatchingSender
from ..._sqs.limits import MAX_BATCH, MAX_MESSAGE_BYTES
from ..._sqs.rules import (
    attribute_count_refusal,
    attribute_name_refusal,
    attribute_refusal,
    body_refusal,
    data_type_refusal,
    fifo_id_refusal,
    message_size,
    queue_kind_refusal,
    queue_message_limit,
    size_refusal,
)
from ..command import (
    Invocation,
    Subparsers,
    add_connection_options,
    add_logging_options,
    argument,
    command_parser,
)
from ._common import (
    Progress,
    batch_is_full,
    delay_seconds,
    messages_text,
    open_client,
    queue_name_of,
    run_coroutine,
)
from .lines import LineReader

__all__ = [
    "SendTarget",
    "add_parser",
    "attribute_name_problem",
    "body_problem",
    "collect_attributes",
    "parse_attribute",
    "run",
    "send_options_problem",
]

SEND_EPILOG = """\
input:
  Each BODY argument is one message, sent as it is; options go anywhere among QUEUE and
  the BODY arguments. With --file PATH (--file - or a lone - reads stdin) each line is one
  message: its text without the line ending, so JSON lines stay JSON text. Empty lines
  are skipped; lines must be UTF-8. A line the queue cannot take (over its
  MaximumMessageSize, a character SQS refuses) is an error that names it: a file is
  checked whole before anything is sent; from stdin, lines are sent as they come and
  sending stops at the bad line.

sending:
  SendMessageBatch calls of ten, up to 100 messages in flight; on a FIFO queue one batch
  at a time, in input order. Every 1,000 messages a progress line (count, rate) goes to
  stderr, and one at the end; "sent N messages to QUEUE" goes to stdout.

FIFO queues:
  --group-id is required. --dedup-id is for a single message; to send several, the queue
  needs ContentBasedDeduplication. SQS takes no per-message --delay on a FIFO queue.

exit codes:
  0 all sent; 1 an error (the message says how much was sent); 2 bad usage.

examples:
  python -m aiosqsworker send orders '{"id": 1}' '{"id": 2}'
  python -m aiosqsworker send orders --file orders.jsonl --attribute source=backfill
  jq -c '.items[]' export.json | python -m aiosqsworker send orders -
  python -m aiosqsworker send orders '{"id": 3}' --attribute priority:Number=5 --delay 60
  python -m aiosqsworker send orders.fifo '{"id": 3}' --group-id customer-42 --dedup-id order-3
"""

#: Messages `send` keeps in flight (ten SendMessageBatch calls of ten).
SEND_IN_FLIGHT = 100


def attribute_name_problem(name: str) -> str | None:
    """Why SQS would refuse `name` as a message attribute name, or None."""
    refusal = attribute_name_refusal(name)
    return refusal.hint if refusal else None


def parse_attribute(text: str) -> tuple[str, dict[str, Any]]:
    """(name, SQS attribute value) of ``NAME=VALUE``, ``NAME:Number=VALUE``, ``NAME:Binary=B64``.

    The type may carry a custom label, as SQS allows: ``NAME:Number.int=42``.
    """
    head, separator, value = text.partition("=")
    name, _, data_type = head.partition(":")
    data_type = data_type or "String"
    if not separator or not name:
        raise ConfigurationError(
            f"{text!r} is malformed: expected NAME=VALUE, NAME:Number=VALUE or NAME:Binary=BASE64"
        )
    problem = attribute_name_problem(name)
    if problem:
        raise ConfigurationError(f"{text!r}: {name!r} is not a valid attribute name: {problem}")
    refusal = data_type_refusal(name, data_type)
    if refusal is not None:
        raise ConfigurationError(f"{text!r}: {refusal.hint}")
    attribute: dict[str, Any] = {"DataType": data_type, "StringValue": value}
    if data_type.partition(".")[0] == "Binary":
        try:
            raw = base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ConfigurationError(f"{text!r}: a Binary value must be base64") from None
        attribute = {"DataType": data_type, "BinaryValue": raw}
    refusal = attribute_refusal(name, attribute)
    if refusal is not None:
        raise ConfigurationError(f"{text!r}: {refusal.hint}")
    return name, attribute


def collect_attributes(
    parsed: Iterable[tuple[str, dict[str, Any]]],
) -> dict[str, dict[str, Any]]:
    """The message attributes of several --attribute options: no name twice, at most ten."""
    attributes: dict[str, dict[str, Any]] = {}
    for name, value in parsed:
        if name in attributes:
            raise ConfigurationError(f"--attribute {name} is given twice")
        attributes[name] = value
    refusal = attribute_count_refusal(len(attributes))
    if refusal is not None:
        raise ConfigurationError(refusal.hint)
    return attributes


def body_problem(body: str, attributes: Mapping[str, Mapping[str, Any]], limit: int) -> str | None:
    """Why SQS would refuse `body` (with `attributes`) on a queue that takes `limit` bytes."""
    refusal = body_refusal(body) or size_refusal(body, attributes, limit)
    return refusal.hint if refusal else None


def _check_body(
    where: str,
    body: str,
    attributes: Mapping[str, Mapping[str, Any]],
    limit: int,
    *,
    note: str = "",
) -> None:
    """Raise ConfigurationError naming `where` if SQS would refuse `body`."""
    problem = body_problem(body, attributes, limit)
    if problem:
        raise ConfigurationError(f"{where}: {problem}{note}")


@dataclass(frozen=True, slots=True)
class SendTarget:
    """What `send` must know about its queue."""

    url: str
    name: str
    fifo: bool
    content_based_deduplication: bool
    limit: int

    @classmethod
    def from_attributes(cls, url: str, attributes: Mapping[str, str]) -> SendTarget:
        limit = queue_message_limit(attributes)
        return cls(
            url=url,
            name=queue_name_of(url),
            fifo=attributes.get("FifoQueue") == "true" or url.endswith(".fifo"),
            content_based_deduplication=attributes.get("ContentBasedDeduplication") == "true",
            limit=MAX_MESSAGE_BYTES if limit is None else limit,
        )


def send_options_problem(
    target: SendTarget, *, group_id: str | None, deduplication_id: str | None, delay: int
) -> str | None:
    """Why --group-id, --dedup-id or --delay do not suit the queue, or None."""
    for option, parameter, value in (
        ("--group-id", "MessageGroupId", group_id),
        ("--dedup-id", "MessageDeduplicationId", deduplication_id),
    ):
        refusal = fifo_id_refusal(parameter, value)
        if refusal is not None:
            return f"{option}: {refusal.hint}"
    refusal = queue_kind_refusal(
        fifo=target.fifo,
        group_id=group_id,
        deduplication_id=deduplication_id,
        delay=delay,
        content_based=target.content_based_deduplication,
    )
    if refusal is None:
        return None
    return {
        "MessageGroupId": f"{target.name} is a FIFO queue: give --group-id",
        "DelaySeconds": f"{target.name} is a FIFO queue: SQS takes no per-message --delay there "
        "(set the queue's DelaySeconds instead)",
        "MessageDeduplicationId": (
            f"{target.name} is a FIFO queue without ContentBasedDeduplication: give "
            "--dedup-id (for a single message), or enable ContentBasedDeduplication"
            if target.fifo
            else f"--dedup-id is for FIFO queues, and {target.name} is a standard queue"
        ),
    }[refusal.parameter]


class _Chunks:
    """Messages to send as ``(where, text)`` chunks: the arguments, or a stream's lines."""

    def __init__(
        self,
        bodies: Sequence[tuple[str, str]] = (),
        reader: LineReader | None = None,
        *,
        interactive: bool = False,
    ) -> None:
        self._bodies = list(bodies)
        self._reader = reader
        self._interactive = interactive

    async def next(self) -> list[tuple[str, str]] | None:
        if self._reader is None:
            bodies, self._bodies = self._bodies, []
            return bodies or None
        return await anyio.to_thread.run_sync(
            self._reader.read_chunk, abandon_on_cancel=self._interactive
        )


@dataclass
class _SendState:
    sent: int = 0
    last_id: str | None = None
    failures: list[tuple[str, BaseException]] = field(default_factory=list)
    stopped: ConfigurationError | None = None


async def _send_all(
    sender: BatchingSender,
    target: SendTarget,
    chunks: _Chunks,
    *,
    attributes: Mapping[str, Mapping[str, Any]],
    delay: int,
    group_id: str | None,
    deduplication_id: str | None,
    progress: Progress,
) -> _SendState:
    """Send every message `chunks` yields until the first error; a FIFO queue's in order."""
    state = _SendState()
    in_flight = anyio.Semaphore(SEND_IN_FLIGHT)

    async def send_one(where: str, body: str) -> None:
        try:
            message_id = await sender.send(
                target.url,
                body,
                attributes=attributes,
                delay=delay,
                group_id=group_id,
                deduplication_id=deduplication_id,
            )
        except AioSQSWorkerError as exc:
            state.failures.append((where, exc))
        else:
            state.sent += 1
            state.last_id = message_id
            progress.add()
        finally:
            in_flight.release()

    async def send_wave(wave: list[tuple[str, str]]) -> None:
        # One batch at a time, its entries joining it in input order: FIFO order is kept.
        async with anyio.create_task_group() as group:
            for where, body in wave:
                await in_flight.acquire()
                group.start_soon(send_one, where, body)

    async def feed(group: TaskGroup) -> None:
        wave: list[tuple[str, str]] = []
        wave_size = 0
        while (chunk := await chunks.next()) is not None:
            for where, body in chunk:
                if state.failures:
                    return
                problem = body_problem(body, attributes, target.limit)
                if problem:
                    if wave:  # what comes before the bad line is sent, as promised
                        await send_wave(wave)
                    raise ConfigurationError(f"{where}: {problem}")
                if not target.fifo:
                    await in_flight.acquire()
                    group.start_soon(send_one, where, body)
                    continue
                size = message_size(body, attributes)
                if batch_is_full(len(wave), wave_size, size):
                    await send_wave(wave)
                    wave, wave_size = [], 0
                wave.append((where, body))
                wave_size += size
        if wave and not state.failures:
            await send_wave(wave)

    async with anyio.create_task_group() as group:
        try:
            await feed(group)
        except ConfigurationError as exc:  # a line that cannot be sent: stop there
            state.stopped = exc
    return state


async def _send(
    args: argparse.Namespace,
    attributes: dict[str, dict[str, Any]],
    bodies: list[tuple[str, str]],
    stream: IO[bytes] | None,
) -> int:
    async with AsyncExitStack() as stack:
        client = await open_client(stack, args, max_connections=SEND_IN_FLIGHT // MAX_BATCH + 2)
        url = await client.resolve_queue_url(args.queue)
        target = SendTarget.from_attributes(url, await client.get_queue_attributes(url))
        problem = send_options_problem(
            target, group_id=args.group_id, deduplication_id=args.dedup_id, delay=args.delay
        )
        if problem:
            raise ConfigurationError(problem)
        for where, body in bodies:
            _check_body(where, body, attributes, target.limit)
        interactive = stream is not None and stream is sys.stdin.buffer
        if stream is not None and not interactive and stream.seekable():
            # A file is checked whole first: a bad line then stops everything, not half.
            count = await anyio.to_thread.run_sync(_check_stream, stream, attributes, target.limit)
            stream.seek(0)
            if args.dedup_id is not None and count > 1:
                raise ConfigurationError(_DEDUP_SINGLE.format(count=count))
        chunks = _Chunks(
            bodies, LineReader(stream, target.limit) if stream else None, interactive=interactive
        )
        if args.dedup_id is not None:
            chunks = await _single(chunks)
        progress = Progress("sent")
        state = await _send_all(
            BatchingSender(client),
            target,
            chunks,
            attributes=attributes,
            delay=args.delay,
            group_id=args.group_id,
            deduplication_id=args.dedup_id,
            progress=progress,
        )
        progress.finish()
    if state.failures:
        where, error = state.failures[0]
        raise SQSError(
            f"{where}: {error} ({state.sent} sent, {len(state.failures)} failed; sending "
            "stopped at the first failure)"
        )
    if state.stopped is not None:
        raise ConfigurationError(
            f"{state.stopped} (sent: the {messages_text(state.sent)} before it; nothing from it on)"
        )
    if state.sent == 0:
        raise ConfigurationError(
            "nothing to send: the input holds no message (empty lines are skipped)"
        )
    note = f" (MessageId {state.last_id})" if state.sent == 1 else ""
    print(f"sent {messages_text(state.sent)} to {target.name}{note}")
    return 0


_DEDUP_SINGLE = (
    "--dedup-id is for a single message and the input holds {count}: every one after the "
    "first would be dropped as a duplicate (use a queue with ContentBasedDeduplication)"
)


async def _single(chunks: _Chunks) -> _Chunks:
    """The input of --dedup-id, read whole: it must be one message."""
    items: list[tuple[str, str]] = []
    while (chunk := await chunks.next()) is not None:
        items.extend(chunk)
        if len(items) > 1:
            raise ConfigurationError(_DEDUP_SINGLE.format(count="more than one"))
    return _Chunks(items)


def _check_stream(
    stream: IO[bytes], attributes: Mapping[str, Mapping[str, Any]], limit: int
) -> int:
    """Check every line of a file; returns how many messages it holds."""
    reader = LineReader(stream, limit)
    count = 0
    while (chunk := reader.read_chunk()) is not None:
        for where, body in chunk:
            _check_body(where, body, attributes, limit, note=" (nothing was sent)")
            count += 1
    return count


def add_parser(sub: Subparsers, env: EnvironmentSettings) -> argparse.ArgumentParser:
    parser = command_parser(
        sub,
        "send",
        help="send messages from arguments, a file or stdin",
        description="Send messages to QUEUE (a name or URL): each BODY, or each line of "
        "--file PATH or stdin, is one message.",
        epilog=SEND_EPILOG,
    )
    parser.add_argument("queue", metavar="QUEUE", help="queue name or URL")
    parser.add_argument(
        "bodies", metavar="BODY", nargs="*", help="message bodies; a lone - reads stdin"
    )
    parser.add_argument(
        "--file", metavar="PATH", help="send each line of PATH as a message (- for stdin)"
    )
    parser.add_argument(
        "--attribute",
        action="append",
        default=[],
        type=argument(parse_attribute),
        metavar="NAME[:TYPE]=VALUE",
        help="a message attribute for every message (repeatable, up to 10); TYPE is String "
        "(the default), Number or Binary (VALUE in base64)",
    )
    parser.add_argument(
        "--delay",
        type=argument(delay_seconds),
        default=0,
        metavar="SECONDS",
        help="hide the messages for this long after sending, 0 to 900 (standard queues)",
    )
    parser.add_argument("--group-id", help="MessageGroupId (required by FIFO queues)")
    parser.add_argument(
        "--dedup-id",
        help="MessageDeduplicationId of a single message (FIFO queues without "
        "ContentBasedDeduplication)",
    )
    add_connection_options(parser)
    add_logging_options(parser, env)
    return parser


def run(call: Invocation) -> int:
    """Send the messages `call` names; 0 once every one is sent."""
    args = call.args
    attributes = collect_attributes(args.attribute)
    path: str | None = args.file
    bodies: list[str] = list(args.bodies)
    if path is not None and bodies:
        raise ConfigurationError("give BODY arguments or --file, not both")
    if bodies == ["-"]:
        path, bodies = "-", []
    if path is None and not bodies:
        raise ConfigurationError(
            "nothing to send: give BODY arguments, --file PATH, or - to read lines from stdin"
        )
    stream: IO[bytes] | None = None
    if path == "-":
        stream = sys.stdin.buffer
    elif path is not None:
        try:
            stream = open(path, "rb")  # noqa: SIM115 - closed below, after the event loop
        except OSError as exc:
            raise ConfigurationError(f"--file {path}: {exc.strerror or exc}") from None
    try:
        numbered = [(f"BODY {i}", body) for i, body in enumerate(bodies, 1)]
        return run_coroutine(_send, args, attributes, numbered, stream)
    finally:
        if stream is not None and path != "-":
            stream.close()
