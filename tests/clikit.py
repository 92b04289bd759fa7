"""What the command-line scenarios share: a worker process, its log, and its ledger."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import Process

from .kit import Queue, SQSKit, eventually, eventually_async

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Event:
    pid: int
    kind: str
    message_id: str
    label: str


def read_ledger(path: Path) -> list[Event]:
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        pid, kind, message_id, label = line.split(" ", 3)
        events.append(Event(int(pid), kind, message_id, label))
    return events


def ids_of(events: list[Event], kind: str) -> Counter[str]:
    return Counter(event.message_id for event in events if event.kind == kind)


def started_twice(events: list[Event]) -> list[Event]:
    """The events of every message started more than once (none, when all is well)."""
    twice = {message_id for message_id, count in ids_of(events, "start").items() if count > 1}
    return [event for event in events if event.message_id in twice]


@asynccontextmanager
async def cli(args: list[str], env: Mapping[str, str], log: Path) -> AsyncIterator[Process]:
    """`python -m aiosqsworker ARGS` from the repository's root, killed if still running."""
    with log.open("ab") as log_file:
        process = await anyio.open_process(
            [sys.executable, "-m", "aiosqsworker", *args],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()


def tail(log: Path) -> str:
    """The end of a worker's log, for an assertion's message."""
    return log.read_text()[-3000:]


async def exit_code(process: Process, log: Path, *, within: float) -> tuple[int, float]:
    """Wait for the process to exit: (its code, seconds it took)."""
    started = time.monotonic()
    try:
        with anyio.fail_after(within):
            code = await process.wait()
    except TimeoutError:
        raise AssertionError(f"still running {within} s later; its log:\n{tail(log)}") from None
    return code, time.monotonic() - started


async def logged(log: Path, text: str, *, within: float = 20) -> None:
    await eventually(lambda: text in log.read_text(), within=within, what=f"{text!r} logged")


async def counts_become(sqs: SQSKit, queue: Queue, expected: tuple[int, int]) -> None:
    async def check() -> bool:
        return await sqs.counts(queue) == expected

    await eventually_async(check, within=20, every=0.2)
