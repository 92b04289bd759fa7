"""Reading a queue's RedrivePolicy (`_consumer/queue.py`).

Pure decisions and small parts, called directly: no server here.
"""

from __future__ import annotations

import pytest

from aiosqsworker._sqs.redrive import parse_redrive_policy


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ('{"deadLetterTargetArn": "arn:aws:sqs:us-east-1:1:dlq", "maxReceiveCount": "5"}', 5),
        ('{"deadLetterTargetArn": "arn:aws:sqs:us-east-1:1:dlq", "maxReceiveCount": 3}', 3),
    ],
)
def test_a_redrive_policy_gives_the_target_and_the_receive_count(
    policy: str, expected: int
) -> None:
    assert parse_redrive_policy(policy) == ("arn:aws:sqs:us-east-1:1:dlq", expected)


@pytest.mark.parametrize(
    "policy",
    [
        None,
        "",
        "not json",
        "[]",
        '{"maxReceiveCount": 3}',
        '{"deadLetterTargetArn": "arn:aws:sqs:us-east-1:1:dlq"}',
        '{"deadLetterTargetArn": "arn:aws:sqs:us-east-1:1:dlq", "maxReceiveCount": "many"}',
    ],
)
def test_a_missing_or_broken_redrive_policy_means_none(policy: str | None) -> None:
    assert parse_redrive_policy(policy) is None
