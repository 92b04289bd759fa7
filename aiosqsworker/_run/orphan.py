"""A supervised worker that outlives its supervisor drains instead of running on as an orphan.

The supervisor of ``--workers N`` forwards stop signals to its workers. Killed outright
(``kill -9``, the OOM killer) it forwards nothing: its workers would consume on with no one
left to stop them, holding their metrics ports against the next supervisor. So each worker
watches its supervisor, and stops gracefully (as on a first SIGTERM) once it is gone:

- on Linux through a pidfd, which the kernel makes readable the moment the process exits;
- elsewhere, or where ``pidfd_open`` is refused (an old kernel, a seccomp profile), by
  asking for its parent's pid once a second: an orphan is handed to another parent.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import anyio

__all__ = ["POLL_INTERVAL", "watch_supervisor"]

logger = logging.getLogger("aiosqsworker")

#: Seconds between two looks at the parent's pid, where no pidfd can be had.
POLL_INTERVAL = 1.0


def _open_pidfd(pid: int) -> int | None:
    pidfd_open = getattr(os, "pidfd_open", None)  # Linux only
    if pidfd_open is None:
        return None
    try:
        return int(pidfd_open(pid))
    except OSError:  # ENOSYS, EPERM: not here; ESRCH: already gone, which polling sees too
        return None


async def _until_gone(pid: int, *, use_pidfd: bool, interval: float) -> None:
    pidfd = _open_pidfd(pid) if use_pidfd else None
    if pidfd is None:
        while os.getppid() == pid:  # noqa: ASYNC110 - no event tells of a parent's death
            await anyio.sleep(interval)
        return
    try:
        # Checked after the pidfd is open: a parent that died just before is not waited for.
        if os.getppid() == pid:
            await anyio.wait_readable(pidfd)
    finally:
        os.close(pidfd)


async def watch_supervisor(
    pid: int,
    on_gone: Callable[[], None],
    *,
    use_pidfd: bool = True,
    interval: float = POLL_INTERVAL,
) -> None:
    """Call `on_gone()` once process `pid`, this process's parent, has exited.

    Returns after that call; cancel it to stop watching. `use_pidfd=False` watches by
    polling even where a pidfd could be had.
    """
    await _until_gone(pid, use_pidfd=use_pidfd, interval=interval)
    logger.warning("the supervisor (pid %d) is gone: stopping gracefully", pid)
    on_gone()
