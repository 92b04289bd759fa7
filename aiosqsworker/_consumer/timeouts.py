"""A handler's `timeout=`: the error its message fails with, saying how long and where.

A timeout is anyio's cancellation, which by itself says nothing: a bare `TimeoutError` whose
traceback ends in anyio's ``fail_at``. Here it becomes ``TimeoutError("handler orders.handle of
consumer 'orders' timed out after 5 s (timeout=5)")`` whose cause, `StuckAt`, holds the stack
of the handler at that moment, from the handler's own frame inwards. Logs print that stack;
the dead-letter failure record's ``where`` is its innermost frame in the user's code (not in
the standard library or an installed package), so it points at the handler's line.

Where the stack comes from depends on where the handler runs:

- on the loop (`TimeLimit.around`): the cancellation's own traceback;
- in a thread (`threads.py`): the thread's current frames, as it runs on;
- in a process (`procpool.py`): the child is killed, so the handler's definition.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import sysconfig
import traceback
import types
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from .._registry import ConsumerSpec

__all__ = [
    "StuckAt",
    "TimeLimit",
    "code_of",
    "definition_of",
    "handler_stack",
    "is_timeout",
    "stack_of_thread",
    "time_limit_of",
    "timeout_site",
]

Call = Callable[[Any], Awaitable[object]]

#: Where the code that is not the user's lives: the standard library, installed packages.
_LIBRARY_PATHS = tuple(
    {
        str(Path(path).resolve())
        for name in ("stdlib", "platstdlib", "purelib", "platlib")
        if (path := sysconfig.get_paths().get(name))
    }
)
_FRAMEWORK_PATH = str(Path(__file__).resolve().parent.parent)


def code_of(handler: object) -> types.CodeType | None:
    """The code object that runs when `handler` is called (a function, partial or object)."""
    while isinstance(handler, functools.partial):
        handler = handler.func
    code = getattr(handler, "__code__", None)
    if code is None:
        call = getattr(type(handler), "__call__", None)  # noqa: B004 - the method, not callable()
        code = getattr(call, "__code__", None)
    return code if isinstance(code, types.CodeType) else None


def definition_of(handler: object) -> list[traceback.FrameSummary]:
    """The handler's ``def`` line, as a one-frame stack (empty if it has no code)."""
    code = code_of(handler)
    if code is None:
        return []
    return [
        traceback.FrameSummary(
            code.co_filename, code.co_firstlineno, code.co_qualname, lookup_line=False
        )
    ]


def handler_stack(
    frames: Sequence[traceback.FrameSummary], handler: object
) -> list[traceback.FrameSummary]:
    """`frames` (outermost first) from the handler's own frame inwards; the handler's
    definition when it is not among them (the time ran out before it was called)."""
    code = code_of(handler)
    if code is not None:
        for index, frame in enumerate(frames):
            if frame.filename == code.co_filename and frame.name == code.co_name:
                return list(frames[index:])
    return definition_of(handler)


def stack_of_thread(ident: int | None) -> list[traceback.FrameSummary]:
    """The stack of a running thread, outermost first (empty if it has ended)."""
    frame = sys._current_frames().get(ident) if ident is not None else None
    return traceback.extract_stack(frame) if frame is not None else []


def _is_users(frame: traceback.FrameSummary) -> bool:
    path = str(Path(frame.filename).resolve()) if frame.filename[:1] != "<" else ""
    return bool(path) and not path.startswith((*_LIBRARY_PATHS, _FRAMEWORK_PATH))


class StuckAt(Exception):
    """Where a handler was when its time ran out: the cause of its `TimeoutError`."""

    def __init__(self, frames: Sequence[traceback.FrameSummary]) -> None:
        self.frames = list(frames)
        super().__init__(self.frames)

    @property
    def site(self) -> traceback.FrameSummary | None:
        """The innermost frame in the user's own code (else the innermost of all)."""
        users = [frame for frame in self.frames if _is_users(frame)]
        return users[-1] if users else (self.frames[-1] if self.frames else None)

    def __str__(self) -> str:
        if not self.frames:
            return "where the handler was is not known"
        stack = "".join(traceback.format_list(self.frames))
        return f"the handler was here when its time ran out:\n{stack}"


def is_timeout(error: BaseException | None) -> bool:
    """Whether `error` is a handler's `timeout=` running out (not a TimeoutError it raised)."""
    return isinstance(error, TimeoutError) and isinstance(error.__cause__, StuckAt)


def timeout_site(error: BaseException) -> str | None:
    """``file:line in function`` of a timed-out handler, for a log line."""
    cause = error.__cause__
    site = cause.site if isinstance(cause, StuckAt) else None
    return f"{site.filename}:{site.lineno} in {site.name}" if site is not None else None


@dataclass(frozen=True, slots=True)
class TimeLimit:
    """A handler's `timeout=`, and what its error says: `label` names the handler."""

    seconds: float
    label: str
    handler: object = None

    def error(self, frames: Sequence[traceback.FrameSummary]) -> TimeoutError:
        """The failure of a call that ran out of time, `frames` being where it was."""
        error = TimeoutError(
            f"{self.label} timed out after {self.seconds:g} s (timeout={self.seconds:g})"
        )
        error.__cause__ = StuckAt(handler_stack(frames, self.handler))
        return error

    def around(self, call: Call) -> Call:
        """`call` failing with `error` once it has run for `seconds`."""

        async def time_limited(item: Any) -> object:
            frames: list[traceback.FrameSummary] = []
            with anyio.CancelScope(deadline=anyio.current_time() + self.seconds) as scope:
                try:
                    return await call(item)
                except asyncio.CancelledError as cancelled:
                    if scope.cancel_called:  # our deadline: where was the handler?
                        frames = traceback.extract_tb(cancelled.__traceback__)
                    raise
            raise self.error(frames)  # only reached when the deadline cancelled the call

        return time_limited


def time_limit_of(spec: ConsumerSpec) -> TimeLimit | None:
    """The time limit `call.handler_call` puts around a call of `spec`
    (`ConsumerSpec.slot_timeout`)."""
    seconds = spec.slot_timeout
    return None if seconds is None else TimeLimit(seconds, spec.label, spec.handler)
