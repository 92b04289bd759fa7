"""moto's server with its message bookkeeping made thread-safe where SQS's guarantees need it.

`LocalSQSServer` runs this module (``python -m aiosqsworker.testing.motoserver``, moto's own command
line options). moto serves each request on a thread of its own and locks little:

- a ReceiveMessage checks that a message is visible, then marks it received, with nothing
  between the two: two polls at the same moment can both take one message (in a check of
  1,446 receives by 8 pollers, 6 came out twice), which SQS never does;
- its FIFO long poll reads once, at the start, which message groups are busy, so a poll that
  waits can later hand out a group's next message while the one before it is in flight;
- a delete rebuilds the queue's list of messages, and a send appending to the old list at
  that moment is lost;
- a visibility change edits the in-flight set that a receive is reading.

Here each pass over the queue is moto's own code called as a short poll, under one lock
that visibility changes take too; a long poll waits between passes outside it, so other
calls and other long polls go on meanwhile. A delete takes the queue's own lock, the one
sends take. Deletes stay out of the receive lock: queued behind sixteen long polls' passes,
they held finished messages back and halved a consumer's throughput.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from moto import server
from moto.sqs.models import Queue, SQSBackend

__all__ = ["main"]

_receive_lock = threading.Lock()
_one_pass = SQSBackend.receive_message
_change_visibility = SQSBackend.change_message_visibility
_queue_delete = Queue.delete_message
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
        with _receive_lock:
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


def _change_message_visibility(self: SQSBackend, *args: Any, **kwargs: Any) -> None:
    with _receive_lock:
        _change_visibility(self, *args, **kwargs)


def _delete_message(queue: Queue, receipt_handle: str) -> None:
    with queue._messages_lock:
        _queue_delete(queue, receipt_handle)


def main() -> None:
    SQSBackend.receive_message = _receive_message  # type: ignore[method-assign]
    SQSBackend.change_message_visibility = _change_message_visibility  # type: ignore[method-assign]
    Queue.delete_message = _delete_message  # type: ignore[method-assign,assignment]
    server.main()


if __name__ == "__main__":
    main()
