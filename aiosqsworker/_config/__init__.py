"""Settings: frozen, keyword-only, validated when they are given.

The package by job: `settings` (the dataclasses and their defaults), `checks` (the ranges and
the messages of a bad value) and `environment` (the ``AIOSQSWORKER_*`` variables). The names
the rest of the package imports from ``aiosqsworker._config`` are re-exported here from
the module that holds each.
"""

from .checks import (
    MAX_CONCURRENCY,
    available_cpus,
    check_concurrency,
    check_seconds,
    checked_settings,
    too_many_workers,
    unknown_setting,
    worker_count,
)
from .environment import (
    ENV_PREFIX,
    LOG_FORMATS,
    LOG_LEVELS,
    MAX_PORT,
    EnvironmentSettings,
)
from .settings import (
    AppConfig,
    Breaker,
    ClientName,
    ConsumerConfig,
    ConsumerSettings,
    DecodeErrorAction,
    Middleware,
    PayloadOffload,
    RunIn,
    UnknownFields,
)

__all__ = [
    "ENV_PREFIX",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "MAX_CONCURRENCY",
    "MAX_PORT",
    "AppConfig",
    "Breaker",
    "ClientName",
    "ConsumerConfig",
    "ConsumerSettings",
    "DecodeErrorAction",
    "EnvironmentSettings",
    "Middleware",
    "PayloadOffload",
    "RunIn",
    "UnknownFields",
    "available_cpus",
    "check_concurrency",
    "check_seconds",
    "checked_settings",
    "too_many_workers",
    "unknown_setting",
    "worker_count",
]
