"""The worker: one SQS client and every consumer's pipeline, inside one task group.

It has an explicit state (`WorkerState`) and no knowledge of signals: whoever owns the
process (the runner, or the embedding service) calls `request_stop`.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskStatus

from ._config import AppConfig
from ._consumer.leasethread import LeaseThread
from ._consumer.pipeline import Pipeline
from ._consumer.procpool import ProcessPool
from ._consumer.queue import QueueInfo
from ._consumer.receiver import MAX_POLLS
from ._consumer.stats import ConsumerStatistics
from ._consumer.timeouts import code_of
from ._errors import AioSQSWorkerError, SQSError
from ._producer import BatchingSender, PayloadSending, QueueUrls, SendOptions
from ._registry import ConsumerSpec
from ._run.watchdog import LoopWatchdog
from ._sqs.base import SignedClient, SQSClient
from ._sqs.open import open_payload_store, open_sqs_client
from ._sqs.payloads import PayloadStore
from ._text import plural
from .tracing import with_trace_context

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["FlowControls", "StopRequest", "Worker", "WorkerState"]

logger = logging.getLogger("aiosqsworker")


@dataclass(slots=True)
class StopRequest:
    """Whether a stop was asked for a run, and whether by force: one per run.

    `App.stop()` before a run has begun files it here, and the run honours it as soon as it
    has started; during the run, `Worker.request_stop` files it too.
    """

    asked: bool = False
    forced: bool = False

    def ask(self, *, force: bool) -> None:
        self.asked = True
        self.forced = self.forced or force


class FlowControls:
    """Pause and concurrency asked for per consumer (`App.pause`, `resume`,
    `set_concurrency`): their one record, and the one way they reach the pipelines.

    The App keeps one for its whole life and hands it to each run's `Worker`, which attaches
    its pipelines: an ask then reaches a running pipeline at once, and one made before a run
    (or left by the last one) is applied as the next run builds its pipelines. The state in
    force is the pipelines' own (`Flow.paused`, `Slots.concurrency`); this is what was asked.
    """

    __slots__ = ("_concurrency", "_paused", "_pipelines")

    def __init__(self) -> None:
        self._paused: set[str] = set()
        self._concurrency: dict[str, int] = {}
        self._pipelines: Sequence[Pipeline] = ()

    def attach(self, pipelines: Sequence[Pipeline]) -> None:
        """Where asks go from now on: a run's pipelines (its list, filled as they are built)."""
        self._pipelines = pipelines

    def paused(self, name: str) -> bool:
        return name in self._paused

    def concurrency(self, name: str) -> int | None:
        """The concurrency asked for consumer `name`, or None: its own setting."""
        return self._concurrency.get(name)

    def pause(self, name: str) -> None:
        self._paused.add(name)
        for pipeline in self._named(name):
            pipeline.pause()

    def resume(self, name: str) -> None:
        self._paused.discard(name)
        for pipeline in self._named(name):
            pipeline.resume()

    def set_concurrency(self, name: str, concurrency: int) -> None:
        self._concurrency[name] = concurrency
        for pipeline in self._named(name):
            pipeline.set_concurrency(concurrency)

    def _named(self, name: str) -> list[Pipeline]:
        return [pipeline for pipeline in self._pipelines if pipeline.name == name]


