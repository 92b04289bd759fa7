"""What the queue tools share: the client, the event loop, queue names, counts, progress.

`batch_waves` and `batch_is_full` hold SendMessageBatch's limits (ten entries, 1 MiB in all)
for the two commands that send in batches of their own making: `send` to a FIFO queue and
`dlq redrive`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any, TextIO

import anyio

from ..._config import AppConfig
from ..._errors import AioSQSWorkerError, leaf_errors
from ..._producer import batch_is_full
from ..._sqs.base import SQSClient
from ..._sqs.limits import MAX_DELAY
from ..._sqs.open import open_payload_store, open_sqs_client
from ..._sqs.payloads import PayloadStore
from ..._sqs.rules import delay_refusal
from ..._sqs.urls import queue_name
from ..._text import plural
from ..command import checked_number

__all__ = [
    "PROGRESS_EVERY",
    "RECEIVE_WAIT",
    "Progress",
    "batch_is_full",
    "batch_waves",
    "count_of",
    "delay_seconds",
    "format_rate",
    "messages_text",
    "open_client",
    "open_payloads",
    "positive_int",
    "queue_depth",
    "queue_name_of",
    "run_coroutine",
]

#: Options several commands take: `send --delay` and `queue create --delay`; `dlq ... --max`.
delay_seconds = checked_number(
    int, lambda value: delay_refusal(value) is None, f"whole seconds from 0 to {MAX_DELAY}"
)
positive_int = checked_number(int, lambda value: value >= 1, "a whole number of 1 or more")

#: A progress line on stderr every this many messages sent or moved.
PROGRESS_EVERY = 1000
#: Long-poll seconds of the receives: long enough to ask every SQS server, short for the end.
RECEIVE_WAIT = 1


def queue_name_of(queue: str) -> str:
    """A queue's name, from its name, URL or ARN."""
    if queue.startswith("arn:"):
        return queue.rsplit(":", 1)[-1]
    if "://" in queue:
        return queue_name(queue)
    return queue


def count_of(attributes: Mapping[str, str], name: str) -> int:
    """The number a queue or message attribute holds; 0 if it is missing or not a number."""
    try:
        return int(attributes.get(name, 0))
    except ValueError:
        return 0


def queue_depth(attributes: Mapping[str, str]) -> int:
    """Every message of a queue, from its attributes: visible + in flight + delayed."""
    return sum(
        count_of(attributes, name)
        for name in (
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        )
    )


def messages_text(count: int) -> str:
    """``1 message``, ``2 messages``."""
    return plural(count, "message")


def format_rate(verb: str, count: int, elapsed: float) -> str:
    rate = count / elapsed if elapsed > 0 else 0.0
    return f"{verb} {messages_text(count)} in {elapsed:.1f} s ({rate:.0f} msg/s)"


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


def batch_waves(sizes: Sequence[int]) -> list[list[int]]:
    """Indexes of consecutive entries grouped as one SendMessageBatch takes them."""
    waves: list[list[int]] = []
    total = 0
    for index, size in enumerate(sizes):
        if not waves or batch_is_full(len(waves[-1]), total, size):
            waves.append([])
            total = 0
        waves[-1].append(index)
        total += size
    return waves


async def open_client(
    stack: AsyncExitStack, args: argparse.Namespace, *, max_connections: int
) -> SQSClient:
    """A client from the command's connection options, closed with `stack`."""
    config = AppConfig(region=args.region, endpoint_url=args.endpoint_url, profile=args.profile)
    return await open_sqs_client(
        stack, config, max_connections=max_connections, longest_wait=RECEIVE_WAIT
    )


def open_payloads(stack: AsyncExitStack, args: argparse.Namespace) -> PayloadStore:
    """The S3 side of the command's connection (endpoint: AWS_ENDPOINT_URL_S3, ...)."""
    config = AppConfig(region=args.region, endpoint_url=args.endpoint_url, profile=args.profile)
    return open_payload_store(stack, config, max_connections=8)


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The framework's error a task group's exception group carries, else the group itself."""
    framework = (e for e in leaf_errors(group) if isinstance(e, AioSQSWorkerError))
    return next(framework, group)


def run_coroutine(function: Callable[..., Any], *args: object) -> int:
    """Run a command's coroutine; its exit status (130 on Ctrl-C), or the error it hit."""
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
