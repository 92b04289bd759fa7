"""Bad input gets a clear error and loses nothing.

A handler the framework cannot call, a setting out of range, a queue that does not exist,
missing credentials or region: each fails early with the framework's own error, naming what
is wrong and how to fix it. (A body that does not decode, and a `Retry` without end, are
failures of one message: their scenarios are in `test_page_failures_and_retries.py`.)
"""

from __future__ import annotations

import json
import math
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from aiosqsworker import (
    AioSQSWorkerError,
    App,
    ConfigurationError,
    ConsumerConfig,
    CredentialsError,
    HandlerSignatureError,
    Message,
    Producer,
    QueueNotFoundError,
    Reject,
    WorkerState,
    consumer,
)
from aiosqsworker._consumer.deadletter import failure_record
from aiosqsworker._registry import ConsumerSpec, default_registry
from aiosqsworker.testing import FaultProxy, LocalSQSServer, make_message

from .kit import REGION, SQSKit, eventually

#: Nothing listens here: a request sent to it fails at once.
DEAD_ENDPOINT = "http://127.0.0.1:9"


def error_text(error: BaseException) -> str:
    """What a user sees: the error and everything Python prints with it."""
    return "".join(traceback.format_exception(error))


E = TypeVar("E", bound=BaseException)


async def start_up_error(app: App, queue: str, kind: type[E]) -> E:
    """What `async with app:` raises at start, with one consumer of `queue` registered."""

    @app.consumer(queue, wait_time=1)
    async def handle(message: Message) -> None:
        pass

    with anyio.fail_after(30), pytest.raises(kind) as info:
        async with app:
            pass
    return info.value


# Handlers the framework cannot call.


def test_a_def_handler_asked_to_run_on_the_loop_is_refused_at_decoration() -> None:
    registered = len(default_registry)

    def handle_order(message: Message) -> None:
        pass

    with pytest.raises(HandlerSignatureError) as info:
        consumer("orders", run_in="loop")(handle_order)
    text = str(info.value)
    assert "handle_order" in text
    assert "plain def" in text
    assert "async def handle_order" in text
    assert isinstance(info.value, TypeError)
    assert len(default_registry) == registered, "a refused handler was registered"


def test_a_lambda_is_refused_for_a_process_at_decoration() -> None:
    registered = len(default_registry)
    with pytest.raises(HandlerSignatureError) as info:
        consumer("orders", run_in="process")(lambda message: None)
    text = str(info.value)
    assert "<lambda>" in text
    assert "top level of a module" in text
    assert len(default_registry) == registered


def test_a_handler_with_two_required_parameters_is_refused() -> None:
    async def handle_pair(message: Message, other: int) -> None:
        pass

    with pytest.raises(HandlerSignatureError) as info:
        consumer("orders")(handle_pair)
    text = str(info.value)
    assert "handle_pair" in text
    assert "other" in text
    assert "one positional parameter" in text


def test_a_handler_with_a_required_keyword_only_parameter_is_refused() -> None:
    async def handle_flagged(message: Message, *, flag: bool) -> None:
        pass

    with pytest.raises(HandlerSignatureError) as info:
        consumer("orders")(handle_flagged)
    text = str(info.value)
    assert "handle_flagged" in text
    assert "flag" in text
    assert "give every other parameter a default" in text


def test_a_handler_without_parameters_is_refused() -> None:
    async def handle_nothing() -> None:
        pass

    with pytest.raises(HandlerSignatureError, match="handle_nothing"):
        consumer("orders")(handle_nothing)


def test_a_batch_handler_is_checked_for_a_list_parameter() -> None:
    async def handle_many() -> None:
        pass

    with pytest.raises(HandlerSignatureError, match=r"handle_many.*messages: list\[Message\]"):
        consumer("orders", batch=True)(handle_many)


