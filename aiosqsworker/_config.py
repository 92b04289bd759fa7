"""Settings: frozen, keyword-only, validated when they are given.

Every limit SQS imposes is checked here, so that a wrong value fails at decoration or
construction time with the setting's name and the allowed range, not minutes later as a
botocore error inside a running worker.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import os
import re
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, Literal, ParamSpec, TypedDict, TypeVar

from ._errors import ConfigurationError
from ._sqs.base import SQSClient, missing_client_members
from ._sqs.credentials import DEFAULT_OUTAGE_LIMIT
from ._sqs.limits import MAX_BATCH, MAX_VISIBILITY, MAX_WAIT_TIME
from ._text import plural
from .idempotency import IdempotencyKey, IdempotencyStore

__all__ = [
    "ENV_PREFIX",
    "MAX_BATCH",  # SQS's numbers, from _sqs/limits.py, for the modules that import them here
    "MAX_VISIBILITY",
    "MAX_WAIT_TIME",
    "AppConfig",
    "Breaker",
    "ConsumerConfig",
    "ConsumerSettings",
    "EnvironmentSettings",
    "Middleware",
    "RunIn",
    "check_concurrency",
    "check_seconds",
    "checked_settings",
    "too_many_workers",
    "unknown_setting",
    "worker_count",
]

MAX_SHUTDOWN_TIMEOUT = 24 * 3600
MAX_CONCURRENCY = 10_000
MAX_PROCESSES = 1024
MAX_WORKERS = 1024

#: Where a handler runs: on the event loop (``async def``), in a worker thread (a plain
#: ``def``) or in a child process of the app's pool (a top-level ``def``).
RunIn = Literal["loop", "thread", "process"]
RUN_IN: tuple[str, ...] = ("loop", "thread", "process")
#: The range of `max_rate`, in handler starts per second.
MIN_RATE = 0.01
MAX_RATE = 100_000

#: What a consumer does with a message whose body does not decode (or whose payload is gone).
DecodeErrorAction = Literal["dead-letter", "retry"]
#: What a dataclass body does with JSON fields it does not declare.
UnknownFields = Literal["refuse", "ignore"]
#: When a send goes through S3: only over the queue's MaximumMessageSize, or always.
PayloadOffload = Literal["over-limit", "always"]

# S3's bucket naming rules, in short: 3 to 63 lowercase letters, digits, dots and hyphens.
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
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


P = ParamSpec("P")
S = TypeVar("S")


def unknown_setting(kind: str, name: str, known: Iterable[str]) -> ConfigurationError:
    """The error for a setting `kind` (``"consumer"``, ``"App"``) does not have."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    article = "an" if kind[0].lower() in "aeiou" else "a"
    return ConfigurationError(
        f"unknown {kind} setting {name!r}{hint}; the settings of {article} {kind} are: "
        f"{', '.join(known)}"
    )


def checked_settings(
    kind: str,
) -> Callable[[Callable[Concatenate[S, P], None]], Callable[Concatenate[S, P], None]]:
    """Give an ``__init__`` of keyword-only settings the errors of `@consumer`'s.

    Python's own would be a bare TypeError (``unexpected keyword argument 'regoin'``); this
    names the closest setting, and a positional value says to name it. Type checkers still
    see the real signature.
    """

    def decorate(init: Callable[Concatenate[S, P], None]) -> Callable[Concatenate[S, P], None]:
        parameters = inspect.signature(init).parameters.values()
        known = [p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]

        @functools.wraps(init)
        def checked(self: S, /, *args: P.args, **kwargs: P.kwargs) -> None:
            if args:
                raise ConfigurationError(
                    f"{kind}() takes its settings by name, as in {kind}({known[0]}=...): "
                    f"{args[0]!r} was given without one"
                )
            for name in kwargs:
                if name not in known:
                    raise unknown_setting(kind, name, known)
            init(self, *args, **kwargs)

        return checked

    return decorate


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS and Windows have no affinity mask
        return os.cpu_count() or 1


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigurationError(
            f"{name}={value!r} is invalid: it must be a whole number from {low} to {high}"
        )


