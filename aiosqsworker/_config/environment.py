"""The ``AIOSQSWORKER_*`` environment variables: their names, how each is parsed and checked,
and `EnvironmentSettings`, what the command line and `App.from_env` read from them.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigurationError
from .checks import MAX_CONCURRENCY, MAX_SHUTDOWN_TIMEOUT, worker_count
from .settings import CLIENT_NAMES, ClientName

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