def test_user_facing_text_names_the_public_classes() -> None:
    """Catches text built from `__module__` (``aiosqsworker._message.Message`` in a signature
    error, ``aiosqsworker._errors.Reject`` in a failure record): users import neither."""

    async def handle_pair(message, other):  # type: ignore[no-untyped-def]
        pass

    # As written in a module without `from __future__ import annotations`.
    handle_pair.__annotations__ = {"message": Message, "other": int, "return": None}
    with pytest.raises(HandlerSignatureError) as info:
        consumer("orders")(handle_pair)
    assert "handle_pair(message: aiosqsworker.Message, other: int)" in str(info.value)
    assert "aiosqsworker._" not in str(info.value)

    async def handle_set(messages: set[Message]) -> None:
        pass

    handle_set.__annotations__ = {"messages": set[Message], "return": None}
    with pytest.raises(HandlerSignatureError, match=r"into set\[aiosqsworker\.Message\]:"):
        consumer("orders")(handle_set)
    record = failure_record(make_message("x"), Reject("no"), consumer="c", reason="no")
    assert record["exception"] == "aiosqsworker.Reject"
    assert (
        failure_record(make_message("x"), KeyError("k"), consumer="c", reason="r")["exception"]
        == "builtins.KeyError"
    )


def test_async_callable_objects_and_defaulted_extras_are_accepted() -> None:
    class Handler:
        async def __call__(self, message: Message) -> None:
            pass

    async def handle_with_extras(message: Message, retries: int = 3, *, log: bool = False) -> None:
        pass

    async def handle_typed(order: dict[str, Any], message: Message) -> None:
        pass

    app = App(region=REGION)
    instance = Handler()
    assert app.consumer("a", name="object")(instance) is instance
    assert app.consumer("b")(handle_with_extras) is handle_with_extras
    assert app.consumer("c")(handle_typed) is handle_typed
    assert [spec.name for spec in app.consumers] == ["object", "handle_with_extras", "handle_typed"]


# Settings out of range.


@pytest.mark.parametrize(
    ("settings", "named", "allowed"),
    [
        ({"concurrency": 0}, "concurrency=0", "from 1 to 10000"),
        ({"concurrency": 10_001}, "concurrency=10001", "from 1 to 10000"),
        ({"prefetch": -1}, "prefetch=-1", "from 0 to 10000"),
        ({"visibility_timeout": 43_201}, "visibility_timeout=43201", "from 1 to 43200"),
        ({"visibility_timeout": 0}, "visibility_timeout=0", "from 1 to 43200"),
        ({"wait_time": 21}, "wait_time=21", "from 1 to 20"),
        ({"wait_time": 0}, "wait_time=0", "from 1 to 20"),
        ({"max_messages": 11}, "max_messages=11", "from 1 to 10"),
        ({"retry_base_delay": -1}, "retry_base_delay=-1", "from 0 to 43200"),
        ({"retry_max_delay": -0.5}, "retry_max_delay=-0.5", "from 0 to 43200"),
        ({"retry_max_delay": math.nan}, "retry_max_delay=nan", "from 0 to 43200"),
        (
            {"retry_base_delay": 10, "retry_max_delay": 5},
            "retry_max_delay=5",
            "at least retry_base_delay (10)",
        ),
        ({"ack_linger": 11}, "ack_linger=11", "from 0 to 10"),
        ({"timeout": 0}, "timeout=0", "from 0.001 to 43200"),
        ({"batch_size": 0}, "batch_size=0", "from 1 to 1000"),
        ({"batch_window": 21}, "batch_window=21", "from 0 to 20"),
        ({"concurrency": True}, "concurrency=True", "whole number from 1 to 10000"),
        ({"max_messages": False}, "max_messages=False", "whole number from 1 to 10"),
        ({"ack_linger": True}, "ack_linger=True", "number of seconds from 0 to 10"),
        ({"concurrency": 2.0}, "concurrency=2.0", "whole number from 1 to 10000"),
        ({"wait_time": "20"}, "wait_time='20'", "whole number from 1 to 20"),
        ({"batch": "yes"}, "batch='yes'", "True or False"),
        ({"envelope": "sqs"}, "envelope='sqs'", "'sns', 'eventbridge', 's3' or None"),
        ({"dead_letter_queue": ""}, "dead_letter_queue=''", "the queue's name or URL"),
        ({"dead_letter_queue": 5}, "dead_letter_queue=5", "the queue's name or URL"),
        ({"name": 5}, "name=5", "a label"),
        ({"middleware": 5}, "middleware=5", "a list of async functions"),
        ({"middleware": [5]}, "middleware 5 is not callable", "async function"),
        (
            {"on_decode_error": "dead_letter"},
            "on_decode_error='dead_letter' is invalid (did you mean 'dead-letter'?)",
            "one of 'dead-letter', 'retry'",
        ),
        (
            {"unknown_fields": "ignored"},
            "unknown_fields='ignored' is invalid (did you mean 'ignore'?)",
            "one of 'refuse', 'ignore'",
        ),
    ],
)
def test_an_invalid_setting_names_itself_and_its_range(
    settings: dict[str, Any], named: str, allowed: str
) -> None:
    registered = len(default_registry)
    with pytest.raises(ConfigurationError) as info:
        consumer("orders", **settings)
    text = str(info.value)
    assert named in text
    assert allowed in text
    assert isinstance(info.value, ValueError)
    assert len(default_registry) == registered


