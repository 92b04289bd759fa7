"""The app's process pool: where ``run_in="process"`` handlers run, one job per child at a time.

Each child is a fresh interpreter (the ``spawn`` start method: safe beside the parent's
threads, and no process-wide multiprocessing state is changed) joined to the parent by a
pipe of its own. A job is the handler and its arguments, pickled (the handler by reference:
the child imports its module); the answer is what it returned, or the exception it raised
with its traceback text.

`concurrent.futures.ProcessPoolExecutor` breaks as a whole when one child dies. Here each
child stands alone:

- a child that dies during a job (a crash, the OOM killer) fails that job only, with
  `HandlerProcessError`; the next job starts a new child in its place. The parent watches
  the child's exit itself (a pidfd on Linux), not only the pipe: a process the handler
  forked inherits the pipe and would hold it open after the child died;
- a job past its `time_limit` (the consumer's `timeout=`, counted from the moment a child
  has it), or whose caller is cancelled (a lost lease, a forced stop), ends for real: its
  child is killed, and replaced the same way;
- every child leads a process group of its own, which the processes a handler forks join:
  whenever the pool ends a child it kills that group, so nothing a job started outlives it;
- a child dies with its worker, however the worker dies (SIGKILL, the OOM killer): see
  `die_with_parent`;
- the pool starts children at the first jobs, never more than `size`, and `aclose` ends the
  idle ones (the running ones have had the shutdown's grace period by then).
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from .._errors import HandlerProcessError
from .._text import public_name
from .timeouts import TimeLimit, definition_of

if TYPE_CHECKING:  # multiprocessing is imported when a pool starts, not with the engine
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

__all__ = [
    "ProcessPool",
    "RemoteTraceback",
    "describe_exit",
    "die_with_parent",
    "in_handler_process",
]

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
#: Where the kernel cannot watch for them, how often a child and the parent look for a death
#: (the parent's, seen from the child; the child's, seen from the parent).
DEATH_POLL_INTERVAL = 0.2
#: prctl(2)'s option that asks the kernel for a signal when this process's parent dies.
_PR_SET_PDEATHSIG = 1


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
    # A child is started by multiprocessing's spawn, which has imported it: where it is not
    # imported, this is no child, and the check does not import it.
    multiprocessing = sys.modules.get("multiprocessing")
    return multiprocessing is not None and multiprocessing.current_process().name == CHILD_NAME


def _serve(conn: Connection, parent: int) -> None:
    """A child's life: answer jobs until asked to stop or until the parent is gone."""
    # The parent decides when its children end: a session of its own keeps what is sent to
    # the worker's terminal or process group (Ctrl-C, a hangup) from ending a job mid-way.
    # It also makes this process the leader of a group that what a handler forks joins.
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)
    conn.send_bytes(_READY)
    while True:
        try:
            job = conn.recv_bytes()
        except EOFError:  # the parent is gone: nobody is left to answer
            return
        if job == _STOP:
            return
        conn.send_bytes(_run_job(job))


def die_with_parent(parent: int, *, kernel: bool = True) -> None:
    """End this process with SIGKILL as soon as `parent` (the worker) dies, however it dies.

    A worker killed with SIGKILL (the OOM killer, ``kill -9``) cannot end its children, and
    a child that ran on would finish a job whose message has come back to the queue and runs
    elsewhere. On Linux the kernel sends the signal (``PR_SET_PDEATHSIG``); elsewhere, or
    with `kernel` false, a thread looks for the parent every `DEATH_POLL_INTERVAL` seconds.

    Linux sends it when the *thread* that started this process ends, which is why the pool
    starts its children from the event loop's thread (never from a worker thread, which
    anyio ends after ten idle seconds). Processes a handler forks do not inherit the
    setting: they are in this process's group, which the pool kills when it ends a child,
    but a worker killed outright leaves them to run on (see docs/blocking-and-cpu.md).
    """
    if not (kernel and sys.platform == "linux" and _ask_kernel_for_death_signal()):
        threading.Thread(
            target=_watch_parent, args=(parent,), name="aiosqsworker-parent-watch", daemon=True
        ).start()
    if os.getppid() != parent:  # it died before the watch began: this process is an orphan
        os.kill(os.getpid(), signal.SIGKILL)


