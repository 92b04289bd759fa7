"""moto's server with its message bookkeeping made thread-safe where SQS's guarantees need it.

`LocalSQSServer` runs this module (``python -m aiosqsworker.testing.motoserver``, moto's own command
line options). moto serves each request on a thread of its own and locks little:

- a ReceiveMessage checks that a message is visible, then marks it received, with nothing
  between the two: two polls at the same moment can both take one message, which SQS
  never does;
- its FIFO long poll reads once, at the start, which message groups are busy, so a poll that
  waits can later hand out a group's next message while the one before it is in flight;
- a delete rebuilds the queue's list of messages, and a send appending to the old list at
  that moment is lost;
- a visibility change edits the in-flight set that a receive is reading;
- a SendMessageBatch entry's MessageSystemAttributes (the X-Ray ``AWSTraceHeader``) are
  dropped, where SendMessage keeps them.

Here each pass over the queue is moto's own code called as a short poll, under one lock
that visibility changes take too; a long poll waits between passes outside it, so other
calls and other long polls go on meanwhile. A delete takes the queue's own lock, the one
sends take, and stays out of the receive lock, where it would queue behind every long
poll's passes.

The patch replaces moto's private functions, so it runs only on the moto releases it was
written for (`SUPPORTED_MOTO`, the range pyproject.toml pins) and refuses any other with
what to do, rather than misbehave quietly.
"""

from __future__ import annotations

import inspect
import sys
import threading
import time
from importlib.metadata import version
from typing import Any

from moto import server
from moto.sqs.models import Queue, SQSBackend

__all__ = ["SUPPORTED_MOTO", "check_moto", "main"]

#: The moto releases the patch was written for: [first, last) by (major, minor).
SUPPORTED_MOTO = ((5, 2), (5, 3))
_RECEIVE_PARAMETERS = [
    "self",
    "queue_name",
    "count",
    "wait_seconds_timeout",
    "visibility_timeout",
    "message_attribute_names",
]

_receive_lock = threading.Lock()
_one_pass = SQSBackend.receive_message
_change_visibility = SQSBackend.change_message_visibility
_queue_delete = Queue.delete_message
_send_one = SQSBackend.send_message
_send_batch = SQSBackend.send_message_batch
#: The system attributes of the batch entries this thread is sending, by their attributes.
_batch_system_attributes = threading.local()
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


def check_moto(installed: str) -> None:
    """Raise RuntimeError, saying what to do, unless `installed` moto is one the patch knows."""
    first, last = SUPPORTED_MOTO
    try:
        release = tuple(int(part) for part in installed.split(".")[:2])
    except ValueError:
        release = (0, 0)
    shape_known = (
        list(inspect.signature(_one_pass).parameters) == _RECEIVE_PARAMETERS
        and hasattr(Queue, "wait_for_messages")
        and hasattr(Queue, "delete_message")
    )
    if not first <= release < last or not shape_known:
        raise RuntimeError(
            f"aiosqsworker's local SQS server patches moto's internals and was written for "
            f"moto {first[0]}.{first[1]}.x; moto {installed} is installed. Install a supported "
            f"one: pip install 'moto[server]>={first[0]}.{first[1]},<{last[0]}.{last[1]}'"
        )


def _send_message(self: SQSBackend, *args: Any, **kwargs: Any) -> Any:
    if kwargs.get("system_attributes") is None:
        pending = getattr(_batch_system_attributes, "by_entry", {})
        kwargs["system_attributes"] = pending.get(id(kwargs.get("message_attributes")))
    return _send_one(self, *args, **kwargs)


def _send_message_batch(self: SQSBackend, queue_name: str, entries: dict[str, Any]) -> Any:
    # moto's batch sends each entry through send_message, passing its MessageAttributes
    # dict (by which the entry is found here) but not its MessageSystemAttributes.
    _batch_system_attributes.by_entry = {
        id(entry["MessageAttributes"]): entry["MessageSystemAttributes"]
        for entry in entries.values()
        if entry.get("MessageSystemAttributes")
    }
    try:
        return _send_batch(self, queue_name, entries)
    finally:
        _batch_system_attributes.by_entry = {}


def main() -> None:
    try:
        check_moto(version("moto"))
    except RuntimeError as exc:
        print(f"aiosqsworker: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    SQSBackend.receive_message = _receive_message  # type: ignore[method-assign]
    SQSBackend.change_message_visibility = _change_message_visibility  # type: ignore[method-assign]
    Queue.delete_message = _delete_message  # type: ignore[method-assign,assignment]
    SQSBackend.send_message = _send_message  # type: ignore[method-assign]
    SQSBackend.send_message_batch = _send_message_batch  # type: ignore[method-assign]
    server.main()


if __name__ == "__main__":
    main()
