"""`dlq redrive QUEUE`: move dead letters back to their source queue, less the failure record.

`redrive_decision` (move a message, or leave it) and `redrive_entry` (what is sent back) are
pure: tests call them directly. A dead letter whose body is in S3 goes back as the pointer it
is (the object stays where it is); ``--filter`` reads its payload. A message is deleted from
the dead-letter queue only once SQS confirmed its send: an interrupted redrive loses nothing,
at worst a message is in both queues.

Why not SQS's StartMessageMoveTask: a move task copies messages verbatim, so the failure record
would travel back to the source queue with them (and come back stale with the next failure);
it cannot filter; and local SQS servers do not implement it. The batched move below needs only
the calls every server has.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

from ..._config import EnvironmentSettings
from ..._errors import AioSQSWorkerError, ConfigurationError, SQSError
from ..._producer import BatchingSender, message_size
from ..._sqs.base import SQSClient
from ..._sqs.batches import read_answer
from ..._sqs.limits import MAX_BATCH
from ..._sqs.payloads import PayloadStore
from ..._sqs.redrive import FAILURE_ATTRIBUTE
from ..command import Subparsers, add_connection_options, add_logging_options, argument
from ._common import (
    RECEIVE_WAIT,
    Progress,
    batch_waves,
    messages_text,
    open_client,
    open_payloads,
    positive_int,
    queue_name_of,
    run_coroutine,
)
from .dlq import (
    DeadLetterRoute,
    dlq_action,
    failure_of,
    fetch_payload,
    find_dead_letter_queue,
    preview,
    release_at_exit,
)

__all__ = [
    "MoveEntry",
    "RedriveDecision",
    "add_redrive_parser",
    "origin_of",
    "redrive_decision",
    "redrive_entry",
    "run_dlq_redrive",
]

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


#: Seconds a message redrive holds (not moved yet, or left behind) stays hidden if redrive dies.
HOLD_VISIBILITY = 120
#: Receive loops redrive runs at once on a standard queue (a FIFO queue gets one, in order).
REDRIVE_LANES = 4

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
    raw: Mapping[str, Any],
    *,
    text_filter: str | None,
    destination: str | None,
    payload: str | None = None,
) -> RedriveDecision:
    """Whether to move a dead letter; `destination` None (--to) takes any origin.

    `payload` is the text of a body stored in S3, which `text_filter` reads instead.
    """
    text = payload if payload is not None else raw.get("Body", "")
    if text_filter is not None and text_filter not in text:
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
    """The body and attributes of a dead letter, less its failure record, with its group.

    A FIFO message gets a deduplication id unique to this redrive (`token`): reusing the
    original one could make SQS drop the message as a duplicate of its first send. A fair
    queue's message (a standard queue's, with a group) keeps its group too.
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
        group_id=system.get("MessageGroupId") or ("redrive" if fifo else None),
        deduplication_id=f"redrive-{token}-{raw['MessageId']}"[:128] if fifo else None,
    )


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
    payloads: PayloadStore
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
            payload = None
            if state.text_filter is not None:
                fetched = await fetch_payload(state.payloads, raw)
                payload = fetched.text if fetched is not None else None
            decision = redrive_decision(
                raw, text_filter=state.text_filter, destination=state.origin, payload=payload
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
                    f"{f' (group {group})' if group else ''}: {preview(raw.get('Body', ''), 100)}"
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
    # A delete the answer left out is not taken as done: the message may still be here.
    answer = read_answer(sent, deleted)
    for raw, _ in (*answer.retry, *answer.give_up):
        state.undeleted.append(raw["MessageId"])  # stays in `seen`: not moved twice
    for raw in answer.done:
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
            f"would move {messages_text(state.planned)} from {dlq} to {destination} "
            "(dry run: nothing moved)"
        )
    else:
        line = f"moved {messages_text(state.moved)} from {dlq} to {destination}"
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
        client = await open_client(stack, args, max_connections=REDRIVE_LANES * 2 + 2)
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
            payloads=open_payloads(stack, args),
        )
        sender = BatchingSender(client)
        lanes = 1 if state.fifo or route.dead_letter_url.endswith(".fifo") else REDRIVE_LANES
        try:
            async with anyio.create_task_group() as group:
                for _ in range(lanes):
                    group.start_soon(_redrive_lane, client, sender, state)
        finally:
            await release_at_exit(
                client, route.dead_letter_url, list(state.held.values()), HOLD_VISIBILITY
            )
        state.progress.finish()
    print(_redrive_summary(state, args.max))
    dlq, destination_name = queue_name_of(state.dead_letter_url), queue_name_of(destination)
    problems = []
    if state.send_failures:
        message_id, error = state.send_failures[0]
        problems.append(
            f"{messages_text(len(state.send_failures))} could not be sent to "
            f"{destination_name} and stay in {dlq} (first, {message_id}: {error})"
        )
    if state.undeleted:
        why = f" ({state.delete_error})" if state.delete_error else ""
        problems.append(
            f"{messages_text(len(state.undeleted))} were sent to {destination_name} but could not "
            f"be deleted from {dlq}{why}: they are in both queues now"
        )
    if problems:
        raise SQSError("; ".join(problems))
    return 0


def add_redrive_parser(actions: Subparsers, env: EnvironmentSettings) -> None:
    parser = dlq_action(
        actions,
        "redrive",
        help="move dead-lettered messages back to their source queue",
        description="Move messages from the dead-letter queue back to the source queue, "
        "without their failure record.",
        epilog=REDRIVE_EPILOG,
    )
    parser.add_argument(
        "--filter", metavar="TEXT", help="move only messages whose body contains TEXT"
    )
    parser.add_argument(
        "--max", type=argument(positive_int), metavar="N", help="move at most N messages"
    )
    parser.add_argument(
        "--to", metavar="QUEUE", help="move to this queue instead of the source queue"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would move; move nothing, leave everything visible",
    )
    add_connection_options(parser)
    add_logging_options(parser, env)


def run_dlq_redrive(args: argparse.Namespace) -> int:
    return run_coroutine(_redrive, args)
