"""The operator's tools: `send`, `stats`, `dlq inspect` and `dlq redrive`.

- ``send QUEUE [BODY ...]`` sends messages from arguments, a file or stdin (one per line) in
  SendMessageBatch calls, through `BatchingSender`, many in flight at once;
- ``stats QUEUE...`` prints what SQS counts for queues and their dead-letter queues;
- ``dlq inspect QUEUE`` peeks at dead-lettered messages and the failure record the framework
  attached (``aiosqsworker.failure``) without consuming them;
- ``dlq redrive QUEUE`` moves dead letters back to their source queue.

Parsing, checking and formatting are pure functions (`parse_attribute`, `body_problem`,
`LineSplitter`, `format_stats_table`, `format_peeked`, `redrive_decision`, `redrive_entry`)
that tests call directly; the commands do the I/O around them.

Why redrive does not use SQS's StartMessageMoveTask: a move task copies messages verbatim, so
the failure record would travel back to the source queue with them (and come back stale with
the next failure); it cannot filter; and local SQS servers do not implement it. The batched
move below needs only the calls every server has.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import json
import math
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, Literal, TextIO

import anyio
from anyio.abc import TaskGroup

from ._client import SQSClient, open_sqs_client
from ._config import MAX_BATCH, AppConfig
from ._deadletter import FAILURE_ATTRIBUTE, parse_redrive_policy
from ._errors import AioSQSWorkerError, ConfigurationError, QueueNotFoundError, SQSError
from ._producer import MAX_DELAY, MAX_MESSAGE_BYTES, BatchingSender, message_size

__all__ = [
    "DeadLetterRoute",
    "LineReader",
    "LineSplitter",
    "MoveEntry",
    "Progress",
    "QueueStats",
    "SendTarget",
    "add_admin_parsers",
    "body_problem",
    "collect_attributes",
    "failure_of",
    "format_peeked",
    "format_rate",
    "format_stats_table",
    "parse_attribute",
    "queue_name_of",
    "queue_stats",
    "redrive_decision",
    "redrive_entry",
    "run_command",
    "send_options_problem",
]

#: Messages `send` keeps in flight (ten SendMessageBatch calls of ten).
SEND_IN_FLIGHT = 100
#: A progress line on stderr every this many messages sent or moved.
PROGRESS_EVERY = 1000
#: Seconds a peeked message stays hidden if the peek dies before making it visible again.
PEEK_VISIBILITY = 30
#: Seconds a message redrive holds (not moved yet, or left behind) stays hidden, likewise.
HOLD_VISIBILITY = 120
#: Long-poll seconds of the receives: long enough to ask every SQS server, short for the end.
RECEIVE_WAIT = 1
#: Receive loops redrive runs at once on a standard queue (a FIFO queue gets one, in order).
REDRIVE_LANES = 4
#: Characters of a body (and of a failure record's error) shown without --full.
BODY_PREVIEW = 300
#: Seconds given to making held messages visible again when a command ends.
RELEASE_TIMEOUT = 15.0
MAX_ATTRIBUTES = 10
MAX_ATTRIBUTE_NAME = 256


# --- send: attributes, bodies, lines ------------------------------------------------------

_ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_DATA_TYPES = ("String", "Number", "Binary")
# What SQS accepts in a message: #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF.
_FORBIDDEN = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def attribute_name_problem(name: str) -> str | None:
    """Why SQS would refuse `name` as a message attribute name, or None."""
    if len(name) > MAX_ATTRIBUTE_NAME:
        return f"a name is at most {MAX_ATTRIBUTE_NAME} characters"
    if not _ATTRIBUTE_NAME.fullmatch(name):
        return "a name may hold only letters, digits, '_', '-' and '.'"
    if name.lower().startswith(("aws.", "amazon.")):
        return "names starting with 'AWS.' or 'Amazon.' are reserved"
    if name.startswith(".") or name.endswith(".") or ".." in name:
        return "a name may not start or end with '.', nor hold '..'"
    return None


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
    base, dot, label = data_type.partition(".")
    if base not in _DATA_TYPES or (dot and not label):
        raise ConfigurationError(
            f"{text!r}: type {data_type!r} is not String, Number or Binary (a custom label may "
            "follow a dot, as in Number.int)"
        )
    if not value:
        raise ConfigurationError(f"{text!r} has an empty value: SQS refuses empty attributes")
    if base == "Number" and not _NUMBER.fullmatch(value):
        raise ConfigurationError(f"{text!r}: {value!r} is not a number")
    if base == "Binary":
        try:
            raw = base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ConfigurationError(f"{text!r}: a Binary value must be base64") from None
        return name, {"DataType": data_type, "BinaryValue": raw}
    return name, {"DataType": data_type, "StringValue": value}


def collect_attributes(
    parsed: Iterable[tuple[str, dict[str, Any]]],
) -> dict[str, dict[str, Any]]:
    """The message attributes of several --attribute options: no name twice, at most ten."""
    attributes: dict[str, dict[str, Any]] = {}
    for name, value in parsed:
        if name in attributes:
            raise ConfigurationError(f"--attribute {name} is given twice")
        attributes[name] = value
    if len(attributes) > MAX_ATTRIBUTES:
        raise ConfigurationError(
            f"{len(attributes)} attributes given: SQS allows at most {MAX_ATTRIBUTES} per message"
        )
    return attributes


def body_problem(body: str, attributes: Mapping[str, Mapping[str, Any]], limit: int) -> str | None:
    """Why SQS would refuse `body` (with `attributes`) on a queue that takes `limit` bytes."""
    if not body:
        return "the message is empty: SQS refuses empty messages"
    bad = _FORBIDDEN.search(body)
    if bad is not None:
        return (
            f"character U+{ord(bad.group()):04X} at position {bad.start() + 1} is not allowed in "
            "an SQS message"
        )
    size = message_size(body, attributes)
    if size > limit:
        return (
            f"message of {size} bytes (body and attributes) is over the queue's limit of {limit} "
            "bytes (MaximumMessageSize): store large payloads elsewhere (S3), send a reference"
        )
    return None


class LineSplitter:
    """Numbered lines of a byte stream fed in pieces; ``\\n`` or ``\\r\\n`` ends a line.

    A line still growing past `limit` bytes is refused at once, before the rest of it is read.
    """

    def __init__(self, limit: int) -> None:
        self._pending = bytearray()
        self._number = 0
        self._limit = limit

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._pending += data
        lines: list[tuple[int, bytes]] = []
        start = 0
        while (end := self._pending.find(b"\n", start)) >= 0:
            lines.append(self._line(bytes(self._pending[start:end])))
            start = end + 1
        del self._pending[:start]
        if len(self._pending) > self._limit + 1:  # + 1: a line may end with CR LF
            raise ConfigurationError(
                f"line {self._number + 1}: over {self._limit} bytes, "
                "the queue's limit (MaximumMessageSize): store large payloads elsewhere (S3), "
                "send a reference"
            )
        return lines

    def finish(self) -> list[tuple[int, bytes]]:
        """The last line, if the stream does not end with a line break."""
        if not self._pending:
            return []
        line = self._line(bytes(self._pending))
        self._pending.clear()
        return [line]

    def _line(self, raw: bytes) -> tuple[int, bytes]:
        self._number += 1
        return self._number, raw.removesuffix(b"\r")


def decode_line(number: int, raw: bytes) -> str:
    """The text of line `number`; a UTF-8 byte order mark opening the stream is dropped."""
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"line {number}: not UTF-8 text (byte {exc.start + 1}): messages are text; encode "
            "binary data (base64) first"
        ) from None
    return text.removeprefix("\ufeff") if number == 1 else text


class LineReader:
    """The non-empty lines of a binary stream, as ``("line N", text)``, in available chunks."""

    def __init__(self, stream: IO[bytes], limit: int, *, chunk_size: int = 1 << 16) -> None:
        self._stream = stream
        self._splitter = LineSplitter(limit)
        self._chunk_size = chunk_size
        self._done = False

    def read_chunk(self) -> list[tuple[str, str]] | None:
        """The next lines (blocking until some come); None at the end of the stream."""
        read: Callable[[int], bytes] = getattr(self._stream, "read1", self._stream.read)
        while not self._done:
            data = read(self._chunk_size)
            if data:
                lines = self._splitter.feed(data)
            else:
                lines = self._splitter.finish()
                self._done = True
            texts = [(f"line {n}", decode_line(n, raw)) for n, raw in lines if raw]
            if texts:
                return texts
        return None


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
        try:
            limit = int(attributes.get("MaximumMessageSize", MAX_MESSAGE_BYTES))
        except ValueError:
            limit = MAX_MESSAGE_BYTES
        return cls(
            url=url,
            name=queue_name_of(url),
            fifo=attributes.get("FifoQueue") == "true" or url.endswith(".fifo"),
            content_based_deduplication=attributes.get("ContentBasedDeduplication") == "true",
            limit=min(limit, MAX_MESSAGE_BYTES),
        )


def send_options_problem(
    target: SendTarget, *, group_id: str | None, deduplication_id: str | None, delay: int
) -> str | None:
    """Why --group-id, --dedup-id or --delay do not suit the queue, or None."""
    if target.fifo:
        if group_id is None:
            return f"{target.name} is a FIFO queue: give --group-id"
        if delay:
            return (
                f"{target.name} is a FIFO queue: SQS takes no per-message --delay there (set "
                "the queue's DelaySeconds instead)"
            )
        if deduplication_id is None and not target.content_based_deduplication:
            return (
                f"{target.name} is a FIFO queue without ContentBasedDeduplication: give "
                "--dedup-id (for a single message), or enable ContentBasedDeduplication"
            )
    elif deduplication_id is not None:
        return f"--dedup-id is for FIFO queues, and {target.name} is a standard queue"
    return None


def format_rate(verb: str, count: int, elapsed: float) -> str:
    rate = count / elapsed if elapsed > 0 else 0.0
    return f"{verb} {count} messages in {elapsed:.1f} s ({rate:.0f} msg/s)"


class Progress:
    """A line on `stream` every `every` messages, and a last one if there was any."""

    def __init__(
        self,
        verb: str,
        *,
        stream: TextIO | None = None,
        every: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.count = 0
        self._verb = verb
        self._stream = stream
        self._every = every or PROGRESS_EVERY
        self._clock = clock
        self._started = clock()
        self._lines = 0

    def add(self, count: int = 1) -> None:
        self.count += count
        if self.count // self._every > self._lines:
            self._lines = self.count // self._every
            self._print()

    def finish(self) -> None:
        if self._lines and self.count % self._every:
            self._print()

    def _print(self) -> None:
        line = format_rate(self._verb, self.count, self._clock() - self._started)
        print(line, file=self._stream or sys.stderr, flush=True)


# --- stats ----------------------------------------------------------------------------------


def queue_name_of(queue: str) -> str:
    """A queue's name, from its name, URL or ARN."""
    if queue.startswith("arn:"):
        return queue.rsplit(":", 1)[-1]
    if "://" in queue:
        return queue.rstrip("/").rsplit("/", 1)[-1]
    return queue