def test_an_unknown_setting_is_named_with_the_known_ones() -> None:
    with pytest.raises(ConfigurationError) as info:
        consumer("orders", concurency=5)  # type: ignore[call-arg]
    text = str(info.value)
    assert "unknown consumer setting 'concurency' (did you mean 'concurrency'?)" in text
    assert "visibility_timeout" in text, "the known settings are listed"
    with pytest.raises(ConfigurationError, match="unknown consumer setting 'colour';"):
        consumer("orders", colour="blue")  # type: ignore[call-arg]


@pytest.mark.parametrize("queue", ["", "   "])
def test_an_empty_queue_name_is_refused(queue: str) -> None:
    with pytest.raises(ConfigurationError, match=r"queue=.* is invalid: give the queue's name"):
        consumer(queue)
    with pytest.raises(ConfigurationError, match=r"queue=.* is invalid"):
        ConsumerConfig(queue=queue)


@pytest.mark.parametrize(
    ("settings", "named", "allowed"),
    [
        ({"shutdown_timeout": -1}, "shutdown_timeout=-1", "from 0 to 86400"),
        ({"shutdown_timeout": True}, "shutdown_timeout=True", "from 0 to 86400"),
        ({"endpoint_url": "localhost:4566"}, "endpoint_url='localhost:4566'", "http://"),
        ({"endpoint_url": "127.0.0.1"}, "endpoint_url='127.0.0.1'", "https://"),
        ({"client": "boto3"}, "client='boto3'", "'fast' or 'botocore'"),
        ({"endpoint_url": 4566}, "endpoint_url=4566", "http://"),
        ({"region": 5}, "region=5", "an AWS region"),
        ({"profile": ["dev"]}, "profile=['dev']", "a profile"),
        ({"middleware": print}, "middleware=<built-in function print>", "a list"),
        ({"middleware": ["log"]}, "middleware 'log' is not callable", "async function"),
        ({"payload_bucket": "My_Bucket"}, "payload_bucket='My_Bucket'", "an S3 bucket name"),
        ({"payload_bucket": "ab"}, "payload_bucket='ab'", "3 to 63 lowercase"),
        (
            {"payload_offload": "alway"},
            "payload_offload='alway' is invalid (did you mean 'always'?)",
            "one of 'over-limit', 'always'",
        ),
        ({"delete_payloads": "yes"}, "delete_payloads='yes'", "True or False"),
        ({"s3_endpoint_url": "localhost:4566"}, "s3_endpoint_url='localhost:4566'", "http://"),
    ],
)
def test_an_invalid_app_setting_names_itself_and_its_range(
    settings: dict[str, Any], named: str, allowed: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        App(**settings)
    assert named in str(info.value)
    assert allowed in str(info.value)


def test_valid_settings_are_kept() -> None:
    async def layer(message: Any, call_next: Callable[[Any], Any]) -> object:
        return await call_next(message)

    config = ConsumerConfig(queue="orders", name="", middleware=[layer])
    assert config.middleware == (layer,)
    # An empty region or profile means "not given" (`--region "$REGION"` with it unset).
    app = App(region="", profile="", middleware=[layer, layer])
    assert app.config.middleware == (layer, layer)


def test_two_consumers_with_the_same_name_are_refused() -> None:
    app = App(region=REGION)

    @app.consumer("orders")
    async def handle(message: Message) -> None:
        pass

    async def other(message: Message) -> None:
        pass

    other.__name__ = "handle"
    with pytest.raises(ConfigurationError, match=r"two consumers are named 'handle'.*name="):
        app.consumer("invoices")(other)
    app.consumer("a", name="billing")(other)
    with pytest.raises(ConfigurationError, match="two consumers are named 'billing'"):
        app.consumer("b", name="billing")(handle)
    assert [spec.name for spec in app.consumers] == ["handle", "billing"]

    spec = ConsumerSpec.build(handle, ConsumerConfig(queue="orders"))
    with pytest.raises(ConfigurationError, match="two consumers are named 'handle'"):
        App(region=REGION, consumers=[spec, spec])


async def test_an_app_without_consumers_says_how_to_add_one() -> None:
    with pytest.raises(AioSQSWorkerError, match=r"no consumers to run.*@consumer"):
        await App(region=REGION).run()


# The environment: queue, region, endpoint, credentials.


async def test_an_unknown_queue_names_the_queue_region_and_endpoint(
    make_app: Callable[..., App], sqs_server: LocalSQSServer, sqs: SQSKit
) -> None:
    missing = sqs.unique_name("missing")
    app = make_app()

    error = await start_up_error(app, missing, QueueNotFoundError)
    text = str(error)
    assert repr(missing) in text
    assert f"region {REGION}" in text
    assert sqs_server.endpoint_url.rstrip("/") in text
    assert app.state is WorkerState.STOPPED

    with anyio.fail_after(30), pytest.raises(QueueNotFoundError, match=re.escape(missing)):
        await app.run()


async def test_an_unknown_queue_url_is_named_too(
    make_app: Callable[..., App], sqs_server: LocalSQSServer, sqs: SQSKit
) -> None:
    queue = await sqs.create_queue()
    missing_url = queue.url + "-missing"
    app = make_app()

    @app.consumer(missing_url, wait_time=1)
    async def handle(message: Message) -> None:
        pass

    with anyio.fail_after(30), pytest.raises(QueueNotFoundError) as info:
        await app.run()
    text = str(info.value)
    assert missing_url in text
    assert f"region {REGION}" in text


async def test_missing_credentials_say_so(
    make_app: Callable[..., App], sqs: SQSKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = await sqs.create_queue()
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    app = make_app()

    error = await start_up_error(app, queue.name, CredentialsError)
    text = str(error)
    assert "no AWS credentials found" in text
    assert "AWS_ACCESS_KEY_ID" in text
    assert f"region {REGION}" in text
    assert "botocore" not in error_text(error)


async def test_partial_credentials_say_which_one_is_missing(
    make_app: Callable[..., App], sqs: SQSKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = await sqs.create_queue()
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    app = make_app()

    @app.consumer(queue.name, wait_time=1)
    async def handle(message: Message) -> None:
        pass

    with anyio.fail_after(30), pytest.raises(CredentialsError) as info:
        await app.run()
    assert "AWS_SECRET_ACCESS_KEY" in str(info.value)
    assert "botocore" not in error_text(info.value)


async def test_a_failing_credential_process_says_so(
    make_app: Callable[..., App],
    sqs: SQSKit,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    queue = await sqs.create_queue()
    config = tmp_path / "config"
    config.write_text(
        "[default]\n"
        f"credential_process = {sys.executable} -c \"raise SystemExit('no token today')\"\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    app = make_app()

    @app.consumer(queue.name, wait_time=1)
    async def handle(message: Message) -> None:
        pass

    with anyio.fail_after(30), pytest.raises(CredentialsError) as info:
        await app.run()
    assert "no token today" in str(info.value)
    assert "botocore" not in error_text(info.value)


async def test_no_region_at_all_says_how_to_set_one(
    sqs_server: LocalSQSServer, sqs: SQSKit
) -> None:
    queue = await sqs.create_queue()
    app = App(endpoint_url=sqs_server.endpoint_url)

    error = await start_up_error(app, queue.name, ConfigurationError)
    text = str(error)
    assert "no AWS region configured" in text
    assert "AWS_REGION" in text
    assert "region=" in text


async def consume_three(app: App, queue: str, sqs: SQSKit) -> list[Message]:
    """Run `app` with one consumer of `queue` until three messages sent to it are deleted."""
    received: list[Message] = []

    @app.consumer(queue, wait_time=1)
    async def handle(message: Message) -> None:
        received.append(message)

    if queue.startswith("http"):
        url = queue
    else:
        url = (await sqs.client.get_queue_url(QueueName=queue))["QueueUrl"]
    await sqs.client.send_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(n), "MessageBody": json.dumps({"n": n})} for n in range(3)],
    )
    with anyio.fail_after(30):
        async with app:
            await eventually(lambda: app.statistics()["handle"].deleted == 3, within=20)
    assert sorted(message.json()["n"] for message in received) == [0, 1, 2]
    return received


@pytest.mark.parametrize(
    "environment",
    [
        {"AWS_REGION": REGION, "AWS_ENDPOINT_URL_SQS": "{server}"},
        {"AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": "{server}"},
        # The more specific wins: AWS_REGION over AWS_DEFAULT_REGION, and the SQS endpoint
        # over the general one. (The test server keeps the queues of each region apart.)
        {
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": "eu-west-3",
            "AWS_ENDPOINT_URL_SQS": "{server}",
            "AWS_ENDPOINT_URL": DEAD_ENDPOINT,
        },
    ],
    ids=["sqs-endpoint", "general-endpoint", "precedence"],
)
async def test_region_and_endpoint_come_from_the_environment(
    sqs_server: LocalSQSServer,
    sqs: SQSKit,
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
) -> None:
    queue = await sqs.create_queue()
    for name, value in environment.items():
        monkeypatch.setenv(name, value.format(server=sqs_server.endpoint_url))
    await consume_three(App(shutdown_timeout=10), queue.name, sqs)


async def test_explicit_region_and_endpoint_win_over_the_environment(
    make_app: Callable[..., App], sqs: SQSKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = await sqs.create_queue()
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", DEAD_ENDPOINT)
    monkeypatch.setenv("AWS_ENDPOINT_URL", DEAD_ENDPOINT)
    await consume_three(make_app(), queue.name, sqs)


async def test_the_environment_endpoint_is_named_when_the_queue_is_missing(
    sqs_server: LocalSQSServer, sqs: SQSKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", sqs_server.endpoint_url)
    missing = sqs.unique_name("missing")
    app = App(shutdown_timeout=10)

    @app.consumer(missing, wait_time=1)
    async def handle(message: Message) -> None:
        pass

    with anyio.fail_after(30), pytest.raises(QueueNotFoundError) as info:
        await app.run()
    text = str(info.value)
    assert "region eu-west-3" in text
    assert sqs_server.endpoint_url.rstrip("/") in text


async def test_a_queue_given_by_url_works(make_app: Callable[..., App], sqs: SQSKit) -> None:
    queue = await sqs.create_queue()
    received = await consume_three(make_app(), queue.url, sqs)
    assert {message.queue for message in received} == {queue.url}
    assert await sqs.counts(queue) == (0, 0)


# Mistakes a new user makes: each one clear error that says the fix.


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL"])
@pytest.mark.parametrize("value", ["127.0.0.1:4566", "localhost:4566"])
async def test_an_endpoint_variable_without_a_scheme_is_named_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """Catches leaving the environment's endpoint to botocore unchecked: it raises a bare
    ``ValueError: Invalid endpoint`` from deep inside client creation (64 lines of traceback
    on the command line), while the same value given as ``endpoint_url=`` is refused cleanly.
    """
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv(variable, value)
    app = App()

    error = await start_up_error(app, "orders", ConfigurationError)
    text = str(error)
    assert f"{variable}={value!r} is invalid: it must start with http:// or https://" in text
    assert f"{variable}=http://{value}" in text  # the fix, spelled out
    assert "botocore" not in error_text(error)


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (
            lambda: App(regoin="eu-west-1"),  # type: ignore[call-arg]
            "unknown App setting 'regoin' (did you mean 'region'?)",
        ),
        (
            lambda: App(shutdown_timout=5),  # type: ignore[call-arg]
            "(did you mean 'shutdown_timeout'?)",
        ),
        (
            lambda: App(colour="blue"),  # type: ignore[call-arg]
            "unknown App setting 'colour'; the settings of an App are",
        ),
        (
            lambda: App("eu-west-1"),  # type: ignore[call-arg]
            "App() takes its settings by name, as in App(region=...)",
        ),
        (
            lambda: Producer(endpoint="http://x"),  # type: ignore[call-arg]
            "unknown Producer setting 'endpoint' (did you mean 'endpoint_url'?)",
        ),
        (lambda: Producer(linger=-1), "linger=-1 is invalid: it must be a number of seconds"),
    ],
    ids=["typo", "typo-2", "unknown", "positional", "producer-typo", "producer-range"],
)
def test_app_and_producer_settings_get_the_errors_of_consumer_settings(
    make: Callable[[], object], error: str
) -> None:
    """Catches leaving `App(...)` and `Producer(...)` to Python's own argument binding: a bare
    ``TypeError: unexpected keyword argument 'regoin'``, with no hint, where `@consumer` says
    "did you mean"."""
    with pytest.raises(ConfigurationError) as info:
        make()
    assert error in str(info.value)


async def test_a_fifo_send_without_group_id_says_what_to_pass_before_any_call(
    sqs: SQSKit, sqs_server: LocalSQSServer
) -> None:
    """Catches sending first and letting SQS answer: a raw ``MissingParameter`` error from
    SendMessageBatch, which does not say that the option is `group_id=`."""
    queue = await sqs.create_fifo_queue(attributes={"ContentBasedDeduplication": "true"})
    async with (
        FaultProxy(sqs_server.endpoint_url) as proxy,
        Producer(region=REGION, endpoint_url=proxy.url) as producer,
    ):
        with pytest.raises(ConfigurationError) as info:
            await producer.send(queue.name, {"order": 1})
        assert f"{queue.name} is a FIFO queue: pass group_id=..." in str(info.value)
        with pytest.raises(ConfigurationError, match="no per-message delay"):
            await producer.send(queue.url, "late", group_id="g", delay=5)
        assert proxy.requests["SendMessageBatch"] == 0
        await producer.send(queue.name, {"order": 1}, group_id="customer-7")
        assert proxy.requests["SendMessageBatch"] == 1
    assert await sqs.counts(queue) == (1, 0)