def _check_text(name: str, value: object, what: str, *, empty_ok: bool = False) -> None:
    """A setting that is ``None`` or a string (a non-empty one, unless `empty_ok`)."""
    if value is not None and (not isinstance(value, str) or not (empty_ok or value.strip())):
        raise ConfigurationError(f"{name}={value!r} is invalid: give {what}, or None")


def _check_names(value: object) -> tuple[str, ...]:
    """Consumer names: a list of non-empty strings, at least one."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigurationError(
            f"only={value!r} is invalid: give a list of consumer names, such as ['handle_order']"
        )
    names = tuple(value)
    if not names or not all(isinstance(name, str) and name.strip() for name in names):
        raise ConfigurationError(
            f"only={value!r} is invalid: give one or more consumer names, or None for all"
        )
    return names


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """A setting that must be one of `choices`; a near miss gets "did you mean"."""
    if isinstance(value, str) and value in choices:
        return
    close = difflib.get_close_matches(value, choices, n=1) if isinstance(value, str) else []
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    allowed = ", ".join(repr(choice) for choice in choices)
    raise ConfigurationError(f"{name}={value!r} is invalid{hint}: it must be one of {allowed}")


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name}={value!r} is invalid: it must be True or False")


def _check_endpoint(name: str, value: object) -> None:
    if value is not None and (
        not isinstance(value, str) or not value.startswith(("http://", "https://"))
    ):
        raise ConfigurationError(
            f"{name}={value!r} is invalid: it must start with http:// or https://"
        )


def _check_effects(config: ConsumerConfig) -> None:
    """`idempotency`, `idempotency_key` and `outbox`: one-message consumers only."""
    store = config.idempotency
    if store is not None and not isinstance(store, IdempotencyStore):
        raise ConfigurationError(
            f"idempotency={store!r} is invalid: give a store with async claim, extend, "
            "release and complete (aiosqsworker.idempotency.MemoryIdempotencyStore, "
            "RedisIdempotencyStore, or your own)"
        )
    key = config.idempotency_key
    if not callable(key) and key not in ("message_id", "deduplication_id"):
        raise ConfigurationError(
            f"idempotency_key={key!r} is invalid: it must be 'message_id', "
            "'deduplication_id' or a function of the message returning a str"
        )
    _check_bool("outbox", config.outbox)
    if config.batch and (store is not None or config.outbox):
        setting = "idempotency=" if store is not None else "outbox=True"
        raise ConfigurationError(
            f"{setting} applies to one-message handlers, not to batch=True: a batch's "
            "messages succeed and fail one by one"
        )


def _check_middleware(value: object) -> tuple[Middleware, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ConfigurationError(
            f"middleware={value!r} is invalid: give a list of async functions (message, call_next)"
        )
    layers = tuple(value)
    for layer in layers:
        if not callable(layer):
            raise ConfigurationError(
                f"middleware {layer!r} is not callable: each must be an async function "
                "(message, call_next)"
            )
    return layers


def check_concurrency(value: object) -> None:
    """A number of handlers running at once, as `concurrency=` takes it."""
    _check_int("concurrency", value, 1, MAX_CONCURRENCY)


def _check_rate(value: object) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not MIN_RATE <= value <= MAX_RATE
    ):
        raise ConfigurationError(
            f"max_rate={value!r} is invalid: it must be a number of handler starts per second "
            f"from {MIN_RATE:g} to {MAX_RATE:g}, or None for no limit"
        )


def check_seconds(name: str, value: object, low: float, high: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or not low <= value <= high
    ):
        raise ConfigurationError(
            f"{name}={value!r} is invalid: it must be a number of seconds from {low:g} to {high:g}"
        )


def _check_exception_types(value: object) -> tuple[type[BaseException], ...]:
    """`Breaker(trip_on=...)`: an exception class, or a list of them."""
    kinds = (value,) if isinstance(value, type) else value
    if isinstance(kinds, Iterable) and not isinstance(kinds, str):
        kinds = tuple(kinds)
        if all(isinstance(kind, type) and issubclass(kind, BaseException) for kind in kinds):
            return kinds
    raise ConfigurationError(
        f"trip_on={value!r} is invalid: give an exception class or a list of them, such as "
        "trip_on=[ConnectionError, TimeoutError]"
    )


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


#: The prefix of the environment variables the command line and `App.from_env` read.
ENV_PREFIX = "AIOSQSWORKER_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
MAX_PORT = 65_535


def _env_whole(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ConfigurationError(
            f"{ENV_PREFIX}{name}={raw!r} is invalid: it must be a whole number from {low} to {high}"
        )
    return value


def _env_port(name: str, raw: str) -> int:
    port = _env_whole(name, raw, -(2**31), 2**31)
    if not 1 <= port <= MAX_PORT:
        raise ConfigurationError(
            f"{ENV_PREFIX}{name}={port} is invalid: it must be a port from 1 to {MAX_PORT}"
        )
    return port


def _env_seconds(name: str, raw: str, low: float, high: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if math.isnan(value) or not low <= value <= high:
        raise ConfigurationError(
            f"{ENV_PREFIX}{name}={raw!r} is invalid: it must be a number of seconds from "
            f"{low:g} to {high:g}"
        )
    return value


def _env_choice(
    name: str, raw: str, choices: Sequence[str], fold: Callable[[str], str] = str
) -> str:
    """`raw`, folded (`str.upper` for log levels), if it is one of `choices`; the error
    shows the value as it was given."""
    value = fold(raw)
    if value not in choices:
        raise ConfigurationError(
            f"{ENV_PREFIX}{name}={raw!r} is invalid: choose one of {', '.join(choices)}"
        )
    return value


def worker_count(raw: str, given_as: str) -> int:
    """The worker processes `raw` asks for: a whole number, or ``auto`` (one per CPU)."""
    text = raw.strip().lower()
    if text == "auto":
        return available_cpus()
    try:
        workers = int(text)
    except ValueError:
        workers = 0
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigurationError(
            f"{given_as} is invalid: give a whole number from 1 to {MAX_WORKERS}, or auto (one "
            "per CPU)"
        )
    return workers


#: Workers per CPU past which `run` warns (they compete for the CPUs), and refuses.
WORKERS_PER_CPU_WARNED = 2
WORKERS_PER_CPU_REFUSED = 8


def too_many_workers(workers: int, cpus: int) -> tuple[bool, str] | None:
    """(refused, why) when `workers` processes are more than `cpus` can use; else None.

    Each worker is an event loop that overlaps its own waits on SQS, so more workers than
    CPUs only compete for them (and hold connections and memory each)."""
    if workers <= WORKERS_PER_CPU_WARNED * cpus:
        return None
    refused = workers > WORKERS_PER_CPU_REFUSED * cpus
    why = (
        f"--workers {workers} on {plural(cpus, 'CPU')}: each worker is a process with an event "
        "loop that already overlaps its waits on SQS, so more than one or two per CPU only "
        "compete for them; use --workers auto (one per CPU), or raise a consumer's "
        "concurrency for more messages in flight"
    )
    if refused:
        why += f" (more than {WORKERS_PER_CPU_REFUSED} per CPU is refused)"
    return refused, why


def _env_names(name: str, raw: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not names:
        raise ConfigurationError(
            f"{ENV_PREFIX}{name}={raw!r} is invalid: give consumer names separated by commas"
        )
    return names


#: Each variable (less the prefix) and how its text becomes a setting.
_ENV_PARSERS: dict[str, Callable[[str, str], object]] = {
    "SHUTDOWN_TIMEOUT": lambda n, raw: _env_seconds(n, raw, 0, MAX_SHUTDOWN_TIMEOUT),
    "CLIENT": lambda n, raw: _env_choice(n, raw, CLIENT_NAMES),
    "CONCURRENCY": lambda n, raw: _env_whole(n, raw, 1, MAX_CONCURRENCY),
    "CONSUMERS": _env_names,
    "WORKERS": lambda n, raw: worker_count(raw, f"{ENV_PREFIX}{n}={raw!r}"),
    "METRICS_PORT": _env_port,
    "METRICS_HOST": lambda n, raw: raw,
    "LOG_LEVEL": lambda n, raw: _env_choice(n, raw, LOG_LEVELS, str.upper),
    "LOG_FORMAT": lambda n, raw: _env_choice(n, raw, LOG_FORMATS, str.lower),
    "WORKER_INDEX": lambda n, raw: _env_whole(n, raw, 0, 1023),
    "SUPERVISOR_PID": lambda n, raw: _env_whole(n, raw, 1, 2**31),
}


#: Variables the supervisor sets for its workers: read, never offered to a user.
_SET_BY_THE_SUPERVISOR = ("WORKER_INDEX", "SUPERVISOR_PID")


@dataclass(frozen=True, kw_only=True, slots=True)
class EnvironmentSettings:
    """The ``AIOSQSWORKER_*`` environment variables, read and checked in one place.

    The command line takes its defaults from them and `App.from_env` its settings; ``None``
    means the variable is not set (or empty). A value out of range, or a variable whose name
    is close to a known one (``AIOSQSWORKER_CONCURENCY``), is a `ConfigurationError`.

    Attributes:
        shutdown_timeout: ``AIOSQSWORKER_SHUTDOWN_TIMEOUT``, seconds.
        client: ``AIOSQSWORKER_CLIENT``, ``fast``, ``botocore`` or ``aiohttp``.
        concurrency: ``AIOSQSWORKER_CONCURRENCY``: every consumer's concurrency.
        only: ``AIOSQSWORKER_CONSUMERS``: the consumers to run, names separated by commas.
        workers: ``AIOSQSWORKER_WORKERS``: worker processes, or ``auto`` for one per CPU
            (command line only).
        metrics_port: ``AIOSQSWORKER_METRICS_PORT`` (command line only).
        metrics_host: ``AIOSQSWORKER_METRICS_HOST`` (command line only).
        log_level: ``AIOSQSWORKER_LOG_LEVEL`` (command line only).
        log_format: ``AIOSQSWORKER_LOG_FORMAT`` (command line only).
        worker_index: ``AIOSQSWORKER_WORKER_INDEX``, which the supervisor of ``--workers N``
            sets for each worker.
        supervisor_pid: ``AIOSQSWORKER_SUPERVISOR_PID``, the supervisor's pid, which it sets
            for each worker so that a worker drains when its supervisor dies.
    """

    shutdown_timeout: float | None = None
    client: ClientName | None = None
    concurrency: int | None = None
    only: tuple[str, ...] | None = None
    workers: int | None = None
    metrics_port: int | None = None
    metrics_host: str | None = None
    log_level: str | None = None
    log_format: str | None = None
    worker_index: int | None = None
    supervisor_pid: int | None = None

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> EnvironmentSettings:
        """The settings `environ` (default: ``os.environ``) holds."""
        environ = os.environ if environ is None else environ
        known = [name for name in _ENV_PARSERS if name not in _SET_BY_THE_SUPERVISOR]
        for variable in environ:
            if not variable.startswith(ENV_PREFIX):
                continue
            name = variable.removeprefix(ENV_PREFIX)
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
            if name not in _ENV_PARSERS and close:
                raise ConfigurationError(
                    f"{variable} is not a setting (did you mean {ENV_PREFIX}{close[0]}?); the "
                    f"settings are {', '.join(ENV_PREFIX + name for name in known)}"
                )
        values: dict[str, Any] = {}
        for name, parse in _ENV_PARSERS.items():
            raw = environ.get(ENV_PREFIX + name, "").strip()
            if raw:
                field = "only" if name == "CONSUMERS" else name.lower()
                values[field] = parse(name, raw)
        return cls(**values)

    def app_settings(self) -> dict[str, Any]:
        """The `App` (and `AppConfig`) settings among them: those that are set."""
        settings = {
            "shutdown_timeout": self.shutdown_timeout,
            "client": self.client,
            "concurrency": self.concurrency,
            "only": self.only,
        }
        return {name: value for name, value in settings.items() if value is not None}
