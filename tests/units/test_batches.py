"""The one reading of a batch answer (`_sqs/batches.py`): done, retry, give up, and entries
the answer leaves out, which are unknown and retried.

Pure decisions, called directly: no server here.
"""

from __future__ import annotations

import logging

import pytest

from aiosqsworker._sqs.base import BatchEntryFailure, BatchResult, SendBatchResult
from aiosqsworker._sqs.batches import LEFT_OUT, BatchAnswer, left_out, read_answer

from .test_sqs_results import DELETE_RESPONSE


def failed(entry_id: str, code: str, *, sender_fault: bool, message: str = "") -> dict[str, object]:
    """One entry of a response's ``Failed`` list, as SQS writes it."""
    return {"Id": entry_id, "SenderFault": sender_fault, "Code": code, "Message": message}


def test_successful_and_failed_entries_are_sorted_by_sender_fault_and_code() -> None:
    """A server's fault and throttling (even marked as the sender's fault) are retried; the
    sender's own mistake and a receipt handle no longer ours are given up, whoever SQS says
    is at fault.

    Naive change it catches: sorting on ``SenderFault`` alone (throttling given up, a stale
    receipt handle marked as a server fault sent again and again).
    """
    result = BatchResult.from_response(
        {
            "Successful": [{"Id": "0"}, {"Id": "5"}],
            "Failed": [
                failed("1", "InternalError", sender_fault=False),
                failed("2", "ThrottlingException", sender_fault=True),
                failed("3", "InvalidParameterValue", sender_fault=True, message="Must be >= 0"),
                failed("4", "ReceiptHandleIsInvalid", sender_fault=False),
            ],
        }
    )
    answer = read_answer(["a", "b", "c", "d", "e", "f"], result)
    assert answer.done == ["a", "f"]
    assert [(entry, failure.code) for entry, failure in answer.retry] == [
        ("b", "InternalError"),
        ("c", "ThrottlingException"),
    ]
    assert [(entry, failure.code) for entry, failure in answer.give_up] == [
        ("d", "InvalidParameterValue"),
        ("e", "ReceiptHandleIsInvalid"),
    ]
    assert [failure.receipt_invalid for _, failure in answer.give_up] == [False, True]
    assert answer.unknown == []
    assert answer.strangers == ()


def test_a_clean_answer_makes_every_entry_done_in_order() -> None:
    result = BatchResult.from_response({"Successful": [{"Id": "1"}, {"Id": "0"}]})
    answer = read_answer(["a", "b"], result)
    assert answer == BatchAnswer(done=["a", "b"])


def test_an_entry_the_answer_leaves_out_is_unknown_and_retried_never_done() -> None:
    """SQS's answer names entries 0 and 2 of three: entry 1 may or may not have been done.

    Naive change it catches: reading "not under Failed" as done (the lease keeper's old
    reading, which moved an expiry forward on no evidence), or dropping the entry as failed
    for good (a send reported lost that may have gone through, or never sent again).
    """
    result = BatchResult.from_response({"Successful": [{"Id": "0"}, {"Id": "2"}], "Failed": []})
    answer = read_answer(["a", "b", "c"], result)
    assert answer.done == ["a", "c"]
    assert answer.retry == [("b", left_out("1"))]
    assert answer.give_up == []
    assert answer.unknown == ["b"]
    assert answer.retry[0][1].code == LEFT_OUT
    assert answer.retry[0][1].retryable


def test_an_empty_answer_leaves_every_entry_unknown() -> None:
    """A response cut short that still parsed: nothing under either list."""
    answer = read_answer(["a", "b"], BatchResult.from_response({}))
    assert answer.done == []
    assert answer.unknown == ["a", "b"]


def test_ids_the_answer_names_that_were_never_sent_mark_nothing_done(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An answer naming three ids for a batch of three, one of them never sent: the entry it
    left out is still unknown, and the stranger is kept and logged.

    Naive change it catches: taking an answer with as many Successful ids as entries sent as
    "all done" (a count, not the ids), or trusting ids the batch never had.
    """
    result = BatchResult.from_response(
        {
            "Successful": [{"Id": "0"}, {"Id": "1"}, {"Id": "7"}],
            "Failed": [failed("x", "InternalError", sender_fault=False)],
        }
    )
    with caplog.at_level(logging.WARNING, logger="aiosqsworker.sqs"):
        answer = read_answer(["a", "b", "c"], result)
    assert answer.done == ["a", "b"]
    assert answer.unknown == ["c"]
    assert answer.give_up == []
    assert answer.strangers == ("7", "x")
    assert "never sent (7, x)" in caplog.text


def test_an_id_named_both_successful_and_failed_is_not_done() -> None:
    """Mixed evidence is no evidence of success: the failure decides."""
    result = BatchResult(
        successful=("0", "1"),
        failed=(BatchEntryFailure("1", "InternalError", "try again", sender_fault=False),),
    )
    answer = read_answer(["a", "b"], result)
    assert answer.done == ["a"]
    assert [entry for entry, _ in answer.retry] == ["b"]
    assert answer.unknown == []


def test_a_send_answer_is_read_the_same_way() -> None:
    """SendMessageBatch's answer carries each sent entry's MessageId: it is done; an entry
    it leaves out is unknown, and a refused one is given up."""
    result = SendBatchResult.from_response(
        {
            "Successful": [{"Id": "0", "MessageId": "m-0", "MD5OfMessageBody": "d"}],
            "Failed": [failed("2", "InvalidMessageContents", sender_fault=True)],
        }
    )
    answer = read_answer(["a", "b", "c"], result)
    assert answer.done == ["a"]
    assert answer.unknown == ["b"]
    assert [(entry, failure.code) for entry, failure in answer.give_up] == [
        ("c", "InvalidMessageContents")
    ]


# The acker's reading, moved here with it (their assertions unchanged).


def test_the_acker_sorts_failed_entries() -> None:
    entries = [f"handle-{i}" for i in range(9)]
    answer = read_answer(entries, BatchResult.from_response(DELETE_RESPONSE))
    done, retry, give_up = answer.done, answer.retry, answer.give_up
    assert done == ["handle-0", "handle-3"]
    # Server faults and throttling (either spelling, even marked as the sender's fault).
    assert [entry for entry, _ in retry] == ["handle-1", "handle-5", "handle-8"]
    # Handles no longer ours, and the sender's own mistakes: sending again cannot help.
    assert [entry for entry, _ in give_up] == ["handle-2", "handle-4", "handle-6", "handle-7"]
    assert [failure.code for _, failure in give_up] == [
        "ReceiptHandleIsInvalid",
        "InvalidParameterValue",
        "InvalidParameterValue",
        "AWS.SimpleQueueService.MessageNotInflight",
    ]


def test_the_acker_reads_a_clean_response() -> None:
    result = BatchResult.from_response({"Successful": [{"Id": "0"}, {"Id": "1"}]})
    answer = read_answer(["a", "b"], result)
    assert (answer.done, answer.retry, answer.give_up) == (["a", "b"], [], [])


def test_an_entry_the_response_does_not_mention_is_retried_not_taken_as_done() -> None:
    result = BatchResult.from_response({"Successful": [{"Id": "0"}], "Failed": []})
    answer = read_answer(["a", "b"], result)
    done, retry, give_up = answer.done, answer.retry, answer.give_up
    assert done == ["a"]
    assert [entry for entry, _ in retry] == ["b"]
    assert give_up == []
