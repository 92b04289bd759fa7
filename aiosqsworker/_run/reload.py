"""``--reload``: which files to follow, and the follower (watchfiles, the ``reload`` extra).

`watched_directories` finds where a module's code lives without importing it (importing it
in the supervisor would run its top-level code there too); `file_changes` yields the Python
files that changed, as the supervisor wants them (`FileChanges`).
"""

from __future__ import annotations

import asyncio
import importlib.machinery
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from .._errors import ConfigurationError
from .supervisor import FileChanges

try:
    import watchfiles
except ImportError:  # pragma: no cover - depends on the environment
    watchfiles = None  # type: ignore[assignment]

__all__ = ["file_changes", "watched_directories"]


def watched_directories(target: str, search_path: Sequence[str]) -> list[Path]:
    """Where the code of `target` (``MODULE[:APP]``) lives: its top-level package's
    directory, or, for a module that is a single file, the directory of that file."""
    top = target.partition(":")[0].split(".")[0]
    spec = importlib.machinery.PathFinder.find_spec(top, list(search_path)) if top else None
    if spec is None:
        raise ConfigurationError(
            f"--reload: cannot find module {top!r} to watch: run from the directory that "
            "contains it"
        )
    if spec.submodule_search_locations:
        return [Path(location) for location in spec.submodule_search_locations]
    assert spec.origin is not None, "a module found on a path has a file"
    return [Path(spec.origin).parent]


def file_changes(directories: Sequence[Path]) -> FileChanges:
    """The changes of the Python files under `directories`, in sets (one per burst of edits)."""
    if watchfiles is None:
        raise ConfigurationError("--reload needs watchfiles: pip install 'aiosqsworker[reload]'")
    python_files = watchfiles.PythonFilter()

    async def changes(stop: asyncio.Event) -> AsyncIterator[set[str]]:
        async for batch in watchfiles.awatch(
            *directories, watch_filter=python_files, stop_event=stop
        ):
            yield {path for _, path in batch}

    return changes
