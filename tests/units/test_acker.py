"""The acker's decisions (`_consumer/acker.py`): sorting a batch answer, the pause between attempts.

Pure decisions and small parts, called directly: no server here.
"""

from __future__ import annotations

from aiosqsworker._consumer.acker import calls_for, retry_pause, split_batch_result
from aiosqsworker._sqs.base import BatchResult

from .test_sqs_results import DELETE_RESPONSE


def test_split_batch_result_sorts_failed_entries() -> None:
    entries = [f"handle-{i}" for i in range(9)]
    done, retry, give_up = split_batch_result(entries, BatchResult.from_response(DELETE_RESPONSE))
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


def test_split_batch_result_of_a_clean_response() -> None:
    result = BatchResult.from_response({"Successful": [{"Id": "0"}, {"Id": "1"}]})
    assert split_batch_result(["a", "b"], result) == (["a", "b"], [], [])


def test_retry_pause_of_batch_calls() -> None:
    for attempt in range(6):
        pause = retry_pause(attempt)
        assert min(3.0, 0.1 * 2**attempt) * 0.5 <= pause <= min(3.0, 0.1 * 2**attempt)
    assert 1.5 <= retry_pause(10_000) <= 3.0


def test_an_entry_the_response_does_not_mention_is_retried_not_taken_as_done() -> None:
    result = BatchResult.from_response({"Successful": [{"Id": "0"}], "Failed": []})
    done, retry, give_up = split_batch_result(["a", "b"], result)
    assert done == ["a"]
    assert [entry for entry, _ in retry] == ["b"]
    assert give_up == []


def test_batch_calls_in_flight_grow_with_the_polling_at_half_its_width() -> None:
    assert [calls_for(polls) for polls in (1, 16, 32, 33, 101, 128)] == [16, 16, 16, 17, 51, 64]