class WorkerState(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


def _connections_needed(specs: Sequence[ConsumerSpec]) -> int:
    # Every open long poll holds a connection; deletes, extensions and releases need some too.
    # The widest polling any concurrency can reach, so that a live change never outgrows the
    # pool (connections open only when used).
    return sum(MAX_POLLS + 24 for _ in specs)


class Worker:
    """Runs a set of consumers until stopped."""

    def __init__(
        self,
        config: AppConfig,
        specs: Sequence[ConsumerSpec],
        stop: StopRequest | None = None,
        *,
        controls: FlowControls | None = None,
    ) -> None:
        if not specs:
            raise AioSQSWorkerError(
                "no consumers to run: decorate a handler with @consumer(...) or "
                "@app.consumer(...) first"
            )
        self.config = config
        self.specs = list(specs)
        self.state = WorkerState.NEW
        self.stop = stop if stop is not None else StopRequest()
        self._pipelines: list[Pipeline] = []
        self._client: SQSClient | None = None
        self._sender: BatchingSender | None = None
        self._urls: QueueUrls | None = None
        self._fatal: AioSQSWorkerError | None = None
        self._exit_request: BaseException | None = None
        #: Pause and concurrency asked for: applied to the pipelines as they are built, and
        #: to the built ones at once.
        self.controls = controls if controls is not None else FlowControls()
        self.controls.attach(self._pipelines)

    def statistics(self) -> dict[str, ConsumerStatistics]:
        return {pipeline.name: pipeline.statistics() for pipeline in self._pipelines}

    def paused_consumers(self) -> list[str]:
        return [pipeline.name for pipeline in self._pipelines if pipeline.paused]

    def open_breakers(self) -> list[str]:
        """The consumers whose circuit breaker is open or half-open (a dependency down)."""
        return [pipeline.name for pipeline in self._pipelines if pipeline.breaker_open]

    async def send(self, queue: str, body: object, **options: Unpack[SendOptions]) -> str:
        """Send through the worker's client (see `BatchingSender.send`)."""
        if self._urls is None or self._sender is None:
            raise AioSQSWorkerError(
                "app.send() needs a running app: call it inside `async with app:` or while "
                "`await app.run()` runs, or use aiosqsworker.Producer on its own"
            )
        options["attributes"] = with_trace_context(options.get("attributes"))
        return await self._sender.send(await self._urls.get(queue), body, **options)

    async def backlog(self) -> dict[str, int]:
        """Each consumer's queue depth (ApproximateNumberOfMessages); unreachable ones left out."""
        return await self._queue_counts(("ApproximateNumberOfMessages",))

    async def queue_totals(self) -> dict[str, int]:
        """Each consumer's visible + in-flight + delayed messages, as SQS counts them."""
        return await self._queue_counts(
            (
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            )
        )

    async def _queue_counts(self, names: tuple[str, ...]) -> dict[str, int]:
        counts: dict[str, int] = {}
        if self._client is None:
            return counts
        for pipeline in self._pipelines:
            try:
                attributes = await self._client.get_queue_attributes(pipeline.queue.url)
            except SQSError:
                continue
            counts[pipeline.name] = sum(int(attributes.get(name, 0)) for name in names)
        return counts

    def stalled_consumers(self) -> list[str]:
        """Consumers whose polling has silently stopped (for a liveness probe)."""
        return [pipeline.name for pipeline in self._pipelines if pipeline.stalled()]

    @property
    def forced(self) -> bool:
        return self.stop.forced

    def request_stop(self, *, force: bool = False) -> None:
        """Begin a graceful shutdown; `force` also cancels running handlers."""
        self.stop.ask(force=force)
        if self.state in (WorkerState.RUNNING, WorkerState.STARTING):
            self.state = WorkerState.STOPPING
        for pipeline in self._pipelines:
            pipeline.request_stop(force=force)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, check every queue, consume until stopped, then drain.

        Raises the framework's own errors (`QueueNotFoundError`, `CredentialsError`, ...)
        for what no retry can cure.
        """
        self.state = WorkerState.STARTING
        try:
            async with AsyncExitStack() as stack:
                longest_wait = max(spec.config.wait_time for spec in self.specs)
                client = await open_sqs_client(
                    stack,
                    self.config,
                    max_connections=_connections_needed(self.specs),
                    longest_wait=longest_wait,
                )
                self._client = client
                payloads = open_payload_store(
                    stack,
                    self.config,
                    max_connections=sum(spec.config.concurrency for spec in self.specs) + 10,
                )
                self._sender = BatchingSender(
                    client,
                    payloads=PayloadSending(
                        payloads, self.config.payload_bucket, self.config.payload_offload
                    ),
                )
                self._urls = QueueUrls(client)
                processes = None
                if any(spec.run_in == "process" for spec in self.specs):
                    # Children start at the first job; the pool ends after the pipelines.
                    processes = await stack.enter_async_context(ProcessPool(self.config.pool_size))
                lease_thread = None
                limit = self.config.blocked_loop_limit
                if limit is not None and isinstance(client, SignedClient):
                    lease_thread = stack.enter_context(LeaseThread(client, limit=limit))
                await self._build_pipelines(client, payloads, processes, lease_thread)
                if self.config.watchdog is not None:
                    stack.enter_context(self._watchdog(self.config.watchdog))
                async with anyio.create_task_group() as tg:
                    for pipeline in self._pipelines:
                        await tg.start(self._run_pipeline, pipeline)
                    if self.state is WorkerState.STARTING:
                        self.state = WorkerState.RUNNING
                    logger.info(
                        "worker started: %s, endpoint %s (region %s)",
                        plural(len(self._pipelines), "consumer"),
                        client.endpoint.url,
                        client.endpoint.region,
                    )
                    if self.stop.asked:  # asked before the run had begun, or while starting
                        self.request_stop(force=self.stop.forced)
                    task_status.started()
        finally:
            self.state = WorkerState.STOPPED
            self._report_abandoned_threads()
        if self._fatal is not None:
            raise self._fatal
        logger.info("worker stopped")
        if self._exit_request is not None:
            raise self._exit_request

    def _report_abandoned_threads(self) -> None:
        """One line naming the ``def`` handlers whose abandoned threads outlive the run."""
        left = {
            pipeline.spec.label: pipeline.counters.abandoned_threads
            for pipeline in self._pipelines
            if pipeline.counters.abandoned_threads
        }
        if left:
            logger.warning(
                "the worker has stopped, leaving %s it abandoned still running (a thread "
                "cannot be stopped): %s. python -m aiosqsworker exits without waiting for them",
                plural(sum(left.values()), "handler thread"),
                ", ".join(f"{label} ({count})" for label, count in left.items()),
            )

    def _watchdog(self, threshold: float) -> LoopWatchdog:
        pipelines = {pipeline.name: pipeline for pipeline in self._pipelines}
        handlers = {
            code: pipeline.name
            for pipeline in self._pipelines
            if (code := code_of(pipeline.spec.handler)) is not None
        }

        def count(consumer: str | None, seconds: float) -> None:
            pipeline = pipelines.get(consumer) if consumer is not None else None
            if pipeline is not None:
                pipeline.counters.loop_blocks += 1
                pipeline.counters.loop_blocked_seconds += seconds

        return LoopWatchdog(threshold, handlers, count)

    async def _build_pipelines(
        self,
        client: SQSClient,
        payloads: PayloadStore,
        processes: ProcessPool | None,
        lease_thread: LeaseThread | None,
    ) -> None:
        for spec in self.specs:
            queue = await QueueInfo.fetch(client, spec.config)
            self._pipelines.append(
                Pipeline(
                    spec,
                    client,
                    queue,
                    shutdown_timeout=self.config.shutdown_timeout,
                    middleware=self.config.middleware,
                    on_exit=self._handler_asked_to_exit,
                    payloads=payloads,
                    payload_bucket=self.config.payload_bucket,
                    delete_payloads=self.config.delete_payloads,
                    processes=processes,
                    lease_thread=lease_thread,
                    concurrency=self.controls.concurrency(spec.name),
                    paused=self.controls.paused(spec.name),
                    send=self.send,
                    message_ages=self.config.message_ages,
                )
            )

    def _handler_asked_to_exit(self, request: BaseException) -> None:
        """A handler raised SystemExit or KeyboardInterrupt: its message has failed; drain
        gracefully, then raise it from `run` so that the process ends as it asked."""
        if self._exit_request is None:
            self._exit_request = request
            logger.warning(
                "a handler raised %s: stopping the worker gracefully", type(request).__name__
            )
            self.request_stop()

    async def _run_pipeline(
        self, pipeline: Pipeline, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            await pipeline.run(task_status=task_status)
        except AioSQSWorkerError as exc:
            # What no back-off cures (a deleted queue, refused credentials) stops every
            # consumer gracefully, then surfaces as the worker's error.
            logger.error("[%s] stopping the worker: %s", pipeline.name, exc)
            self._fatal = self._fatal or exc
            self.request_stop()
