"""moto's server with one change: a ReceiveMessage takes messages atomically.

`LocalSQSServer` runs this module (``python -m aiosqsworker._motoserver``, moto's own command
line options). moto serves each request on a thread of its own, and its ReceiveMessage checks
that a message is visible, then marks it received, with no lock between the two: two polls
at the same moment can both take one message (in a check of 120 receives by 8 pollers, a
few messages came out twice), which SQS never does. Its FIFO long poll also reads once, at
the start, which message groups are busy, so a poll that waits can later hand out a group's
next message while the one before it is still in flight.

Here each pass over the queue is moto's own code called as a short poll, under one lock for
the whole server that deletes and visibility changes take too (they edit the same in-flight
set); a long poll waits between passes outside the lock, so other calls (and other long
polls) go on meanwhile, as they do against SQS.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from moto import server
from moto.sqs.models import SQSBackend

__all__ = ["main"]

_Method = TypeVar("_Method", bound=Callable[..., Any])

# Re-entrant: moto's batch calls go through its single-message methods.
_message_state = threading.RLock()
_one_pass = SQSBackend.receive_message
#: How long a long poll sleeps when messages are visible but none could be taken (FIFO
#: groups busy): moto's own wait returns at once then.
_BLOCKED_PAUSE = 0.05


def _receive_message(
    self: SQSBackend,
    queue_name: str,
    count: int,
    wait_seconds_timeout: int,
    visibility_timeout: int,
    message_attribute_names: list[str] | None = None,
) -> Any:
    deadline = time.monotonic() + (wait_seconds_timeout or 0)
    while True:
        with _message_state:
            result = _one_pass(
                self, queue_name, count, 0, visibility_timeout, message_attribute_names
            )
        remaining = deadline - time.monotonic()
        if result or remaining <= 0:
            return result
        # Wakes when a message is sent; one whose visibility runs out is seen within 1 s, as
        # in moto's own long poll.
        waited_from = time.monotonic()
        self.get_queue(queue_name).wait_for_messages(min(1.0, remaining))  # type: ignore[arg-type]
        if time.monotonic() - waited_from < 0.01:
            time.sleep(min(_BLOCKED_PAUSE, remaining))


def _one_at_a_time(method: _Method) -> _Method:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _message_state:
            return method(*args, **kwargs)

    return locked  # type: ignore[return-value]


def main() -> None:
    SQSBackend.receive_message = _receive_message  # type: ignore[method-assign]
    SQSBackend.delete_message = _one_at_a_time(SQSBackend.delete_message)  # type: ignore[method-assign]
    SQSBackend.change_message_visibility = _one_at_a_time(  # type: ignore[method-assign]
        SQSBackend.change_message_visibility
    )
    server.main()


if __name__ == "__main__":
    main()
