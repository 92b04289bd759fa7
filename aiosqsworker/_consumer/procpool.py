"""The app's process pool: where ``run_in="process"`` handlers run, one job per child at a time.

Each child is a fresh interpreter (the ``spawn`` start method: safe beside the parent's
threads, and no process-wide multiprocessing state is changed) joined to the parent by a
pipe of its own. A job is the handler and its arguments, pickled (the handler by reference:
the child imports its module); the answer is what it returned, or the exception it raised
with its traceback text.

`concurrent.futures.ProcessPoolExecutor` breaks as a whole when one child dies. Here each
child stands alone:

- a child that dies during a job (a crash, the OOM killer) fails that job only, with
  `HandlerProcessError`; the next job starts a new child in its place;
- a job past its `time_limit` (the consumer's `timeout=`, counted from the moment a child
  has it), or whose caller is cancelled (a lost lease, a forced stop), ends for real: its
  child is killed, and replaced the same way;
- the pool starts children at the first jobs, never more than `size`, and `aclose` ends the
  idle ones (the running ones have had the shutdown's grace period by then).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import anyio

from .._errors import HandlerProcessError
from .._text import public_name
from .timeouts import TimeLimit, definition_of

__all__ = ["ProcessPool", "RemoteTraceback", "describe_exit", "in_handler_process"]

logger = logging.getLogger("aiosqsworker.processes")

#: The child's first word: it has imported what it needs and waits for jobs.
_READY = b"ready"
#: An empty job asks the child to exit.
_STOP = b""
#: The name of every child process (`multiprocessing.current_process().name` in it).
CHILD_NAME = "aiosqsworker-handler"
#: How long a child may take to start, and to exit when asked.
START_TIMEOUT = 60.0
EXIT_TIMEOUT = 5.0


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a child process, as the child printed it.

    Set as the `__cause__` of the exception the parent raises in its place, so that logs
    and failure records show where the handler failed, not where the answer was read.
    """

    def __init__(self, text: str, frames: Sequence[tuple[str, int, str]] = ()) -> None:
        super().__init__(text)
        self.text = text
        self.frames = [
            traceback.FrameSummary(filename, lineno, name, lookup_line=False)
            for filename, lineno, name in frames
        ]

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


def describe_exit(exitcode: int | None) -> str:
    """How a child ended, in words: ``killed by SIGKILL`` or ``exit code 3``."""
    if exitcode is None:
        return "exit status unknown"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


# The child's side.


def in_handler_process() -> bool:
    """Whether this is one of the pool's children (which must never run an app itself)."""
    return multiprocessing.current_process().name == CHILD_NAME


def _serve(conn: Connection) -> None:
    """A child's life: answer jobs until asked to stop or until the parent is gone."""
    # The parent decides when its children end: a session of its own keeps what is sent to
    # the worker's terminal or process group (Ctrl-C, a hangup) from ending a job mid-way.
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn.send_bytes(_READY)
    while True:
        try:
            job = conn.recv_bytes()
        except EOFError:  # the parent is gone: nobody is left to answer
            return
        if job == _STOP:
            return
        conn.send_bytes(_run_job(job))


def _run_job(job: bytes) -> bytes:
    try:
        function, args, keep_result = pickle.loads(job)
        result = function(*args)
    except BaseException as exc:  # noqa: BLE001 - every way a handler ends is reported back
        return _error_reply(exc)
    try:
        return pickle.dumps(("ok", result if keep_result else None))
    except Exception as exc:  # noqa: BLE001 - an answer that cannot travel is a failure
        return _error_reply(
            HandlerProcessError(
                f"the handler's return value ({type(result).__name__}) cannot be sent back "
                f"from its process ({exc}): return None, or from a batch handler the failed "
                "messages or their ids"
            )
        )


def _error_reply(exc: BaseException) -> bytes:
    text = "".join(traceback.format_exception(exc))
    frames = [(f.filename, f.lineno or 0, f.name) for f in traceback.extract_tb(exc.__traceback__)]
    kind = public_name(type(exc))
    if not isinstance(exc, Exception):  # SystemExit, KeyboardInterrupt: not the parent's to get
        exc = HandlerProcessError(f"the handler raised {kind} in its process")
    blob: bytes | None
    try:
        blob = pickle.dumps(exc)
        pickle.loads(blob)  # some exceptions pickle but cannot be rebuilt from their args
    except Exception:  # noqa: BLE001 - then the parent gets a stand-in with the same text
        blob = None
    return pickle.dumps(("error", blob, kind, _safe_str(exc), text, frames))


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not lose the failure
        return "<exception str() failed>"


# The parent's side.


@dataclass(eq=False)
class _Child:
    process: BaseProcess
    conn: Connection

    async def exchange(self, payload: bytes) -> bytes:
        """Send a job and wait for its answer; EOFError or OSError if the child died."""
        self.conn.send_bytes(payload)
        await anyio.wait_readable(self.conn)
        return self.conn.recv_bytes()


