"""Settings: frozen, keyword-only, validated when they are given.

`ConsumerConfig` (one consumer), `AppConfig` (every consumer of an app), `Breaker` and the
types of their choices, with their defaults. Each is checked in its ``__post_init__`` (or
``__init__``) by the checks of `checks.py`.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from .._errors import ConfigurationError
from .._sqs.base import SQSClient, missing_client_members
from .._sqs.credentials import DEFAULT_OUTAGE_LIMIT
from .._sqs.limits import MAX_BATCH, MAX_VISIBILITY, MAX_WAIT_TIME
from ..idempotency import IdempotencyKey, IdempotencyStore
from .checks import (
    _BUCKET_NAME,
    MAX_CONCURRENCY,
    MAX_PROCESSES,
    MAX_SHUTDOWN_TIMEOUT,
    _check_bool,
    _check_choice,
    _check_effects,
    _check_endpoint,
    _check_exception_types,
    _check_int,
    _check_middleware,
    _check_names,
    _check_rate,
    _check_text,
    available_cpus,
    check_concurrency,
    check_seconds,
    checked_settings,
)

#: Where a handler runs: on the event loop (``async def``), in a worker thread (a plain
#: ``def``) or in a child process of the app's pool (a top-level ``def``).
RunIn = Literal["loop", "thread", "process"]
RUN_IN: tuple[str, ...] = ("loop", "thread", "process")

#: What a consumer does with a message whose body does not decode (or whose payload is gone).
DecodeErrorAction = Literal["dead-letter", "retry"]
#: What a dataclass body does with JSON fields it does not declare.
UnknownFields = Literal["refuse", "ignore"]
#: When a send goes through S3: only over the queue's MaximumMessageSize, or always.
PayloadOffload = Literal["over-limit", "always"]

#: The clients `App(client=...)` and `Producer(client=...)` open by name: the lean HTTP/1.1
#: client, aiobotocore for every call, or the hot calls over aiohttp (the rest aiobotocore).
ClientName = Literal["fast", "botocore", "aiohttp"]
CLIENT_NAMES: tuple[str, ...] = typing.get_args(ClientName)

Middleware = Callable[[Any, Callable[[Any], Awaitable[object]]], Awaitable[object]]
"""``async def middleware(message, call_next) -> object``: runs around a handler call.