def _count(attributes: Mapping[str, str], name: str) -> int:
    try:
        return int(attributes.get(name, 0))
    except ValueError:
        return 0


def _depth(attributes: Mapping[str, str]) -> int:
    return sum(
        _count(attributes, name)
        for name in (
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        )
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
    policy = parse_redrive_policy(attributes.get("RedrivePolicy"))
    timeout = attributes.get("VisibilityTimeout")
    return QueueStats(
        queue=queue,
        visible=_count(attributes, "ApproximateNumberOfMessages"),
        in_flight=_count(attributes, "ApproximateNumberOfMessagesNotVisible"),
        delayed=_count(attributes, "ApproximateNumberOfMessagesDelayed"),
        visibility_timeout=int(timeout) if timeout and timeout.isdigit() else None,
        dead_letter_queue=queue_name_of(policy[0]) if policy else None,
        dead_letter_depth=(
            _depth(dead_letter_attributes)
            if policy and dead_letter_attributes is not None
            else None
        ),
        max_receive_count=policy[1] if policy else None,
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


# --- dlq inspect ------------------------------------------------------------------------------


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
    milliseconds = str((raw.get("Attributes") or {}).get("SentTimestamp", ""))
    try:
        return datetime.fromtimestamp(int(milliseconds) / 1000, tz=UTC).isoformat()
    except ValueError:
        return None


def _one_line(text: str) -> str:
    return text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def _preview(text: str, limit: int) -> str:
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


def peeked_record(raw: Mapping[str, Any]) -> dict[str, Any]:
    """What `dlq inspect --json` prints of one message."""
    attributes = raw.get("MessageAttributes") or {}
    system = raw.get("Attributes") or {}
    return {
        "message_id": raw.get("MessageId"),
        "receive_count": _count(system, "ApproximateReceiveCount"),
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


def format_peeked(raw: Mapping[str, Any], *, full: bool = False) -> str:
    """One dead letter for people: id, receive count, sent time, attributes, failure, body."""
    record = peeked_record(raw)
    rows: list[tuple[str, str]] = [
        ("receive count", f"{record['receive_count']} (this peek included)"),
        ("sent at", record["sent_at"] or "?"),
    ]
    if record["group_id"]:
        rows.append(("group", record["group_id"]))
    for name, text in record["attributes"].items():
        rows.append((f"attribute {name}", text if full else _preview(text, BODY_PREVIEW)))
    failure: dict[str, Any] | None = record["failure"]
    if failure is None:
        rows.append(("failure", "no aiosqsworker.failure record (moved by SQS's redrive?)"))
    else:
        order = [key for key in _FAILURE_ORDER if key in failure]
        order += sorted(key for key in failure if key not in _FAILURE_ORDER)
        for key in order:
            text = "-" if failure[key] is None else str(failure[key])
            rows.append((f"failure.{key}", text if full else _preview(text, BODY_PREVIEW)))
    width = max(len(key) for key, _ in rows)
    lines = [f"message {record['message_id']}"]
    lines += [f"  {key.ljust(width)}  {value}" for key, value in rows]
    body: str = record["body"]
    if full:
        lines.append(f"  body ({len(body)} characters):")
        lines.append(body)
    else:
        lines.append(f"  {'body'.ljust(width)}  {_preview(body, BODY_PREVIEW)}")
    return "\n".join(lines)


# --- dlq redrive --------------------------------------------------------------------------------

RedriveDecision = Literal["move", "filtered", "other-queue"]


def origin_of(raw: Mapping[str, Any]) -> str | None:
    """The queue a dead letter came from (URL or ARN), when SQS or the framework recorded it."""
    source = (raw.get("Attributes") or {}).get("DeadLetterQueueSourceArn")
    if source:
        return str(source)
    failure = failure_of(raw.get("MessageAttributes"))
    queue = failure.get("source_queue") if failure else None
    return str(queue) if queue else None


def redrive_decision(
    raw: Mapping[str, Any], *, text_filter: str | None, destination: str | None
) -> RedriveDecision:
    """Whether to move a dead letter; `destination` None (--to) takes any origin."""
    if text_filter is not None and text_filter not in raw.get("Body", ""):
        return "filtered"
    if destination is not None:
        origin = origin_of(raw)
        if origin is not None and queue_name_of(origin) != destination:
            return "other-queue"
    return "move"


@dataclass(frozen=True, slots=True)
class MoveEntry:
    """A dead letter as it is sent back."""

    body: str
    attributes: dict[str, dict[str, Any]]
    group_id: str | None
    deduplication_id: str | None


def redrive_entry(raw: Mapping[str, Any], *, fifo: bool, token: str) -> MoveEntry:
    """The body and attributes of a dead letter, less its failure record; FIFO: its group.

    A FIFO message gets a deduplication id unique to this redrive (`token`): reusing the
    original one could make SQS drop the message as a duplicate of its first send.
    """
    attributes: dict[str, dict[str, Any]] = {}
    for name, value in (raw.get("MessageAttributes") or {}).items():
        if name == FAILURE_ATTRIBUTE:
            continue
        attributes[name] = {
            key: value[key] for key in ("DataType", "StringValue", "BinaryValue") if key in value
        }
    system = raw.get("Attributes") or {}
    return MoveEntry(
        body=raw.get("Body", ""),
        attributes=attributes,
        group_id=(system.get("MessageGroupId") or "redrive") if fifo else None,
        deduplication_id=f"redrive-{token}-{raw['MessageId']}"[:128] if fifo else None,
    )


def batch_waves(sizes: Sequence[int]) -> list[list[int]]:
    """Indexes of consecutive entries grouped as one SendMessageBatch takes them."""
    waves: list[list[int]] = []
    total = 0
    for index, size in enumerate(sizes):
        if not waves or len(waves[-1]) == MAX_BATCH or total + size > MAX_MESSAGE_BYTES:
            waves.append([])
            total = 0
        waves[-1].append(index)
        total += size
    return waves


# --- I/O around them ----------------------------------------------------------------------------


async def _open_client(
    stack: AsyncExitStack, args: argparse.Namespace, *, max_connections: int
) -> SQSClient:
    config = AppConfig(region=args.region, endpoint_url=args.endpoint_url, profile=args.profile)
    return await open_sqs_client(
        stack, config, max_connections=max_connections, longest_wait=RECEIVE_WAIT
    )


def _first_error(error: BaseException) -> BaseException:
    """The framework's error a task group's exception group carries, else the error itself."""
    pending = [error]
    while pending:
        current = pending.pop(0)
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        elif isinstance(current, AioSQSWorkerError):
            return current
    return error


def _run(function: Callable[..., Any], *args: object) -> int:
    try:
        return int(anyio.run(function, *args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BaseExceptionGroup as group:
        error = _first_error(group)
        if error is group:
            raise
        raise error from None


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
        else:
            failed += len(result.failed)
    return failed


async def _release_at_exit(
    client: SQSClient, queue_url: str, handles: Sequence[str], hidden_for: int
) -> None:
    with anyio.CancelScope(shield=True), anyio.move_on_after(RELEASE_TIMEOUT):
        failed = await _release(client, queue_url, handles)
        if failed:
            print(
                f"warning: {failed} messages could not be made visible again: they come back "
                f"after their visibility timeout ({hidden_for} s)",
                file=sys.stderr,
            )


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
                if len(wave) == MAX_BATCH or wave_size + size > MAX_MESSAGE_BYTES:
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


def _messages(count: int) -> str:
    return f"{count} message" if count == 1 else f"{count} messages"


async def _send(
    args: argparse.Namespace,
    attributes: dict[str, dict[str, Any]],
    bodies: list[tuple[str, str]],
    stream: IO[bytes] | None,
) -> int:
    async with AsyncExitStack() as stack:
        client = await _open_client(stack, args, max_connections=SEND_IN_FLIGHT // MAX_BATCH + 2)
        url = await client.resolve_queue_url(args.queue)
        target = SendTarget.from_attributes(url, await client.get_queue_attributes(url))
        problem = send_options_problem(
            target, group_id=args.group_id, deduplication_id=args.dedup_id, delay=args.delay
        )
        if problem:
            raise ConfigurationError(problem)
        for where, body in bodies:
            problem = body_problem(body, attributes, target.limit)
            if problem:
                raise ConfigurationError(f"{where}: {problem}")
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
            f"{state.stopped} (sent: the {_messages(state.sent)} before it; nothing from it on)"
        )
    if state.sent == 0:
        raise ConfigurationError(
            "nothing to send: the input holds no message (empty lines are skipped)"
        )
    note = f" (MessageId {state.last_id})" if state.sent == 1 else ""
    print(f"sent {_messages(state.sent)} to {target.name}{note}")
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
            problem = body_problem(body, attributes, limit)
            if problem:
                raise ConfigurationError(f"{where}: {problem} (nothing was sent)")
            count += 1
    return count


def run_send(args: argparse.Namespace) -> int:
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
        return _run(_send, args, attributes, numbered, stream)
    finally:
        if stream is not None and path != "-":
            stream.close()


async def _stats_rows(
    client: SQSClient, urls: Sequence[str], dead_letter_urls: dict[str, str | None]
) -> list[QueueStats]:
    rows: list[QueueStats | None] = [None] * len(urls)

    async def one(index: int, url: str) -> None:
        attributes = await client.get_queue_attributes(url)
        policy = parse_redrive_policy(attributes.get("RedrivePolicy"))
        dead_letter_attributes = None
        if policy:
            arn = policy[0]
            if arn not in dead_letter_urls:
                try:
                    dead_letter_urls[arn] = await client.queue_url_from_arn(arn)
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
        client = await _open_client(stack, args, max_connections=8)
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


def run_stats(args: argparse.Namespace) -> int:
    return _run(_stats, args)


@dataclass(frozen=True, slots=True)
class DeadLetterRoute:
    """A dead-letter queue, and the queue named on the command line as its source, if any."""

    dead_letter_url: str
    source_url: str | None


async def find_dead_letter_queue(client: SQSClient, queue: str) -> DeadLetterRoute:
    """QUEUE's dead-letter queue by its RedrivePolicy; without one, QUEUE itself."""
    url = await client.resolve_queue_url(queue)
    policy = parse_redrive_policy((await client.get_queue_attributes(url)).get("RedrivePolicy"))
    if policy is None:
        return DeadLetterRoute(url, None)
    arn = policy[0]
    try:
        dead_letter_url = await client.queue_url_from_arn(arn)
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
        client = await _open_client(stack, args, max_connections=4)
        route = await find_dead_letter_queue(client, args.queue)
        dlq = route.dead_letter_url
        name = queue_name_of(dlq)
        if route.source_url is None:
            print(
                f"note: {queue_name_of(args.queue)} has no RedrivePolicy: inspecting it as a "
                "dead-letter queue",
                file=sys.stderr,
            )
        about = _count(await client.get_queue_attributes(dlq), "ApproximateNumberOfMessages")
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
            if args.json:
                for message in peeked.values():
                    print(json.dumps(peeked_record(message)))
            else:
                print(
                    f"{name}: {_messages(len(peeked))} shown, of about {about} visible; "
                    "all stay in the queue"
                )
                for message in peeked.values():
                    print()
                    print(format_peeked(message, full=args.full))
            sys.stdout.flush()
        finally:
            await _release_at_exit(client, dlq, list(handles.values()), PEEK_VISIBILITY)
    return 0


def run_dlq_inspect(args: argparse.Namespace) -> int:
    return _run(_inspect, args)


@dataclass
class _Redrive:
    """What a redrive did so far; its receive loops share it (one event loop: no locks)."""

    dead_letter_url: str
    destination_url: str
    text_filter: str | None
    origin: str | None  # the destination's name: other origins are left, unless --to
    budget: int | None
    dry_run: bool
    token: str
    progress: Progress
    moved: int = 0
    planned: int = 0
    filtered: int = 0
    other_queue: int = 0
    seen: set[str] = field(default_factory=set)
    held: dict[str, str] = field(default_factory=dict)  # message id -> receipt handle
    send_failures: list[tuple[str, BaseException]] = field(default_factory=list)
    undeleted: list[str] = field(default_factory=list)
    delete_error: BaseException | None = None
    stop: bool = False

    @property
    def fifo(self) -> bool:
        return self.destination_url.endswith(".fifo")


async def _redrive_lane(client: SQSClient, sender: BatchingSender, state: _Redrive) -> None:
    while not state.stop and (state.budget is None or state.budget > 0):
        want = MAX_BATCH
        if state.budget is not None and state.text_filter is None:
            want = max(1, min(MAX_BATCH, state.budget))
        batch = await client.receive_messages(
            state.dead_letter_url,
            max_messages=want,
            wait_time=RECEIVE_WAIT,
            visibility_timeout=HOLD_VISIBILITY,
        )
        fresh: list[Mapping[str, Any]] = []
        for received in batch:
            message_id = received["MessageId"]
            if message_id in state.seen:  # back after its hold ran out: hold it again
                if message_id in state.held:
                    state.held[message_id] = received["ReceiptHandle"]
                continue
            state.seen.add(message_id)
            fresh.append(received)
        if not fresh:
            return  # empty, or only messages already dealt with: nothing left to move
        moving: list[Mapping[str, Any]] = []
        for raw in fresh:
            decision = redrive_decision(
                raw, text_filter=state.text_filter, destination=state.origin
            )
            if decision == "move" and (state.budget is None or state.budget > 0):
                if state.budget is not None:
                    state.budget -= 1
                moving.append(raw)
                continue
            if decision == "filtered":
                state.filtered += 1
            elif decision == "other-queue":
                state.other_queue += 1
            state.held[raw["MessageId"]] = raw["ReceiptHandle"]
        if state.dry_run:
            for raw in moving:
                state.planned += 1
                state.held[raw["MessageId"]] = raw["ReceiptHandle"]
                group = (raw.get("Attributes") or {}).get("MessageGroupId")
                print(
                    f"would move {raw['MessageId']}"
                    f"{f' (group {group})' if group else ''}: {_preview(raw.get('Body', ''), 100)}"
                )
        elif moving:
            await _move(client, sender, state, moving)


async def _move(
    client: SQSClient,
    sender: BatchingSender,
    state: _Redrive,
    moving: list[Mapping[str, Any]],
) -> None:
    entries = [redrive_entry(raw, fifo=state.fifo, token=state.token) for raw in moving]
    results: list[str | BaseException | None] = [None] * len(entries)

    async def send(index: int) -> None:
        entry = entries[index]
        try:
            results[index] = await sender.send(
                state.destination_url,
                entry.body,
                attributes=entry.attributes,
                group_id=entry.group_id,
                deduplication_id=entry.deduplication_id,
            )
        except AioSQSWorkerError as exc:
            results[index] = exc

    sizes = [message_size(entry.body, entry.attributes) for entry in entries]
    for wave in batch_waves(sizes):  # one batch after the other: FIFO order is kept
        async with anyio.create_task_group() as group:
            for index in wave:
                group.start_soon(send, index)
    sent: list[Mapping[str, Any]] = []
    for raw, result in zip(moving, results, strict=True):
        if isinstance(result, str):
            sent.append(raw)
        else:
            assert result is not None
            state.send_failures.append((raw["MessageId"], result))
            state.held[raw["MessageId"]] = raw["ReceiptHandle"]
    if not sent:
        state.stop = True  # nothing goes through: no point receiving more
        return
    try:
        deleted = await client.delete_message_batch(
            state.dead_letter_url,
            [(str(i), raw["ReceiptHandle"]) for i, raw in enumerate(sent)],
        )
    except SQSError as exc:
        state.delete_error = exc
        state.undeleted.extend(raw["MessageId"] for raw in sent)
        state.stop = True
        return
    refused = {failure.id for failure in deleted.failed}
    for i, raw in enumerate(sent):
        if str(i) in refused:
            state.undeleted.append(raw["MessageId"])  # stays in `seen`: not moved twice
        else:
            state.moved += 1
            state.seen.discard(raw["MessageId"])
            state.progress.add()


async def _destination(
    client: SQSClient, route: DeadLetterRoute, queue: str, to: str | None
) -> str:
    if to is not None:
        url = await client.resolve_queue_url(to)
        await client.get_queue_attributes(url)  # it must exist
    elif route.source_url is not None:
        url = route.source_url
    else:
        try:
            sources = await client.list_dead_letter_source_queues(route.dead_letter_url)
        except SQSError as exc:
            raise ConfigurationError(
                f"{queue_name_of(queue)} has no RedrivePolicy, and the queues that use it as "
                f"their dead-letter queue cannot be listed ({exc}). Name the source queue, or "
                "give --to QUEUE"
            ) from exc
        if not sources:
            raise ConfigurationError(
                f"{queue_name_of(queue)} has no RedrivePolicy, and no queue names it as its "
                "dead-letter queue: there is nowhere to move its messages back to. Name the "
                "source queue, or give --to QUEUE"
            )
        if len(sources) > 1:
            names = ", ".join(sorted(queue_name_of(source) for source in sources))
            raise ConfigurationError(
                f"{queue_name_of(queue)} is the dead-letter queue of {len(sources)} queues "
                f"({names}): name the source queue to redrive, or give --to QUEUE"
            )
        url = sources[0]
    if queue_name_of(url) == queue_name_of(route.dead_letter_url):
        raise ConfigurationError(f"cannot redrive {queue_name_of(url)} into itself")
    return url


def _redrive_summary(state: _Redrive, limit: int | None) -> str:
    dlq = queue_name_of(state.dead_letter_url)
    destination = queue_name_of(state.destination_url)
    if state.dry_run:
        line = (
            f"would move {_messages(state.planned)} from {dlq} to {destination} "
            "(dry run: nothing moved)"
        )
    else:
        line = f"moved {_messages(state.moved)} from {dlq} to {destination}"
    left = []
    if state.filtered:
        left.append(f"{state.filtered} not matching --filter")
    if state.other_queue:
        left.append(f"{state.other_queue} dead-lettered from other queues (--to moves them anyway)")
    if left:
        line += f"; left in {dlq}: " + ", ".join(left)
    if limit is not None and state.budget == 0:
        line += f"; stopped at --max {limit}"
    return line


async def _redrive(args: argparse.Namespace) -> int:
    async with AsyncExitStack() as stack:
        client = await _open_client(stack, args, max_connections=REDRIVE_LANES * 2 + 2)
        route = await find_dead_letter_queue(client, args.queue)
        destination = await _destination(client, route, args.queue, args.to)
        state = _Redrive(
            dead_letter_url=route.dead_letter_url,
            destination_url=destination,
            text_filter=args.filter,
            origin=None if args.to is not None else queue_name_of(destination),
            budget=args.max,
            dry_run=args.dry_run,
            token=uuid.uuid4().hex[:12],
            progress=Progress("moved"),
        )
        sender = BatchingSender(client)
        lanes = 1 if state.fifo or route.dead_letter_url.endswith(".fifo") else REDRIVE_LANES
        try:
            async with anyio.create_task_group() as group:
                for _ in range(lanes):
                    group.start_soon(_redrive_lane, client, sender, state)
        finally:
            await _release_at_exit(
                client, route.dead_letter_url, list(state.held.values()), HOLD_VISIBILITY
            )
        state.progress.finish()
    print(_redrive_summary(state, args.max))
    dlq, destination_name = queue_name_of(state.dead_letter_url), queue_name_of(destination)
    problems = []
    if state.send_failures:
        message_id, error = state.send_failures[0]
        problems.append(
            f"{_messages(len(state.send_failures))} could not be sent to {destination_name} and "
            f"stay in {dlq} (first, {message_id}: {error})"
        )
    if state.undeleted:
        why = f" ({state.delete_error})" if state.delete_error else ""
        problems.append(
            f"{_messages(len(state.undeleted))} were sent to {destination_name} but could not "
            f"be deleted from {dlq}{why}: they are in both queues now"
        )
    if problems:
        raise SQSError("; ".join(problems))
    return 0


def run_dlq_redrive(args: argparse.Namespace) -> int:
    return _run(_redrive, args)


def run_command(args: argparse.Namespace) -> int:
    """Run the admin command `args` names (the CLI's entry point into this module)."""
    if args.command == "send":
        return run_send(args)
    if args.command == "stats":
        return run_stats(args)
    if args.dlq_command == "inspect":
        return run_dlq_inspect(args)
    return run_dlq_redrive(args)


# --- the command line ---------------------------------------------------------------------------

SEND_EPILOG = """\
input:
  Each BODY argument is one message, sent as it is (QUEUE and the BODY arguments go
  together, options before or after them). With --file PATH (--file - or a
  lone - reads stdin) each line is one message: its text without the line ending, so
  JSON lines stay JSON text. Empty lines are skipped; lines must be UTF-8. A line the
  queue cannot take (over its MaximumMessageSize, a character SQS refuses) is an error
  that names it: a file is checked whole before anything is sent; from stdin, lines are
  sent as they come and sending stops at the bad line.

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

REDRIVE_EPILOG = """\
which queues:
  A QUEUE with a RedrivePolicy is the source: messages go back to it from its dead-letter
  queue. A QUEUE without one is taken as the dead-letter queue: messages go back to the one
  queue whose RedrivePolicy names it, or to --to QUEUE. A dead letter whose failure record
  (or SQS's DeadLetterQueueSourceArn) names another source queue is left where it is,
  unless --to is given.

how it moves:
  Up to ten messages at a time are received from the dead-letter queue, sent with
  SendMessageBatch (body and message attributes kept, the aiosqsworker.failure record
  dropped; FIFO: MessageGroupId kept, a new deduplication id), and deleted from the
  dead-letter queue only once SQS confirmed their send. Messages not moved (--filter,
  --max, --dry-run, a failed send) are made visible again at the end. An interrupted
  redrive loses nothing: at worst a message is in both queues.

exit codes:
  0 done; 1 an error, or messages that could not be moved (they stay in the DLQ).

examples:
  python -m aiosqsworker dlq redrive orders --dry-run
  python -m aiosqsworker dlq redrive orders --filter '"customer": 42' --max 100
  python -m aiosqsworker dlq redrive orders-dlq --to orders-replay
"""


def _argument(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse `type=` from a parser that raises ConfigurationError."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ConfigurationError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def _delay(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_DELAY:
        raise ConfigurationError(f"{text!r}: give whole seconds from 0 to {MAX_DELAY}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigurationError(f"{text!r}: give a whole number of 1 or more")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise ConfigurationError(f"{text!r}: give a positive number of seconds")
    return value


def add_admin_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    connection_options: Callable[[argparse.ArgumentParser], None],
    logging_options: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add `send`, `stats` and `dlq` (`inspect`, `redrive`) to the CLI's subcommands."""
    raw = argparse.RawDescriptionHelpFormatter

    prog = "python -m aiosqsworker"
    send = sub.add_parser(
        "send",
        prog=f"{prog} send",
        help="send messages from arguments, a file or stdin",
        description="Send messages to QUEUE (a name or URL): each BODY, or each line of "
        "--file PATH or stdin, is one message.",
        epilog=SEND_EPILOG,
        formatter_class=raw,
    )
    send.add_argument("queue", metavar="QUEUE", help="queue name or URL")
    send.add_argument(
        "bodies", metavar="BODY", nargs="*", help="message bodies; a lone - reads stdin"
    )
    send.add_argument(
        "--file", metavar="PATH", help="send each line of PATH as a message (- for stdin)"
    )
    send.add_argument(
        "--attribute",
        action="append",
        default=[],
        type=_argument(parse_attribute),
        metavar="NAME[:TYPE]=VALUE",
        help="a message attribute for every message (repeatable, up to 10); TYPE is String "
        "(the default), Number or Binary (VALUE in base64)",
    )
    send.add_argument(
        "--delay",
        type=_argument(_delay),
        default=0,
        metavar="SECONDS",
        help="hide the messages for this long after sending, 0 to 900 (standard queues)",
    )
    send.add_argument("--group-id", help="MessageGroupId (required by FIFO queues)")
    send.add_argument(
        "--dedup-id",
        help="MessageDeduplicationId of a single message (FIFO queues without "
        "ContentBasedDeduplication)",
    )
    connection_options(send)
    logging_options(send)

    stats = sub.add_parser(
        "stats",
        prog=f"{prog} stats",
        help="show queue depths, in flight, delayed, and dead-letter queues",
        description="Print what SQS counts for each QUEUE (name or URL) and its dead-letter "
        "queue. The age of the oldest message is left out: SQS's API does not report it.",
        epilog=STATS_EPILOG,
        formatter_class=raw,
    )
    stats.add_argument("queues", metavar="QUEUE", nargs="+", help="queue names or URLs")
    stats.add_argument(
        "--watch",
        nargs="?",
        const=5.0,
        type=_argument(_seconds),
        metavar="SECONDS",
        help="refresh every SECONDS (default 5) until Ctrl-C",
    )
    stats.add_argument("--json", action="store_true", help="one JSON object per queue")
    connection_options(stats)
    logging_options(stats)

    dlq = sub.add_parser(
        "dlq",
        prog=f"{prog} dlq",
        help="inspect or redrive dead-lettered messages",
        description="Look at dead-lettered messages (inspect) or move them back (redrive).",
        epilog="examples:\n  python -m aiosqsworker dlq inspect orders\n"
        "  python -m aiosqsworker dlq redrive orders --dry-run\n",
        formatter_class=raw,
    )
    actions = dlq.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    inspect = actions.add_parser(
        "inspect",
        help="peek at dead-lettered messages without consuming them",
        description="Show up to --max dead-lettered messages: id, receive count, sent time, "
        "body and the failure record the framework attached. Nothing is deleted.",
        epilog=INSPECT_EPILOG,
        formatter_class=raw,
    )
    inspect.add_argument(
        "queue", metavar="QUEUE", help="source queue (its DLQ is read) or the DLQ itself"
    )
    inspect.add_argument(
        "--max",
        type=_argument(_positive_int),
        default=10,
        metavar="N",
        help="show at most N messages (default: %(default)s)",
    )
    inspect.add_argument(
        "--full", action="store_true", help="whole bodies and errors, not their first 300 chars"
    )
    inspect.add_argument(
        "--json", action="store_true", help="one JSON object per message, whole bodies"
    )
    connection_options(inspect)
    logging_options(inspect)

    redrive = actions.add_parser(
        "redrive",
        help="move dead-lettered messages back to their source queue",
        description="Move messages from the dead-letter queue back to the source queue, "
        "without their failure record.",
        epilog=REDRIVE_EPILOG,
        formatter_class=raw,
    )
    redrive.add_argument(
        "queue", metavar="QUEUE", help="source queue (its DLQ is read) or the DLQ itself"
    )
    redrive.add_argument(
        "--filter", metavar="TEXT", help="move only messages whose body contains TEXT"
    )
    redrive.add_argument(
        "--max", type=_argument(_positive_int), metavar="N", help="move at most N messages"
    )
    redrive.add_argument(
        "--to", metavar="QUEUE", help="move to this queue instead of the source queue"
    )
    redrive.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would move; move nothing, leave everything visible",
    )
    connection_options(redrive)
    logging_options(redrive)
