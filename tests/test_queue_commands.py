"""`queue create|purge|delete`: making and removing queues from the command line."""

from __future__ import annotations

import json

import anyio
import pytest

from aiosqsworker._cli import tools as admin
from aiosqsworker._cli.main import main as cli_main
from aiosqsworker._errors import ConfigurationError
from aiosqsworker.testing import LocalSQSServer

from .kit import REGION, SQSKit

# --- pure helpers ------------------------------------------------------------------------


def test_a_plan_names_the_queues_and_their_attributes() -> None:
    plan = admin.plan_queues("orders", visibility_timeout=60, dead_letter_queue="orders-dlq")
    assert plan.attributes == {"VisibilityTimeout": "60"}
    assert (plan.dead_letter_queue, plan.dead_letter_attributes) == ("orders-dlq", {})
    assert plan.max_receive_count == 5  # the default of --dead-letter-queue alone
    fifo = admin.plan_queues(
        "jobs.fifo", content_based_deduplication=True, dead_letter_queue="jobs-dlq.fifo"
    )
    assert fifo.fifo  # the name says so, --fifo or not
    assert fifo.attributes == {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    assert fifo.dead_letter_attributes == {"FifoQueue": "true"}
    assert admin.plan_queues("plain").max_receive_count is None


@pytest.mark.parametrize(
    ("name", "options", "why"),
    [
        ("bad/name", {}, "only letters, digits"),
        ("x" * 81, {}, "at most 80 characters"),
        ("orders", {"fifo": True}, "use orders.fifo"),
        ("orders", {"content_based_deduplication": True}, "for FIFO queues"),
        ("orders", {"max_receive_count": 3}, "needs --dead-letter-queue"),
        ("orders", {"dead_letter_queue": "orders"}, "its own dead-letter queue"),
        ("orders", {"dead_letter_queue": "dlq.fifo"}, "must be a standard queue"),
        ("orders.fifo", {"dead_letter_queue": "dlq"}, "must be a FIFO queue"),
        ("orders", {"dead_letter_queue": "no spaces"}, "--dead-letter-queue 'no spaces'"),
    ],
)
def test_a_plan_sqs_would_refuse_is_refused_first(
    name: str, options: dict[str, object], why: str
) -> None:
    with pytest.raises(ConfigurationError, match=why):
        admin.plan_queues(name, **options)  # type: ignore[arg-type]


def test_conflicts_compare_what_was_asked_for_in_words() -> None:
    policy = json.dumps({"deadLetterTargetArn": "arn:aws:sqs:r:1:dlq", "maxReceiveCount": 2})
    existing = {"VisibilityTimeout": "30", "RedrivePolicy": policy}
    same_policy = json.dumps({"maxReceiveCount": "2", "deadLetterTargetArn": "arn:aws:sqs:r:1:dlq"})
    assert admin.attribute_conflicts({"RedrivePolicy": same_policy}, existing) == []
    assert admin.attribute_conflicts({"FifoQueue": "false"}, existing) == []
    assert admin.attribute_conflicts({"VisibilityTimeout": "60"}, existing) == [
        "VisibilityTimeout is 30, not 60"
    ]
    other = json.dumps({"deadLetterTargetArn": "arn:aws:sqs:r:1:dlq", "maxReceiveCount": 5})
    assert admin.attribute_conflicts({"RedrivePolicy": other}, {}) == [
        "RedrivePolicy is unset, not to dlq after 5 receives"
    ]


def test_local_endpoints_are_this_machines_own() -> None:
    assert admin.is_local_endpoint("http://127.0.0.1:4566")
    assert admin.is_local_endpoint("http://localhost:9324/")
    assert admin.is_local_endpoint("http://[::1]:4566")
    assert not admin.is_local_endpoint("https://sqs.eu-west-1.amazonaws.com")
    assert not admin.is_local_endpoint("http://10.0.0.5:4566")


# --- against the server ------------------------------------------------------------------


async def _cli(server: LocalSQSServer, *argv: str) -> int:
    """The CLI in this process (its own event loop, in a thread)."""
    args = [*argv, "--endpoint-url", server.endpoint_url, "--region", REGION]
    return await anyio.to_thread.run_sync(cli_main, args)


async def _attributes(sqs: SQSKit, name: str) -> dict[str, str]:
    url = (await sqs.client.get_queue_url(QueueName=name))["QueueUrl"]
    response = await sqs.client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    return dict(response["Attributes"])


async def test_create_makes_the_dead_letter_queue_and_is_idempotent(
    sqs: SQSKit, sqs_server: LocalSQSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second identical create exits 0 and changes nothing; other settings are refused.

    Catches: a create that only calls CreateQueue (SQS keeps an existing queue's attributes,
    so the new settings would be silently ignored), or one that fails on an existing DLQ.
    """
    name = sqs.unique_name("orders")
    argv = ["queue", "create", name, "--dead-letter-queue", f"{name}-dlq",
            "--max-receive-count", "2", "--visibility-timeout", "45"]  # fmt: skip
    assert await _cli(sqs_server, *argv) == 0
    out = capsys.readouterr().out
    assert f"created {name}-dlq " in out
    assert f"created {name} " in out
    attributes = await _attributes(sqs, name)
    assert attributes["VisibilityTimeout"] == "45"
    policy = json.loads(attributes["RedrivePolicy"])
    assert policy["deadLetterTargetArn"].endswith(f":{name}-dlq")
    assert int(policy["maxReceiveCount"]) == 2

    assert await _cli(sqs_server, *argv) == 0
    assert out.replace("created", "exists:") == capsys.readouterr().out

    assert await _cli(sqs_server, *argv[:-2], "--visibility-timeout", "10") == 1
    error = capsys.readouterr().err
    assert "exists with other settings (VisibilityTimeout is 45, not 10)" in error
    assert f"queue delete {name}" in error
    assert (await _attributes(sqs, name))["VisibilityTimeout"] == "45"


async def test_create_a_fifo_queue_that_send_can_use_at_once(
    sqs: SQSKit, sqs_server: LocalSQSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    name = sqs.unique_name("jobs") + ".fifo"
    assert await _cli(sqs_server, "queue", "create", name, "--content-based-deduplication") == 0
    attributes = await _attributes(sqs, name)
    assert (attributes["FifoQueue"], attributes["ContentBasedDeduplication"]) == ("true", "true")
    assert await _cli(sqs_server, "send", name, "a", "b", "--group-id", "g") == 0
    assert f"sent 2 messages to {name}" in capsys.readouterr().out


async def test_purge_and_delete_say_what_they_removed(
    sqs: SQSKit, sqs_server: LocalSQSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = await sqs.create_queue(max_receive_count=3)
    dlq = await sqs.dlq_of(queue)
    await sqs.send(queue, ["a", "b", "c"])
    assert await _cli(sqs_server, "queue", "purge", queue.name) == 0
    assert capsys.readouterr().out == f"purged {queue.name}: about 3 messages deleted\n"
    assert await sqs.counts(queue) == (0, 0)

    assert await _cli(sqs_server, "queue", "delete", queue.name) == 0
    out = capsys.readouterr().out
    assert f"deleted {queue.name}" in out
    assert f"its dead-letter queue {dlq.name} is kept" in out
    assert await sqs.counts(dlq) == (0, 0)  # still there
    assert await _cli(sqs_server, "queue", "delete", queue.name) == 1
    assert f"queue {queue.name!r} does not exist" in capsys.readouterr().err
    assert await _cli(sqs_server, "queue", "purge", "no-such-queue-here") == 1
    assert "'no-such-queue-here' does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("action", ["purge", "delete"])
def test_destroying_on_a_remote_endpoint_needs_yes(
    action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --yes nothing is sent: the refusal comes before any request.

    Catches: a guard that looks at the queue's URL only after asking SQS for it, or one
    that trusts any endpoint given with --endpoint-url.
    """
    argv = ["queue", action, "orders", "--region", "eu-west-1",
            "--endpoint-url", "https://sqs.eu-west-1.amazonaws.com"]  # fmt: skip
    assert cli_main(argv) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"aiosqsworker: error: queue {action} orders would delete")
    assert "https://sqs.eu-west-1.amazonaws.com" in error
    assert "add --yes to confirm" in error


def test_queue_options_out_of_range_are_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    for option, value, why in (
        ("--visibility-timeout", "43201", "0 to 43200"),
        ("--max-receive-count", "0", "1 to 1000"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            cli_main(["queue", "create", "orders", "--dead-letter-queue", "d", option, value])
        assert exit_info.value.code == 2
        assert why in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["queue", "create", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert "usage: python -m aiosqsworker queue create " in help_text
    assert "examples:" in help_text
    assert "--endpoint-url" in help_text
