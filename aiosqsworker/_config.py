"""Settings: frozen, keyword-only, validated when they are given.

Every limit SQS imposes is checked here, so that a wrong value fails at decoration or
construction time with the setting's name and the allowed range, not minutes later as a
botocore error inside a running worker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, TypedDict

from ._errors import ConfigurationError

__all__ = ["AppConfig", "ConsumerConfig", "ConsumerSettings"]

#: SQS limits (see the SQS API reference for ReceiveMessage and ChangeMessageVisibility).
MAX_WAIT_TIME = 20
MAX_BATCH = 10
MAX_VISIBILITY = 43_200  # 12 hours, also the cap on a message's total invisibility
MAX_CONCURRENCY = 10_000


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigurationError(
            f"{name}={value!r} is invalid: it must be a whole number from {low} to {high}"
        )


def _check_seconds(name: str, value: object, low: float, high: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or not low <= value <= high
    ):
        raise ConfigurationError(
            f"{name}={value!r} is invalid: it must be a number of seconds from {low:g} to {high:g}"
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class ConsumerConfig:
    """How one consumer reads and handles one queue.

    Attributes:
        queue: the queue's name (resolved in the app's region) or its full URL.
        name: a label for logs and statistics; defaults to the handler's qualified name.
        concurrency: handlers running at once.
        prefetch: messages received ahead of a free handler, waiting in the buffer. Their
            leases are kept alive too, but a large prefetch only delays other workers.
        visibility_timeout: seconds a received message stays hidden before the lease keeper
            must extend it. ``None`` uses the queue's own VisibilityTimeout attribute.
        wait_time: long-poll wait of each ReceiveMessage call (1 to 20 s).
        max_messages: most messages asked for by one ReceiveMessage call (1 to 10).
        retry_base_delay: back-off after a handler's first failure; doubles with each receive.
        retry_max_delay: the cap of that back-off.
        ack_linger: how long a delete may wait for nine others to share its batch call.
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

    def __post_init__(self) -> None:
        if not isinstance(self.queue, str) or not self.queue.strip():
            raise ConfigurationError(
                f"queue={self.queue!r} is invalid: give the queue's name or its URL"
            )
        _check_int("concurrency", self.concurrency, 1, MAX_CONCURRENCY)
        _check_int("prefetch", self.prefetch, 0, MAX_CONCURRENCY)
        if self.visibility_timeout is not None:
            _check_int("visibility_timeout", self.visibility_timeout, 1, MAX_VISIBILITY)
        _check_int("wait_time", self.wait_time, 1, MAX_WAIT_TIME)
        _check_int("max_messages", self.max_messages, 1, MAX_BATCH)
        _check_seconds("retry_base_delay", self.retry_base_delay, 0, MAX_VISIBILITY)
        _check_seconds("retry_max_delay", self.retry_max_delay, 0, MAX_VISIBILITY)
        if self.retry_max_delay < self.retry_base_delay:
            raise ConfigurationError(
                f"retry_max_delay={self.retry_max_delay!r} is invalid: it must be at least "
                f"retry_base_delay ({self.retry_base_delay!r})"
            )
        _check_seconds("ack_linger", self.ack_linger, 0, 10)

    @property
    def capacity(self) -> int:
        """Most messages received and not yet finished: handlers plus buffer."""
        return self.concurrency + self.prefetch


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
        client: ``"fast"`` serves the hot calls (receive, delete, visibility, send) over
            aiohttp directly; ``"botocore"`` sends every call through aiobotocore.
    """

    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    shutdown_timeout: float = 30.0
    client: Literal["fast", "botocore"] = "fast"

    def __post_init__(self) -> None:
        _check_seconds("shutdown_timeout", self.shutdown_timeout, 0, 24 * 3600)
        if self.client not in ("fast", "botocore"):
            raise ConfigurationError(
                f"client={self.client!r} is invalid: it must be 'fast' or 'botocore'"
            )
        if self.endpoint_url is not None and not self.endpoint_url.startswith(
            ("http://", "https://")
        ):
            raise ConfigurationError(
                f"endpoint_url={self.endpoint_url!r} is invalid: it must start with "
                "http:// or https://"
            )
