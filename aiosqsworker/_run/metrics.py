"""Prometheus metrics and health endpoints.

`serve_metrics` runs a small HTTP server (aiohttp, already a dependency) beside an app:

- ``/metrics``: every consumer's counters in Prometheus' text format, read from
  `App.statistics()` at scrape time (nothing is added to the message path). Needs the
  ``prometheus`` extra (prometheus-client); `register_collector` adds the same metrics to a
  registry of your own instead.
- ``/healthz``: liveness. 503 when a consumer with room to poll has not completed a
  ReceiveMessage for over twice its wait time: a silently stalled worker.
- ``/readyz``: readiness. 200 once every queue was found and the consumers run; 503 while
  starting, while a consumer's circuit breaker is open, and from the moment a shutdown
  begins.

It binds 127.0.0.1 unless told otherwise: metrics are no business of the network at large.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import fields
from typing import Any

import anyio
from aiohttp import web
from anyio.abc import TaskStatus

from .._consumer.stats import ConsumerStatistics
from .._errors import ConfigurationError
from .probe import AppProbe

__all__ = ["metric_families", "register_collector", "serve_metrics"]

logger = logging.getLogger("aiosqsworker.metrics")

_GAUGES = {
    "in_flight",
    "buffered",
    "running",
    "last_poll_at",
    "concurrency",
    "max_rate",
    "paused",
    "polling_width",
    "abandoned_threads",
}
#: Quantile gauges: (statistics prefix, metric, help).
_QUANTILES = (
    (
        "latency",
        "aiosqsworker_handler_duration_seconds",
        "handler duration quantiles (upper bounds of 25 % wide buckets)",
    ),
    (
        "lag",
        "aiosqsworker_message_lag_seconds",
        "seconds from a message's send (SentTimestamp) to its handler's start, quantiles",
    ),
    (
        "dwell",
        "aiosqsworker_message_dwell_seconds",
        "seconds from a message's receipt to its handler's start, quantiles",
    ),
)
_SKIPPED = {"name", "queue", "tenants", "breaker"} | {
    f"{prefix}_p{q}" for prefix, _, _ in _QUANTILES for q in ("50", "90", "99")
}
_HELP = {
    "in_flight": "messages received and not yet finished, buffered ones included",
    "buffered": "messages waiting for a free handler",
    "running": "handlers running now",
    "last_poll_at": "when the last ReceiveMessage call completed (unix time)",
    "loop_blocks": "stalls of the event loop past the watchdog's threshold in this handler",
    "loop_blocked_seconds": "seconds the event loop stood still in those stalls",
    "abandoned_threads": "threads of a def handler given up (a timeout) that still run",
    "concurrency": "most handlers running at once now",
    "max_rate": "most handler starts per second (absent without a limit)",
    "paused": "1 while the consumer is paused, else 0",
    "polling_width": "long polls kept now, open or waiting for room",
    "breaker_trips": "times the circuit breaker opened",
    "breaker_held": "failures counted as the dependency's: retried, never dead-lettered for it",
}
#: Per tenant (the busiest, then "other"): (metric, kind, help, TenantStatistics field).
_TENANT_METRICS = (
    ("aiosqsworker_tenant_running", "gauge", "handlers running now, per tenant", "running"),
    ("aiosqsworker_tenant_waiting", "gauge", "buffered messages waiting, per tenant", "waiting"),
    ("aiosqsworker_tenant_handled_total", "counter", "handlers that ended, per tenant", "handled"),
    (
        "aiosqsworker_tenant_surplus_total",
        "counter",
        "messages made visible again beyond what a tenant keeps waiting",
        "surplus",
    ),
)
_BREAKER_STATES = ("closed", "open", "half-open")


def _metric_name(field: str) -> str:
    if field in _GAUGES:
        return f"aiosqsworker_{field}"
    if field in {"polls", "poll_errors"} or field.startswith("breaker_"):
        return f"aiosqsworker_{field}_total"
    if field.startswith(("leases_", "lease_", "loop_")):
        return f"aiosqsworker_{field}_total"
    if field.endswith(("_failures", "_errors", "_unconfirmed")):
        return f"aiosqsworker_{field}_total"
    return f"aiosqsworker_messages_{field}_total"


def metric_families(
    statistics: dict[str, ConsumerStatistics],
) -> Iterator[tuple[str, str, str, list[tuple[dict[str, str], float]]]]:
    """(name, type, help, samples) of every metric: the exposition, as plain data."""
    for stat_field in fields(ConsumerStatistics):
        if stat_field.name in _SKIPPED:
            continue
        samples = [
            ({"consumer": stats.name, "queue": stats.queue}, float(value))
            for stats in statistics.values()
            if (value := getattr(stats, stat_field.name)) is not None
        ]
        kind = "gauge" if stat_field.name in _GAUGES else "counter"
        help_text = _HELP.get(stat_field.name, stat_field.name.replace("_", " "))
        yield _metric_name(stat_field.name), kind, help_text, samples
    for prefix, name, help_text in _QUANTILES:
        quantiles = [
            ({"consumer": stats.name, "queue": stats.queue, "quantile": q}, value)
            for stats in statistics.values()
            for q, value in (
                ("0.5", getattr(stats, f"{prefix}_p50")),
                ("0.9", getattr(stats, f"{prefix}_p90")),
                ("0.99", getattr(stats, f"{prefix}_p99")),
            )
            if value is not None
        ]
        if quantiles or prefix == "latency":
            yield name, "gauge", help_text, quantiles
    yield (
        "aiosqsworker_breaker_state",
        "gauge",
        "1 for the circuit breaker's state (closed, open, half-open), else 0",
        [
            (
                {"consumer": stats.name, "queue": stats.queue, "state": state},
                float(stats.breaker == state),
            )
            for stats in statistics.values()
            for state in _BREAKER_STATES
        ],
    )
    for name, kind, help_text, column in _TENANT_METRICS:
        samples = [
            (
                {"consumer": stats.name, "queue": stats.queue, "tenant": tenant.tenant},
                float(getattr(tenant, column)),
            )
            for stats in statistics.values()
            for tenant in stats.tenants
        ]
        yield name, kind, help_text, samples


def _collector(app: AppProbe) -> Any:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    class AppCollector:
        def collect(self) -> Iterator[Any]:
            for name, kind, help_text, samples in metric_families(app.statistics()):
                labels = sorted({key for sample_labels, _ in samples for key in sample_labels})
                if kind == "counter":
                    family: Any = CounterMetricFamily(
                        name.removesuffix("_total"), help_text, labels=labels
                    )
                else:
                    family = GaugeMetricFamily(name, help_text, labels=labels)
                for sample_labels, value in samples:
                    family.add_metric([sample_labels.get(key, "") for key in labels], value)
                yield family

    return AppCollector()


def register_collector(app: AppProbe, registry: Any = None) -> Any:
    """Expose `app`'s metrics through prometheus-client's `registry` (default: the global)."""
    try:
        from prometheus_client import REGISTRY
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Prometheus metrics need prometheus-client: pip install 'aiosqsworker[prometheus]'"
        ) from exc
    collector = _collector(app)
    (registry if registry is not None else REGISTRY).register(collector)
    return collector


def _exposition(app: AppProbe) -> Callable[[], bytes] | None:
    """A function rendering the metrics page, or None without prometheus-client."""
    try:
        from prometheus_client import CollectorRegistry, generate_latest
    except ImportError:
        return None
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_collector(app))
    return lambda: bytes(generate_latest(registry))


def _build_web_app(app: AppProbe) -> web.Application:
    render = _exposition(app)

    async def metrics(request: web.Request) -> web.Response:
        if render is None:
            return web.Response(
                status=503,
                text="metrics need prometheus-client: pip install 'aiosqsworker[prometheus]'\n",
            )
        return web.Response(body=render(), content_type="text/plain", charset="utf-8")

    async def healthz(request: web.Request) -> web.Response:
        ok, why = app.health()
        return web.Response(status=200 if ok else 503, text=f"{'ok' if ok else 'stalled'}: {why}\n")

    async def readyz(request: web.Request) -> web.Response:
        ok, why = app.ready()
        return web.Response(
            status=200 if ok else 503, text=f"{'ready' if ok else 'not ready'}: {why}\n"
        )

    web_app = web.Application()
    web_app.router.add_get("/metrics", metrics)
    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_get("/readyz", readyz)
    return web_app


async def serve_metrics(
    app: AppProbe,
    *,
    host: str = "127.0.0.1",
    port: int = 9090,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve /metrics, /healthz and /readyz until cancelled; reports the bound port."""
    runner = web.AppRunner(_build_web_app(app), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            raise ConfigurationError(
                f"cannot serve metrics on {host}:{port}: {why}. Another process "
                "holds the port (a worker still draining, say): stop it, or choose another "
                "--metrics-port"
            ) from None
        bound = int(runner.addresses[0][1]) if runner.addresses else port
        logger.info("metrics and health on http://%s:%d (/metrics /healthz /readyz)", host, bound)
        task_status.started(bound)
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()