class ProcessPool:
    """Up to `size` child processes running handlers, started as jobs come."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.started = 0  # children started, replacements included
        self._context = multiprocessing.get_context("spawn")
        self._slots = anyio.Semaphore(size)
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()
        self._closed = False

    async def __aenter__(self) -> ProcessPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def run(
        self,
        function: Callable[..., object],
        args: tuple[Any, ...],
        *,
        keep_result: bool = True,
        label: str = "handler",
        time_limit: float | None = None,
    ) -> object:
        """`function(*args)` in a child: its result, or the exception it raised.

        Raises `HandlerProcessError` when the job cannot be sent, its answer cannot be
        read, or its child dies, and `TimeoutError` when the child has worked on it for
        `time_limit` seconds (waiting for a free child, or for one to start, does not count).
        Cancelled or timed out, the job's child is killed.
        """
        try:
            payload = pickle.dumps((function, args, keep_result))
        except Exception as exc:  # noqa: BLE001 - what cannot be pickled is the caller's failure
            raise HandlerProcessError(
                f"cannot send the call of {label} to a process: {exc}. Its arguments must be "
                "picklable (a body type defined at the top level of a module)"
            ) from None
        async with self._slots:
            child = await self._checkout()
            self._busy.add(child)
            try:
                with anyio.fail_after(time_limit):
                    answer = await child.exchange(payload)
            except TimeoutError:
                assert time_limit is not None
                timeout = TimeLimit(time_limit, label, function).error(definition_of(function))
                logger.error("%s: its process is killed, and a new one takes its place", timeout)
                await self._end(child, kill=True)
                raise timeout from timeout.__cause__
            except (EOFError, OSError):
                exitcode = await self._end(child, kill=True)
                raise HandlerProcessError(
                    f"the process running {label} died ({describe_exit(exitcode)}); a new "
                    "process takes its place"
                ) from None
            except BaseException:
                logger.warning(
                    "%s was cancelled (lost lease or forced stop): its process is killed, "
                    "and a new one takes its place",
                    label,
                )
                await self._end(child, kill=True)
                raise
            self._busy.discard(child)
            self._idle.append(child)
        return _unpack(answer, label)

    async def aclose(self) -> None:
        """End every child: idle ones are asked to exit, any still busy are killed."""
        self._closed = True
        idle, self._idle = self._idle, []
        busy, self._busy = list(self._busy), set()
        with anyio.CancelScope(shield=True):
            for child in idle:
                await self._end(child, kill=False)
            for child in busy:
                await self._end(child, kill=True)

    async def _checkout(self) -> _Child:
        if self._closed:
            raise HandlerProcessError("the process pool is shut down: the app is stopping")
        while self._idle:
            child = self._idle.pop()
            if child.process.is_alive():
                return child
            exitcode = await self._end(child, kill=True)
            logger.warning(
                "an idle handler process died (%s): a new one takes its place",
                describe_exit(exitcode),
            )
        return await self._start()

    async def _start(self) -> _Child:
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_serve, args=(child_end,), name=CHILD_NAME, daemon=True
        )
        try:
            await anyio.to_thread.run_sync(process.start)
        finally:
            child_end.close()  # the child has its own copy: EOF reaches us when it dies
        child = _Child(process, parent_end)
        try:
            with anyio.fail_after(START_TIMEOUT):
                await anyio.wait_readable(parent_end)
            if parent_end.recv_bytes() != _READY:
                raise EOFError
        except (EOFError, OSError, TimeoutError):
            exitcode = await self._end(child, kill=True)
            raise HandlerProcessError(
                f"a handler process did not start ({describe_exit(exitcode)})"
            ) from None
        except BaseException:
            await self._end(child, kill=True)
            raise
        self.started += 1
        logger.info("started handler process %d (pid %s)", self.started, process.pid)
        return child

    async def _end(self, child: _Child, *, kill: bool) -> int | None:
        """Stop a child (at once with `kill`) and reap it; its exit code."""
        self._busy.discard(child)
        process = child.process
        with anyio.CancelScope(shield=True):
            if not kill:
                try:
                    child.conn.send_bytes(_STOP)
                except OSError:
                    kill = True  # it is gone already
            if kill and process.is_alive():
                process.kill()
            await anyio.to_thread.run_sync(process.join, EXIT_TIMEOUT)
            if process.is_alive():
                process.kill()
                await anyio.to_thread.run_sync(process.join, EXIT_TIMEOUT)
        child.conn.close()
        exitcode = process.exitcode
        if exitcode is not None:
            process.close()
        return exitcode


def _unpack(answer: bytes, label: str) -> object:
    """What the child's answer stands for: the result, or the exception raised here."""
    try:
        kind, *rest = pickle.loads(answer)
    except Exception as exc:  # noqa: BLE001 - an answer that does not load is a failure
        raise HandlerProcessError(f"cannot read the answer of {label}: {exc}") from None
    if kind == "ok":
        return rest[0]
    blob, type_name, text, traceback_text, frames = rest
    error: object = None
    if blob is not None:
        try:
            error = pickle.loads(blob)
        except Exception:  # noqa: BLE001 - fall back to the stand-in below
            error = None
    if not isinstance(error, BaseException):
        error = HandlerProcessError(f"{type_name}: {text}")
    raise error from RemoteTraceback(traceback_text, frames)
