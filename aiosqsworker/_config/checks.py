"""Checking settings: the ranges, "did you mean", and messages that name the setting.

Every limit SQS imposes is checked here, so that a wrong value fails at decoration or
construction time with the setting's name and the allowed range, not minutes later as a
botocore error inside a running worker. The settings of `settings.py` and the variables of
`environment.py` are checked with these.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import os
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from .._errors import ConfigurationError
from .._text import plural
from ..idempotency import IdempotencyStore

if TYPE_CHECKING:
    from .settings import ConsumerConfig, Middleware


MAX_SHUTDOWN_TIMEOUT = 24 * 3600
MAX_CONCURRENCY = 10_000
MAX_PROCESSES = 1024
MAX_WORKERS = 1024

#: The range of `max_rate`, in handler starts per second.
MIN_RATE = 0.01
MAX_RATE = 100_000

# S3's bucket naming rules, in short: 3 to 63 lowercase letters, digits, dots and hyphens.
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


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
