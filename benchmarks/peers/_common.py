"""What the peers' drivers share: options, the window, a stop signal. Standard library only."""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

from .._probe import Options, Tally, Window, emit, parse_options
from ..handlers import SYNC_HANDLERS

__all__ = ["BODY", "REGION", "Run", "load", "start_run"]

REGION = "us-east-1"
#: The argument of the one task a task-queue peer enqueues (about the size of the responder's).
BODY = (
    '{"order_id": "ord-000001", "customer": {"id": 1001, "tier": "gold"}, '
    '"items": [{"sku": "SKU-0007", "quantity": 2}], "total_cents": 2036, "currency": "EUR"}'
)


class Run:
    """One peer run: options, window, tally, and a thread-safe `finished` event."""

    def __init__(self, name: str, distribution: str, argv: list[str] | None) -> None:
        self.name = name
        self.distribution = distribution
        self.options: Options = parse_options(argv, [name], f"python -m benchmarks.peers.{name}")
        self.window = Window()
        self.finished = threading.Event()
        self.tally = Tally(self.options.messages, self.window, self.finished.set)
        self.handler: Callable[[str], None] = SYNC_HANDLERS[self.options.handler]
        self.deadline = 0.0
        # Every boto3 client the peer makes goes to the benchmark's endpoint.
        os.environ["AWS_ENDPOINT_URL_SQS"] = self.options.endpoint
        os.environ.setdefault("AWS_DEFAULT_REGION", REGION)

    def handle(self, body: str) -> None:
        self.tally.begin()
        self.handler(body)
        self.tally.done()

    def start(self, *, replay: bool = False) -> None:
        """Open the window (release the budget); the deadline starts now."""
        self.deadline = time.monotonic() + self.options.deadline
        self.window.start(self.options.start_url, self.options.messages, replay=replay)

    @property
    def over(self) -> bool:
        """Finished, or past the deadline (the window then closes where it stands)."""
        if self.finished.is_set():
            return True
        if self.deadline and time.monotonic() > self.deadline:
            self.window.stop()
            self.finished.set()
            return True
        return False

    def wait(self) -> None:
        """Block until finished or the deadline."""
        while not self.over:
            self.finished.wait(0.05)

    def emit(self, **extra: object) -> None:
        try:
            version = metadata.version(self.distribution)
        except metadata.PackageNotFoundError:
            version = "?"
        emit(self.name, self.tally, self.window, version=version, **extra)


def start_run(name: str, distribution: str, argv: list[str] | None) -> Run:
    return Run(name, distribution, argv)


def load(module: str) -> Any:
    """Import a peer's module (installed in the peer's environment only: untyped here)."""
    return importlib.import_module(module)