def _ask_kernel_for_death_signal() -> bool:
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        result: int = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl here: the thread watches instead
        return False
    return result == 0


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(DEATH_POLL_INTERVAL)
    os.kill(os.getpid(), signal.SIGKILL)


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
    #: A pidfd: readable once the child has exited, and it stays unreaped until we reap it
    #: (so its pid still names its process group). None where there are no pidfds.
    exit_fd: int | None
    #: The pipe and `exit_fd` in one epoll set, which the loop waits on as one descriptor:
    #: readable when there is an answer or the child is gone. None where there is none.
    answer_or_exit: select.epoll | None
    exitcode: int | None = None  # once closed

    @classmethod
    def watch(cls, process: BaseProcess, conn: Connection) -> _Child:
        if sys.platform != "linux":
            return cls(process, conn, None, None)
        try:
            exit_fd = os.pidfd_open(process.pid or 0)
        except OSError:  # a kernel before 5.3, or a sandbox that refuses it
            return cls(process, conn, None, None)
        answer_or_exit = select.epoll()
        answer_or_exit.register(conn.fileno(), select.EPOLLIN)
        answer_or_exit.register(exit_fd, select.EPOLLIN)
        return cls(process, conn, exit_fd, answer_or_exit)

    async def exchange(self, payload: bytes) -> bytes:
        """Send a job and wait for its answer; EOFError or OSError if the child died."""
        self.conn.send_bytes(payload)
        return await self.receive()

    async def receive(self) -> bytes:
        """The child's next message; EOFError if the child exits first.

        Waits for the child's exit as well as for the pipe: a process the handler forked
        has a copy of the pipe, and holds it open after the child died, so EOF may never come.
        """
        if self.answer_or_exit is not None:
            await anyio.wait_readable(self.answer_or_exit.fileno())
        else:
            while not self.has_exited():
                with anyio.move_on_after(DEATH_POLL_INTERVAL):
                    await anyio.wait_readable(self.conn)
                    break
        if self.has_exited():
            self.kill()  # nobody else may write to the pipe: what is in it is all there is
        if not self.conn.poll():
            raise EOFError
        return self.conn.recv_bytes()

    def has_exited(self) -> bool:
        if self.exit_fd is None:
            return self.process.exitcode is not None
        readable, _, _ = select.select([self.exit_fd], [], [], 0)
        return bool(readable)

    async def exited(self) -> None:
        """Return once the child has exited."""
        if self.exit_fd is None:
            while self.process.exitcode is None:  # noqa: ASYNC110 - nothing to wait on here
                await anyio.sleep(DEATH_POLL_INTERVAL)
        else:
            await anyio.wait_readable(self.exit_fd)

    def kill(self) -> None:
        """SIGKILL to the child and to its process group: whatever its handler forked."""
        pid = self.process.pid
        if pid is not None:
            # Its pid names no other group: a pid is not reused before its process is
            # reaped (see `exit_fd`), nor while a group of that number has members.
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        self.process.kill()  # in case it had not yet led a group of its own

    @property
    def closed(self) -> bool:
        return self.conn.closed

    def close(self) -> int | None:
        """Reap the child, if it has exited, and let go of its descriptors: its exit code."""
        self.exitcode = self.process.exitcode
        self.conn.close()
        if self.answer_or_exit is not None:
            self.answer_or_exit.close()
        if self.exit_fd is not None:
            os.close(self.exit_fd)
            self.exit_fd = None
        if self.exitcode is not None:
            self.process.close()
        return self.exitcode


class ProcessPool:
    """Up to `size` child processes running handlers, started as jobs come."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.started = 0  # children started, replacements included
        import multiprocessing

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
            if not child.has_exited():
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
            target=_serve, args=(child_end, os.getpid()), name=CHILD_NAME, daemon=True
        )
        try:
            # On the loop's thread, which lives as long as the pool (a few ms of blocking):
            # Linux signals a child that its parent died when the thread that started it ends.
            process.start()
        finally:
            child_end.close()  # the child has its own copy: EOF reaches us when it dies
        child = _Child.watch(process, parent_end)
        try:
            with anyio.fail_after(START_TIMEOUT):
                if await child.receive() != _READY:
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
        if child.closed:  # ended by `aclose` while its job was being given up
            return child.exitcode
        with anyio.CancelScope(shield=True):
            if not kill:
                try:
                    child.conn.send_bytes(_STOP)
                except OSError:
                    kill = True  # it is gone already
            for _ in range(2):  # asked, or killed; then killed
                if kill:
                    child.kill()
                with anyio.move_on_after(EXIT_TIMEOUT):
                    await child.exited()
                    break
                kill = True
            # What the handler forked and left running ends with its process. Before the
            # child is reaped, while its pid still names its group.
            child.kill()
        return child.close()


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
