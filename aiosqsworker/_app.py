"""App: the consumers of a service and how to run them, embedded or standalone."""

from __future__ import annotations

import difflib
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from anyio.abc import TaskGroup

from ._config import (
    AppConfig,
    ClientName,
    ConsumerSettings,
    EnvironmentSettings,
    Middleware,
    PayloadOffload,
    check_concurrency,
    checked_settings,
)
from ._consumer.procpool import in_handler_process
from ._consumer.stats import ConsumerStatistics
from ._errors import AioSQSWorkerError, ConfigurationError, single_error
from ._producer import SendOptions
from ._registry import ConsumerSpec, Registry, select_consumers
from ._run.signals import capture_signals
from ._sqs.base import SQSClient
from ._sqs.credentials import DEFAULT_OUTAGE_LIMIT
from ._worker import FlowControls, StopRequest, Worker, WorkerState

if TYPE_CHECKING:
    from typing import Self

    from typing_extensions import Unpack

__all__ = ["App"]

H = TypeVar("H", bound=Callable[..., Any])


class App:
    """A set of consumers sharing one SQS client and one lifecycle.

    ```python
    app = App(region="eu-west-1")

    @app.consumer("orders", concurrency=50)
    async def handle(message: Message) -> None: ...

    async with app:          # consumers run in the background of this block
        await serve_http()
    # or: await app.run()    # until app.stop() is called or the task is cancelled
    ```

    `client` picks how it talks to SQS: ``"fast"`` (the default), ``"botocore"`` or
    ``"aiohttp"``, or an `SQSClient` instance used as it is, such as
    ``aiosqsworker.testing.MemorySQS()`` for tests that need no server.

    A plain ``def`` handler runs in a worker thread, and with ``run_in="process"`` in the
    app's pool of `processes` child processes (one per CPU by default), started at the
    first such message and ended with the app. The `watchdog` warns, naming the handler,
    when the event loop stays blocked longer than that many seconds; meanwhile a thread
    keeps the leases alive, for at most `blocked_loop_limit` seconds.

    Embedding never touches signal handlers; `run(handle_signals=True)` (what the CLI uses)
    turns SIGTERM/SIGINT into a graceful stop, and a second one into a forced stop.

    The settings are those of `AppConfig`: the S3 ones (`payload_bucket`, `payload_offload`,
    `delete_payloads`, `s3_endpoint_url`) are for large messages.

    Flow control at run time (`pause`, `resume`, `set_concurrency`) are plain methods: each
    takes effect at once and returns; running handlers are never cancelled by them, and
    `statistics()` shows when they have finished.
    """

    @checked_settings("App")
    def __init__(
        self,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        profile: str | None = None,
        shutdown_timeout: float = 30.0,
        client: ClientName | SQSClient = "fast",
        middleware: Sequence[Middleware] = (),
        processes: int | None = None,
        watchdog: float | None = 1.0,
        blocked_loop_limit: float | None = 300.0,
        consumers: Iterable[ConsumerSpec] = (),
        concurrency: int | None = None,
        only: Sequence[str] | None = None,
        payload_bucket: str | None = None,
        payload_offload: PayloadOffload = "over-limit",
        delete_payloads: bool = False,
        s3_endpoint_url: str | None = None,
        message_ages: bool = False,
        credentials_outage_limit: float = DEFAULT_OUTAGE_LIMIT,
    ) -> None:
        self.config = AppConfig(
            region=region,
            endpoint_url=endpoint_url,
            profile=profile,
            shutdown_timeout=shutdown_timeout,
            client=client,
            middleware=middleware,
            concurrency=concurrency,
            only=only,
            payload_bucket=payload_bucket,
            payload_offload=payload_offload,
            delete_payloads=delete_payloads,
            s3_endpoint_url=s3_endpoint_url,
            processes=processes,
            watchdog=watchdog,
            message_ages=message_ages,
            credentials_outage_limit=credentials_outage_limit,
            blocked_loop_limit=blocked_loop_limit,
        )
        self._registry = Registry()
        for spec in consumers:
            self._registry.add(spec)
        self._worker: Worker | None = None
        self._task_group: TaskGroup | None = None
        self._next_stop = StopRequest()  # a stop() that came before the next run
        # Flow controls outlive a run: a consumer paused when one run ends starts the next
        # paused, and one paused before the first run starts paused. Each run's worker
        # applies them (`FlowControls`); the App only names the consumers.
        self._controls = FlowControls()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **settings: Any) -> Self:
        """An App configured like ``python -m aiosqsworker``: from ``AIOSQSWORKER_*`` variables.

        `settings` are the App's own (the keyword arguments of `App`); the environment's
        ``AIOSQSWORKER_SHUTDOWN_TIMEOUT``, ``AIOSQSWORKER_CLIENT``,
        ``AIOSQSWORKER_CONCURRENCY`` and ``AIOSQSWORKER_CONSUMERS`` replace them, as they
        replace an App's settings on the command line. Region, endpoint and credentials
        come from the ``AWS_*`` variables either way. An invalid value raises
        `ConfigurationError` here.

        ```python
        app = App.from_env(shutdown_timeout=10)  # AIOSQSWORKER_SHUTDOWN_TIMEOUT=60 wins
        ```
        """
        overrides = EnvironmentSettings.read(environ).app_settings()
        return cls(**{**settings, **overrides})

    @property
    def consumers(self) -> list[ConsumerSpec]:
        """Every registered consumer, with its own settings."""
        return list(self._registry)

    @property
    def state(self) -> WorkerState:
        return self._worker.state if self._worker is not None else WorkerState.NEW

    @property
    def forced(self) -> bool:
        """Whether the last run was stopped by force (handlers cancelled)."""
        return self._worker is not None and self._worker.forced

    def consumer(self, queue: str, **settings: Unpack[ConsumerSettings]) -> Callable[[H], H]:
        """Register a handler for `queue`; the settings are those of `@consumer`."""
        return self._registry.decorator(queue, **settings)

    def statistics(self) -> dict[str, ConsumerStatistics]:
        """A snapshot of every consumer's counters, by consumer name (empty before a run)."""
        return self._worker.statistics() if self._worker is not None else {}

    async def send(self, queue: str, body: object, **options: Unpack[SendOptions]) -> str:
        """Send a message through the running app's client; returns its MessageId.

        `body` may be text, JSON-serializable data, a dataclass or a pydantic model; the
        options are those of `SendOptions` (attributes, delay, group_id, deduplication_id).
        Concurrent sends share SendMessageBatch calls. A message over its queue's
        MaximumMessageSize goes through S3 with a `payload_bucket`, else it is refused
        before anything is sent; with OpenTelemetry installed, the current trace context
        goes along (``traceparent``).
        """
        if self._worker is None:
            raise AioSQSWorkerError(
                "app.send() needs a running app: call it inside `async with app:` or while "
                "`await app.run()` runs, or use aiosqsworker.Producer on its own"
            )
        return await self._worker.send(queue, body, **options)

    async def backlog(self) -> dict[str, int]:
        """Each consumer's queue depth as SQS approximates it (empty when not running)."""
        return await self._worker.backlog() if self._worker is not None else {}

    async def queue_totals(self) -> dict[str, int]:
        """Each consumer's visible + in-flight + delayed messages (empty when not running)."""
        return await self._worker.queue_totals() if self._worker is not None else {}

    def health(self) -> tuple[bool, str]:
        """Liveness: (False, why) when a consumer's polling has silently stalled, or the app
        was never started (a service that forgot `async with app:` consumes nothing)."""
        if self._worker is None:
            return False, "state new: the app was never started (async with app, or app.run())"
        if self._worker.state is not WorkerState.RUNNING:
            return True, f"state {self.state.value}"
        stalled = self._worker.stalled_consumers()
        if stalled:
            return False, "no completed poll for over twice the wait time: " + ", ".join(stalled)
        return True, "polling"

    def ready(self) -> tuple[bool, str]:
        """Readiness: (True, ...) once every queue was found and consumers run, until a stop.

        A paused consumer keeps its app ready (it is idle on purpose); the text names it. A
        consumer whose circuit breaker is open (a dependency down) makes the app not ready
        until the breaker closes: it cannot do its work.
        """
        state = self.state
        why = f"state {state.value}"
        paused = self._worker.paused_consumers() if self._worker is not None else []
        if paused:
            why += "; paused: " + ", ".join(paused)
        tripped = self._worker.open_breakers() if self._worker is not None else []
        if tripped:
            why += "; circuit breaker open: " + ", ".join(tripped)
        return state is WorkerState.RUNNING and not tripped, why

    def pause(self, name: str | None = None) -> None:
        """Pause one consumer (by its name) or, without a name, every consumer.

        A paused consumer starts no poll and no handler and holds no message: its buffered
        messages, and whatever polls still open bring, are released at once (visible again
        for other workers); running handlers finish and their messages are acknowledged as
        usual. Called before a run, the consumer starts paused. Returns at once.
        """
        for consumer in self._consumer_names(name):
            self._controls.pause(consumer)

    def resume(self, name: str | None = None) -> None:
        """Resume one paused consumer (by its name) or, without a name, every consumer."""
        for consumer in self._consumer_names(name):
            self._controls.resume(consumer)

    def set_concurrency(self, name: str, concurrency: int) -> None:
        """Let consumer `name` run `concurrency` handlers at once, from now on.

        Growing takes effect at once (slots are made as messages arrive, and the polling
        widens with the room). Shrinking never cancels a handler: no new one starts until
        fewer than `concurrency` run. Called before a run, it applies to the run. Returns at
        once.
        """
        check_concurrency(concurrency)
        for consumer in self._consumer_names(name):
            self._controls.set_concurrency(consumer, concurrency)

    def _consumer_names(self, name: str | None) -> list[str]:
        """Every consumer's name for None, else `name`, refused with a hint when unknown."""
        names = [spec.name for spec in self._registry]
        if name is None:
            return names
        if name in names:
            return [name]
        close = difflib.get_close_matches(str(name), names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigurationError(
            f"no consumer is named {name!r}{hint}; the consumers of this app are: "
            + (", ".join(names) or "none yet")
        )

    def stop(self, *, force: bool = False) -> None:
        """Ask a running app to shut down gracefully (or, with `force`, at once).

        Called before a run has begun (say right after ``tg.start_soon(app.run)``), it stops
        that run as soon as it starts.
        """
        if self._worker is not None and self._worker.state is not WorkerState.STOPPED:
            self._worker.request_stop(force=force)
        else:
            self._next_stop.ask(force=force)

    def _new_worker(self) -> Worker:
        if in_handler_process():
            raise AioSQSWorkerError(
                "an App was started in a handler process: the child that runs a "
                "run_in='process' handler imports the script that defines it, and this script "
                "starts the app when imported. Start it under `if __name__ == '__main__':`"
            )
        if self._worker is not None and self._worker.state not in (
            WorkerState.NEW,
            WorkerState.STOPPED,
        ):
            raise AioSQSWorkerError("this App is already running")
        specs = select_consumers(
            self.consumers, only=self.config.only, concurrency=self.config.concurrency
        )
        self._worker = Worker(self.config, specs, stop=self._next_stop, controls=self._controls)
        self._next_stop = StopRequest()
        return self._worker

    async def run(self, *, handle_signals: bool = False) -> None:
        """Consume until `stop()` is called (or a signal comes, with `handle_signals`)."""
        worker = self._new_worker()
        if handle_signals:
            with capture_signals(worker.request_stop):
                await worker.run()
        else:
            await worker.run()

    async def __aenter__(self) -> Self:
        worker = self._new_worker()
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        try:
            await task_group.start(worker.run)
        except BaseException as exc:
            try:
                await task_group.__aexit__(type(exc), exc, exc.__traceback__)
            except BaseExceptionGroup as group:
                raise single_error(group) or group from None
            raise
        self._task_group = task_group
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> bool | None:
        task_group, self._task_group = self._task_group, None
        assert task_group is not None, "__aexit__ without __aenter__"
        self.stop()
        try:
            return await task_group.__aexit__(exc_type, exc, traceback)
        except BaseExceptionGroup as group:
            error = single_error(group)
            if error is None:
                raise
            raise error from None
