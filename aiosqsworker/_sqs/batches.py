"""One reading of a batch call's answer, for every caller that sends batches.

DeleteMessageBatch, ChangeMessageVisibilityBatch and SendMessageBatch answer per entry, under
``Successful`` or ``Failed``. `read_answer` sorts the entries sent (their ids are their
indexes, ``"0"`` to ``"9"``) into:

- **done**: named under ``Successful`` and not under ``Failed``;
- **retry**: worth sending again: a ``Failed`` entry that is not the sender's fault, or is
  throttling (`BatchEntryFailure.retryable`), and whose receipt handle is still good; and
  every entry the answer leaves out;
- **give up**: failed for good: the sender's own mistake, or a receipt handle that is no
  longer ours (`BatchEntryFailure.receipt_invalid` tells which).

An entry the answer names in neither list (a response cut short that still parsed, a server
that skips entries) is *unknown*: SQS may or may not have done it. It is never taken as
done: it goes with the retries, carrying a `left_out` failure (code `LEFT_OUT`), so that the
acker deletes it again, the lease keeper keeps its expiry and extends it again, and a send
sends it again rather than reporting a MessageId it never had. Sending again is safe for
deletes and visibility changes; for a send it may make a duplicate, which at-least-once
delivery allows (a FIFO queue's deduplication removes it within five minutes).

An id the answer names that was never sent marks nothing done; it is kept in `strangers`
and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .base import BatchEntryFailure, BatchResult, SendBatchResult

__all__ = ["LEFT_OUT", "BatchAnswer", "left_out", "read_answer"]

logger = logging.getLogger("aiosqsworker.sqs")

T = TypeVar("T")

#: The code of the failure an entry left out of its answer carries.
LEFT_OUT = "NoAnswer"


def left_out(entry_id: str) -> BatchEntryFailure:
    """The failure standing for an entry the answer did not mention: unknown, retried."""
    return BatchEntryFailure(
        id=entry_id, code=LEFT_OUT, message="left out of SQS's answer", sender_fault=False
    )


@dataclass(slots=True)
class BatchAnswer(Generic[T]):
    """A batch's entries sorted by what SQS answered of each (see the module), each list in
    the batch's order."""

    done: list[T] = field(default_factory=list)
    retry: list[tuple[T, BatchEntryFailure]] = field(default_factory=list)
    give_up: list[tuple[T, BatchEntryFailure]] = field(default_factory=list)
    #: Ids the answer named that no entry sent had.
    strangers: tuple[str, ...] = ()

    @property
    def unknown(self) -> list[T]:
        """The entries the answer left out (among the retries)."""
        return [entry for entry, failure in self.retry if failure.code == LEFT_OUT]


_IDS = [frozenset(str(i) for i in range(n)) for n in range(11)]  # a batch holds ten at most


def _ids_of(entries: int) -> frozenset[str]:
    """The ids of a batch of `entries` (their indexes)."""
    return _IDS[entries] if entries < len(_IDS) else frozenset(str(i) for i in range(entries))


def read_answer(entries: Sequence[T], result: BatchResult | SendBatchResult) -> BatchAnswer[T]:
    """Sort `entries`, sent with their indexes as ids, by `result` (see the module).

    An id named under both lists counts as failed: nothing is taken as done on mixed
    evidence.
    """
    successful: Collection[str] = (
        result.sent if isinstance(result, SendBatchResult) else result.successful
    )
    ids = _ids_of(len(entries))
    succeeded = set(successful)
    if not result.failed and succeeded == ids:  # the usual answer: every entry done
        return BatchAnswer(list(entries), [], [])
    failures = {failure.id: failure for failure in result.failed}
    done: list[T] = []
    retry: list[tuple[T, BatchEntryFailure]] = []
    give_up: list[tuple[T, BatchEntryFailure]] = []
    for i, entry in enumerate(entries):
        entry_id = str(i)
        failure = failures.get(entry_id)
        if failure is None and entry_id in succeeded:
            done.append(entry)
        elif failure is None:
            retry.append((entry, left_out(entry_id)))
        elif failure.retryable and not failure.receipt_invalid:
            retry.append((entry, failure))
        else:
            give_up.append((entry, failure))
    strangers = tuple(sorted((succeeded | failures.keys()) - ids))
    if strangers:
        logger.warning(
            "SQS's answer to a batch of %d named entries never sent (%s): ignored",
            len(entries),
            ", ".join(strangers),
        )
    return BatchAnswer(done, retry, give_up, strangers)