`call_next(message)` runs the rest of the chain (the next middleware, then the handler) and
returns what the handler returned; a batch consumer's middleware gets the list of messages.
Give them to ``App(middleware=[...])`` (around every consumer) or ``@consumer(...,
middleware=[...])``.
"""


@dataclass(frozen=True, slots=True, init=False)
class Breaker:
    """When a consumer's circuit breaker opens, and for how long (``@consumer(...,
    breaker=Breaker(...))``).

    A handler raising `DependencyDown` (or one of `trip_on`), or `failures` failures of the
    same exception type within `window` seconds, opens the breaker: polling pauses, buffered
    messages are released, running handlers finish. After `cooldown` seconds one probe
    message is let through; its success closes the breaker, its failure opens it again for
    twice as long (at most `max_cooldown`). The message that tripped it and those failing
    the same way while it is open are retried after the cool-down, never dead-lettered for it.

    Attributes:
        trip_on: exception classes that open the breaker at once (`DependencyDown` always
            does).
        failures: open it after this many failures of one exception class within `window`
            seconds; ``None``: only `trip_on` and `DependencyDown` open it.
        window: the seconds those failures are counted over.
        cooldown: seconds the breaker stays open before the first probe.
        max_cooldown: the longest cool-down after failed probes.
    """

    trip_on: tuple[type[BaseException], ...]
    failures: int | None
    window: float
    cooldown: float
    max_cooldown: float

    @checked_settings("Breaker")
    def __init__(
        self,
        *,
        trip_on: type[BaseException] | Iterable[type[BaseException]] = (),
        failures: int | None = None,
        window: float = 60.0,
        cooldown: float = 20.0,
        max_cooldown: float = 300.0,
    ) -> None:
        if failures is not None:
            _check_int("failures", failures, 1, 10_000)
        check_seconds("window", window, 0.001, MAX_VISIBILITY)
        check_seconds("cooldown", cooldown, 0.001, MAX_VISIBILITY)
        check_seconds("max_cooldown", max_cooldown, 0.001, MAX_VISIBILITY)
        if max_cooldown < cooldown:
            raise ConfigurationError(
                f"max_cooldown={max_cooldown!r} is invalid: it must be at least cooldown "
                f"({cooldown!r})"
            )
        object.__setattr__(self, "trip_on", _check_exception_types(trip_on))
        object.__setattr__(self, "failures", failures)
        object.__setattr__(self, "window", float(window))
        object.__setattr__(self, "cooldown", float(cooldown))
        object.__setattr__(self, "max_cooldown", float(max_cooldown))


@dataclass(frozen=True, kw_only=True, slots=True)
class ConsumerConfig:
    """How one consumer reads and handles one queue.

    Attributes:
        queue: the queue's name (resolved in the app's region) or its full URL.
        name: a label for logs and statistics; defaults to the handler's qualified name.
        concurrency: handlers running at once (change it while running with
            `App.set_concurrency`).
        prefetch: messages received ahead of a free handler, waiting in the buffer. Their
            leases are kept alive too, but a large prefetch only delays other workers.
        visibility_timeout: seconds a received message stays hidden before the lease keeper
            must extend it. ``None`` uses the queue's own VisibilityTimeout attribute.
        wait_time: long-poll wait of each ReceiveMessage call (1 to 20 s).
        max_messages: most messages asked for by one ReceiveMessage call (1 to 10).
        retry_base_delay: back-off after a handler's first failure; doubles with each receive.
        retry_max_delay: the cap of that back-off.
        ack_linger: how long a delete may wait for nine others to share its batch call.
        timeout: seconds a handler may run; past it the handler is cancelled and its message
            takes the failure path. ``None``: no limit (the lease keeper holds the message).
        batch: hand the handler a list of up to `batch_size` messages instead of one.
        batch_size: most messages in one batch handler call.
        batch_window: longest wait for a batch to fill before the handler is called.
        envelope: unwrap an ``"sns"``, ``"eventbridge"`` or ``"s3"`` envelope so that a typed
            handler receives the inner payload.
        dead_letter_queue: where `Reject` and last-attempt failures go (name or URL);
            ``None`` uses the queue's RedrivePolicy target.
        middleware: async callables ``(message, call_next)`` wrapped around the handler,
            outermost first (after the app's own).
        on_decode_error: a body that does not decode (`MessageDecodeError`, a missing S3
            payload included): ``"dead-letter"`` moves it to the dead-letter queue on its
            first failure; ``"retry"`` retries it like any other failure.
        unknown_fields: a dataclass body's JSON fields it does not declare: ``"refuse"``
            them (a `MessageDecodeError`) or ``"ignore"`` them (a producer that adds a field
            then breaks nothing). Pydantic models follow their own ``model_config``.
        run_in: where the handler runs: ``"loop"`` (the default for ``async def``),
            ``"thread"`` (the default for a plain ``def``: a worker thread, at most
            `concurrency` of them) or ``"process"`` (a top-level ``def`` run in a child
            process of the app's pool, for CPU-bound work). ``None``: by the handler's kind.
        max_rate: most handler starts per second in this process (messages, for a batch
            consumer), with a burst of a tenth of a second's worth; ``None``: no limit.
            Messages are received about as fast as they start: at most a second's worth
            waits unstarted.
        max_per_tenant: most handlers running at once for one tenant (a message's
            MessageGroupId on a standard queue, see `Message.tenant`), with the buffered
            messages started round-robin across tenants; ``None``: no tenant rule.
        breaker: when the consumer's circuit breaker opens (`Breaker`); ``None``: the
            default `Breaker()`, which only a `DependencyDown` opens.
        idempotency: an `IdempotencyStore` (`aiosqsworker.idempotency`): each message's
            key is claimed before its handler runs, tied to its lease, so that a duplicate
            delivery does not run the handler again. ``None``: no store, no cost.
        idempotency_key: what the store keys a message by: ``"message_id"``,
            ``"deduplication_id"`` (FIFO queues) or a function of the `Message` that
            returns a str.
        outbox: give handlers ``message.outbox``: sends buffered during the handler and
            made only once it succeeded, before its delete (`aiosqsworker.outbox`).
    """

    queue: str
    name: str | None = None
    concurrency: int = 10
    prefetch: int = 10
    visibility_timeout: int | None = None
    wait_time: int = MAX_WAIT_TIME
    max_messages: int = MAX_BATCH
    retry_base_delay: float = 1.0
    retry_max_delay: float = 300.0
    ack_linger: float = 0.05
    timeout: float | None = None
    batch: bool = False
    batch_size: int = MAX_BATCH
    batch_window: float = 1.0
    envelope: Literal["sns", "eventbridge", "s3"] | None = None
    dead_letter_queue: str | None = None
    middleware: Sequence[Middleware] = ()
    on_decode_error: DecodeErrorAction = "dead-letter"
    unknown_fields: UnknownFields = "refuse"
    run_in: RunIn | None = None
    max_rate: float | None = None
    max_per_tenant: int | None = None
    breaker: Breaker | None = None
    idempotency: IdempotencyStore | None = None
    idempotency_key: IdempotencyKey = "message_id"
    outbox: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.queue, str) or not self.queue.strip():
            raise ConfigurationError(
                f"queue={self.queue!r} is invalid: give the queue's name or its URL"
            )
        check_concurrency(self.concurrency)
        _check_int("prefetch", self.prefetch, 0, MAX_CONCURRENCY)
        if self.visibility_timeout is not None:
            _check_int("visibility_timeout", self.visibility_timeout, 1, MAX_VISIBILITY)
        _check_int("wait_time", self.wait_time, 1, MAX_WAIT_TIME)
        _check_int("max_messages", self.max_messages, 1, MAX_BATCH)
        check_seconds("retry_base_delay", self.retry_base_delay, 0, MAX_VISIBILITY)
        check_seconds("retry_max_delay", self.retry_max_delay, 0, MAX_VISIBILITY)
        if self.retry_max_delay < self.retry_base_delay:
            raise ConfigurationError(
                f"retry_max_delay={self.retry_max_delay!r} is invalid: it must be at least "
                f"retry_base_delay ({self.retry_base_delay!r})"
            )
        check_seconds("ack_linger", self.ack_linger, 0, 10)
        if self.timeout is not None:
            check_seconds("timeout", self.timeout, 0.001, MAX_VISIBILITY)
        _check_bool("batch", self.batch)
        _check_int("batch_size", self.batch_size, 1, 1000)
        check_seconds("batch_window", self.batch_window, 0, MAX_WAIT_TIME)
        if self.envelope not in (None, "sns", "eventbridge", "s3"):
            raise ConfigurationError(
                f"envelope={self.envelope!r} is invalid: it must be 'sns', 'eventbridge', 's3' "
                "or None"
            )
        _check_text("dead_letter_queue", self.dead_letter_queue, "the queue's name or URL")
        _check_text("name", self.name, "a label for logs and statistics", empty_ok=True)
        object.__setattr__(self, "middleware", _check_middleware(self.middleware))
        _check_choice("on_decode_error", self.on_decode_error, typing.get_args(DecodeErrorAction))
        _check_choice("unknown_fields", self.unknown_fields, typing.get_args(UnknownFields))
        if self.run_in is not None:
            _check_choice("run_in", self.run_in, RUN_IN)
        _check_rate(self.max_rate)
        if self.max_per_tenant is not None:
            _check_int("max_per_tenant", self.max_per_tenant, 1, MAX_CONCURRENCY)
        if self.breaker is not None and not isinstance(self.breaker, Breaker):
            raise ConfigurationError(
                f"breaker={self.breaker!r} is invalid: give aiosqsworker.Breaker(...), or None"
            )
        _check_effects(self)

    @property
    def messages_per_call(self) -> int:
        """Messages one handler call takes: 1, or `batch_size` for a batch handler."""
        return self.batch_size if self.batch else 1

    @property
    def capacity(self) -> int:
        """Most messages received and not yet finished: handlers plus buffer."""
        return self.capacity_at(self.concurrency)

    def capacity_at(self, concurrency: int) -> int:
        """`capacity` with `concurrency` handlers (a live change of concurrency)."""
        return concurrency * self.messages_per_call + self.prefetch


class ConsumerSettings(TypedDict, total=False):
    """The keyword arguments of `@consumer` (all of `ConsumerConfig` but the queue)."""

    name: str | None
    concurrency: int
    prefetch: int
    visibility_timeout: int | None
    wait_time: int
    max_messages: int
    retry_base_delay: float
    retry_max_delay: float
    ack_linger: float
    timeout: float | None
    batch: bool
    batch_size: int
    batch_window: float
    envelope: Literal["sns", "eventbridge", "s3"] | None
    dead_letter_queue: str | None
    middleware: Sequence[Middleware]
    on_decode_error: DecodeErrorAction
    unknown_fields: UnknownFields
    run_in: RunIn | None
    idempotency: IdempotencyStore | None
    idempotency_key: IdempotencyKey
    outbox: bool
    max_rate: float | None
    max_per_tenant: int | None
    breaker: Breaker | None


@dataclass(frozen=True, kw_only=True, slots=True)
class AppConfig:
    """Settings shared by every consumer of an app.

    Attributes:
        region: AWS region. ``None`` follows the usual chain: ``AWS_REGION``, then botocore's
            own (``AWS_DEFAULT_REGION``, the profile's config file).
        endpoint_url: SQS endpoint. ``None`` follows botocore: ``AWS_ENDPOINT_URL_SQS``,
            ``AWS_ENDPOINT_URL``, then the region's AWS endpoint.
        profile: a named profile from the shared AWS config files.
        shutdown_timeout: seconds running handlers get to finish after a stop is requested.
        client: ``"fast"`` speaks SQS's protocol itself over keep-alive HTTP/1.1 connections
            of its own (and loads botocore only for credentials it cannot read itself);
            ``"botocore"`` sends every call through aiobotocore; ``"aiohttp"`` serves the hot
            calls (receive, delete, visibility, send) over aiohttp, the rest aiobotocore. Or a
            client instance (an `SQSClient`, such as ``aiosqsworker.testing.MemorySQS()``),
            used as it is: the app neither opens nor closes it, and region, endpoint and
            profile do not apply.
        middleware: async callables ``(message, call_next)`` around every consumer's handler,
            outermost first.
        concurrency: when given, every consumer's concurrency, whatever its own
            (``--concurrency``).
        only: names of the consumers to run (``--consumer``); ``None`` runs them all. A name
            the app does not have is an error when the app starts.
        payload_bucket: the S3 bucket that sends put large bodies in (AWS's extended-client
            format, see the large messages page). ``None``: a body over the queue's limit is
            refused. Receiving needs no bucket: a pointer names its own.
        payload_offload: ``"over-limit"`` sends a body through S3 only when it (with its
            attributes) is over the queue's ``MaximumMessageSize``; ``"always"`` sends every
            body through S3.
        delete_payloads: delete a message's S3 object once SQS confirmed the message's
            delete (after its handler succeeded; never for a dead-letter copy). Off by
            default, as in AWS's client: a lifecycle rule on the bucket is the usual cleanup.
        s3_endpoint_url: the S3 endpoint. ``None`` follows botocore: ``AWS_ENDPOINT_URL_S3``,
            ``AWS_ENDPOINT_URL``, then the region's AWS endpoint.
        processes: the size of the app's process pool, where ``run_in="process"`` handlers
            run. ``None``: one per CPU this process may use. Started at the first such
            message, shut down with the app.
        watchdog: seconds the event loop may go without turning before a warning names the
            handler blocking it (and `loop_blocks` counts it). ``None`` turns it off.
        message_ages: keep each message's lag (from its ``SentTimestamp`` to its handler's
            start) and dwell (from its receipt to its handler's start) in histograms, for
            `statistics()` and ``/metrics``. Off by default: nothing per message then.
        credentials_outage_limit: seconds the credentials may stay impossible to fetch or
            refresh (a container or instance credentials endpoint down, STS unreachable)
            before the worker stops with a `CredentialsError`. Until then every call that
            needs them backs off and retries, and leases and deletes carry on once they
            come back.
        blocked_loop_limit: seconds a blocked event loop's leases are kept alive from the
            lease keeper's thread (an ``async`` handler calling blocking code). Past it the
            worker counts as stuck: one error line, and its leases are let go (their
            messages become visible to other workers after their visibility timeout).
            ``None``: leases are extended by the event loop only.
    """

    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    shutdown_timeout: float = 30.0
    client: ClientName | SQSClient = "fast"
    middleware: Sequence[Middleware] = ()
    concurrency: int | None = None
    only: Sequence[str] | None = None
    payload_bucket: str | None = None
    payload_offload: PayloadOffload = "over-limit"
    delete_payloads: bool = False
    s3_endpoint_url: str | None = None

    processes: int | None = None
    watchdog: float | None = 1.0
    message_ages: bool = False
    credentials_outage_limit: float = DEFAULT_OUTAGE_LIMIT
    blocked_loop_limit: float | None = 300.0

    @property
    def pool_size(self) -> int:
        """The processes of the app's pool: `processes`, or one per available CPU."""
        return self.processes if self.processes is not None else available_cpus()

    def __post_init__(self) -> None:
        check_seconds("shutdown_timeout", self.shutdown_timeout, 0, MAX_SHUTDOWN_TIMEOUT)
        if self.concurrency is not None:
            _check_int("concurrency", self.concurrency, 1, MAX_CONCURRENCY)
        if self.processes is not None:
            _check_int("processes", self.processes, 1, MAX_PROCESSES)
        if self.watchdog is not None:
            check_seconds("watchdog", self.watchdog, 0.05, 3600)
        check_seconds("credentials_outage_limit", self.credentials_outage_limit, 0, 86400)
        if self.blocked_loop_limit is not None:
            check_seconds("blocked_loop_limit", self.blocked_loop_limit, 1, MAX_VISIBILITY)
        if self.only is not None:
            object.__setattr__(self, "only", _check_names(self.only))
        # Empty strings stay allowed: they mean "not given" (`--region "$REGION"` unset).
        _check_text("region", self.region, "an AWS region such as 'eu-west-1'", empty_ok=True)
        _check_text("profile", self.profile, "a profile of the AWS config files", empty_ok=True)
        object.__setattr__(self, "middleware", _check_middleware(self.middleware))
        self._check_client()
        _check_endpoint("endpoint_url", self.endpoint_url)
        _check_endpoint("s3_endpoint_url", self.s3_endpoint_url)
        if self.payload_bucket is not None and (
            not isinstance(self.payload_bucket, str) or not _BUCKET_NAME.match(self.payload_bucket)
        ):
            raise ConfigurationError(
                f"payload_bucket={self.payload_bucket!r} is invalid: give an S3 bucket name "
                "(3 to 63 lowercase letters, digits, dots and hyphens), or None"
            )
        _check_choice("payload_offload", self.payload_offload, typing.get_args(PayloadOffload))
        _check_bool("delete_payloads", self.delete_payloads)
        _check_bool("message_ages", self.message_ages)

    def _check_client(self) -> None:
        """A client named in `CLIENT_NAMES`, or an instance with every call."""
        client = self.client
        if isinstance(client, str):
            if client not in CLIENT_NAMES:
                close = difflib.get_close_matches(client, CLIENT_NAMES, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigurationError(
                    f"client={client!r} is invalid{hint}: it must be 'fast' or 'botocore' "
                    "('aiohttp' for the hot calls over aiohttp), or an SQSClient instance such "
                    "as aiosqsworker.testing.MemorySQS()"
                )
            return
        missing = missing_client_members(client)
        if missing:
            raise ConfigurationError(
                f"client={client!r} is invalid: it must be 'fast' or 'botocore', or an "
                f"SQSClient instance; {type(client).__name__} lacks {', '.join(missing)}"
            )
        for name in ("region", "endpoint_url", "profile"):
            if getattr(self, name):
                raise ConfigurationError(
                    f"{name}={getattr(self, name)!r} cannot be used with client="
                    f"{type(client).__name__}(...): a client instance already knows where its "
                    f"requests go; give {name} or the instance, not both"
                )
