"""What the process side needs of an app: a small protocol, so `_run` never imports `App`.

`App` satisfies it; the runner, the metrics server and the progress line are typed against
it, which keeps the process layer above the engine without a cycle back to `_app`.
"""

from __future__ import annotations

from typing import Protocol

from .._consumer.stats import ConsumerStatistics

__all__ = ["AppProbe", "RunnableApp"]


class AppProbe(Protocol):
    """What probes and reports read: statistics, queue depth, liveness and readiness."""

    def statistics(self) -> dict[str, ConsumerStatistics]: ...

    async def backlog(self) -> dict[str, int]: ...

    async def queue_totals(self) -> dict[str, int]: ...

    def health(self) -> tuple[bool, str]: ...

    def ready(self) -> tuple[bool, str]: ...


class RunnableApp(AppProbe, Protocol):
    """An app the runner can run in its own process and stop on a signal."""

    async def run(self, *, handle_signals: bool = False) -> None: ...

    def stop(self, *, force: bool = False) -> None: ...
