"""Instructions per message: the no-op client cost, counted rather than timed.

CPU time on a shared two-core machine swings by a quarter from one run to the next; the
number of instructions a process executes barely moves. So, when valgrind is installed
(Debian's ``valgrind`` package), each contender named here consumes the responder's no-op
messages twice under valgrind's cachegrind (instruction counting only: no cache
simulation), with `SMALL` and then `LARGE` messages. The difference of the two counts over
the difference of the messages is what one message more costs: the interpreter's start, the
imports and the set-up cancel out.

User-space instructions only: the kernel's share (a socket write and read per request, the
same for every contender at the same requests per message) is not in it, and neither is
what an instruction costs (cache misses, system calls), which CPU time includes. Alone:
``python -m benchmarks.instructions [--contenders a,b] [--small N --large N]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .harness import Contender, run_contender
from .responder import ResponderProcess

__all__ = [
    "CONTENDERS",
    "InstructionCounts",
    "count_instructions",
    "instruction_total",
    "run_instructions",
]

#: The contenders counted, the bare aiohttp loop (the issue's yardstick) among them.
CONTENDERS = ("aiosqsworker", "aiohttp-loop", "lean-floor", "lean-transport")
SMALL = 5_000
LARGE = 25_000
WARM_UP = 500
#: Seconds a contender may take for its messages under valgrind (some 50 times slower).
DEADLINE = 600.0


@dataclass
class InstructionCounts:
    """Instructions per message by contender, or why there are none."""

    per_message: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    small: int = SMALL
    large: int = LARGE
    skipped: str = ""  # why nothing was counted (no valgrind)

    def ratio(self, name: str, baseline: str = "aiohttp-loop") -> float | None:
        ours, theirs = self.per_message.get(name), self.per_message.get(baseline)
        return ours / theirs if ours and theirs else None


def instruction_total(path: Path) -> int:
    """The total of cachegrind's ``summary:`` line (instructions executed)."""
    for line in path.read_text(encoding="ascii", errors="replace").splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise ValueError(f"{path.name}: no summary line")


def _consume(
    contender: Contender,
    responder: ResponderProcess,
    messages: int,
    *,
    concurrency: int,
    loop: str,
) -> None:
    """One run of `contender` over `messages` no-op messages; RuntimeError unless whole."""
    outcome = run_contender(
        contender,
        endpoint=responder.endpoint_url,
        handler="noop",
        concurrency=concurrency,
        messages=messages,
        deadline=DEADLINE,
        loop=contender.loop or loop,
        responder=responder,
    )
    if outcome.error:
        raise RuntimeError(outcome.error)
    if outcome.timed_out or outcome.handled != messages:
        raise RuntimeError(f"handled {outcome.handled} of {messages} messages")


def count_instructions(
    contender: Contender,
    responder: ResponderProcess,
    messages: int,
    *,
    concurrency: int = 100,
    loop: str = "uvloop",
    valgrind: str = "valgrind",
) -> int:
    """Instructions `contender`'s process executes consuming `messages` no-op messages."""
    with tempfile.TemporaryDirectory(prefix="aiosqsworker-instructions-") as scratch:
        out = Path(scratch) / "cachegrind.out"
        counted = dataclasses.replace(
            contender,
            program=(
                valgrind,
                "--tool=cachegrind",
                "--cache-sim=no",
                f"--cachegrind-out-file={out}",
                "--",
                *(contender.program or (contender.python, "-m", contender.module)),
            ),
        )
        _consume(counted, responder, messages, concurrency=concurrency, loop=loop)
        return instruction_total(out)


def run_instructions(
    contenders: Sequence[Contender],
    responder: ResponderProcess,
    *,
    small: int = SMALL,
    large: int = LARGE,
    concurrency: int = 100,
    loop: str = "uvloop",
    progress: Callable[[str], None] = lambda line: None,
) -> InstructionCounts:
    """Instructions per message of each contender (`large` minus `small` messages)."""
    counts = InstructionCounts(small=small, large=large)
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        counts.skipped = "valgrind is not installed (Debian: apt-get install valgrind)"
        return counts
    for contender in contenders:
        try:
            # One plain run first: its bytecode written, neither count includes compiling.
            _consume(contender, responder, WARM_UP, concurrency=concurrency, loop=loop)
            few, many = (
                count_instructions(
                    contender, responder, n, concurrency=concurrency, loop=loop, valgrind=valgrind
                )
                for n in (small, large)
            )
        except (RuntimeError, ValueError, OSError) as exc:
            counts.errors[contender.name] = str(exc)[:300]
            progress(f"  {contender.name}: not counted ({exc})")
            continue
        counts.per_message[contender.name] = (many - few) / (large - small)
        progress(f"  {contender.name}: {counts.per_message[contender.name]:,.0f} instructions/msg")
    return counts


def main(argv: list[str] | None = None) -> int:
    from .suite import OWN_CONTENDERS

    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__)
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--small", type=int, default=SMALL)
    parser.add_argument("--large", type=int, default=LARGE)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.contenders.split(",") if name.strip()]
    chosen = [c for c in OWN_CONTENDERS if c.name in names]
    with ResponderProcess() as responder:
        counts = run_instructions(
            chosen,
            responder,
            small=args.small,
            large=args.large,
            loop=args.loop,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    if counts.skipped:
        print(counts.skipped, file=sys.stderr)
        return 1
    for name, per_message in counts.per_message.items():
        ratio = counts.ratio(name)
        print(
            f"{name:24} {per_message:10,.0f} instructions/msg"
            + (f"  {ratio:.2f}x" if ratio else "")
        )
    return 1 if counts.errors else 0


if __name__ == "__main__":
    sys.exit(main())
