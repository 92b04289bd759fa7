"""Top-level functions for the process pool's tests: a child imports this module by name."""

from __future__ import annotations

import os
import signal
import time


class Unrebuildable(Exception):
    """Pickles, but cannot be rebuilt from its args: the parent gets a stand-in."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"code {code}: {detail}")


def add(a: int, b: int) -> int:
    return a + b


def pid() -> int:
    return os.getpid()


def explode(text: str) -> None:
    raise ValueError(text)


def explode_oddly() -> None:
    raise Unrebuildable(7, "odd")


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def fork_then_die(pid_file: str) -> None:
    """Fork a process, which keeps a copy of the pipe to the parent, then die."""
    grandchild = os.fork()
    if grandchild == 0:
        time.sleep(60)
        os._exit(0)
    with open(pid_file, "w") as file:
        file.write(str(grandchild))
    die()
