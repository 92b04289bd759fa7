"""Start-up: how long ``import aiosqsworker`` takes, and a launch's time to its first message.

- **import**: ``python -X importtime -c "import aiosqsworker"`` (the interpreter's own account
  of the package's cumulative import time), and the wall time of ``python -c "import
  aiosqsworker"`` less that of ``python -c pass`` (interpreter start-up taken out), and the
  ratio of the two; the same wall time for ``from aiosqsworker import App`` (the package
  imports its engine when a name is first used: this is what a worker pays); the CPU time
  of each beyond ``python -c pass``'s, steadier on a shared machine. Medians of
  `runs`, each in a fresh process with the contenders' environment, the commands
  alternated so that they share the machine's noise. The imports read bytecode, as an
  installed package's do, written outside the tree by a first, untimed, run
  (``--no-bytecode``: compiled from source in every process instead).
  ``python -m benchmarks.startup [--runs N] [--no-bytecode]`` measures the imports alone.
- **launch to first message**: the wall time from just before a contender process is
  started to its first handled message. It releases the one message of the run as soon as
  it is ready to consume (``--launch``: no settling pause), as it opens its window in the
  other runs, so every contender is timed alike. aiosqsworker beside celery and fanferro when
  those peers are installed (`benchmarks/peers`), in turn, medians of `runs`, after an untimed
  launch of each that writes its bytecode (`harness.BYTECODE_CACHE`).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .harness import PROJECT_ROOT, Contender, Outcome, child_environment, run_contender
from .responder import ResponderProcess

__all__ = ["ImportTimes", "import_times", "run_launch"]

#: The contenders whose launch is timed, when present in the run.
LAUNCHED = ("aiosqsworker", "celery-sqs", "fanferro")
#: What a worker imports before it starts: the engine, behind the package's lazy names.
APP_IMPORT = "from aiosqsworker import App"


@dataclass(frozen=True)
class ImportTimes:
    """Medians, in milliseconds, over `runs` fresh processes."""

    runs: int
    importtime_ms: float  # -X importtime's cumulative figure for the package
    wall_ms: float  # python -c "import aiosqsworker" less python -c pass
    interpreter_ms: float  # python -c pass
    #: python -c "from aiosqsworker import App" less python -c pass: the package loads its
    #: engine when a name is first used, so this is what a worker's start pays.
    app_ms: float | None = None
    #: Whether the imports read bytecode (as an installed package's do) or compiled sources.
    bytecode: bool = True
    #: CPU time (user + system) beyond python -c pass's, of each import: steadier than the
    #: wall time on a machine that other work shares.
    cpu_ms: float | None = None
    app_cpu_ms: float | None = None

    @property
    def ratio(self) -> float:
        """Whole process with the import over the bare interpreter's (medians)."""
        return (self.wall_ms + self.interpreter_ms) / self.interpreter_ms


def _run(code: str, python: str, env: dict[str, str]) -> tuple[float, float]:
    """The wall and CPU time, in milliseconds, of ``python -c code``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([python, "-c", code], env=env, cwd=PROJECT_ROOT, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall * 1000, cpu * 1000


def _importtime_us(python: str, module: str, env: dict[str, str]) -> int:
    completed = subprocess.run(
        [python, "-X", "importtime", "-c", f"import {module}"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
    )
    for line in completed.stderr.decode(errors="replace").splitlines():
        # "import time:   self [us] | cumulative | imported package"
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip() == module:
            return int(parts[1])
    raise RuntimeError(f"-X importtime printed no line for {module}")


def _environment(bytecode_cache: str | None) -> dict[str, str]:
    """The contenders' environment; with `bytecode_cache`, bytecode is written there and read
    back, as an installed package's is (the contenders' runs compile the project's sources in
    every process, which is not what a user's import costs)."""
    env = child_environment()
    if bytecode_cache is None:
        env.pop("PYTHONPYCACHEPREFIX", None)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env["PYTHONPYCACHEPREFIX"] = bytecode_cache  # a fresh one: written by a first run
    return env


def import_times(
    runs: int = 5, python: str = sys.executable, *, bytecode: bool = True
) -> ImportTimes:
    """`import aiosqsworker`, `runs` times each way (interleaved, to share the noise); with
    `bytecode`, from bytecode compiled by a first, untimed, run of each command."""
    with tempfile.TemporaryDirectory(prefix="aiosqsworker-bytecode-") as cache:
        env = _environment(cache if bytecode else None)
        codes = ("pass", "import aiosqsworker", APP_IMPORT)
        for code in codes:
            _run(code, python, env)
        cumulative: list[float] = []
        walls: dict[str, list[float]] = {code: [] for code in codes}
        cpus: dict[str, list[float]] = {code: [] for code in codes}
        for _ in range(runs):
            cumulative.append(_importtime_us(python, "aiosqsworker", env) / 1000)
            for code in codes:
                wall, cpu = _run(code, python, env)
                walls[code].append(wall)
                cpus[code].append(cpu)
    interpreter = statistics.median(walls["pass"])
    interpreter_cpu = statistics.median(cpus["pass"])
    return ImportTimes(
        runs=runs,
        importtime_ms=statistics.median(cumulative),
        wall_ms=statistics.median(walls["import aiosqsworker"]) - interpreter,
        interpreter_ms=interpreter,
        app_ms=statistics.median(walls[APP_IMPORT]) - interpreter,
        bytecode=bytecode,
        cpu_ms=statistics.median(cpus["import aiosqsworker"]) - interpreter_cpu,
        app_cpu_ms=statistics.median(cpus[APP_IMPORT]) - interpreter_cpu,
    )


def run_launch(
    contenders: Sequence[Contender],
    responder: ResponderProcess,
    *,
    runs: int,
    loop: str,
    progress: Callable[[str], None],
) -> dict[str, list[Outcome]]:
    """Each of `LAUNCHED` among `contenders`, `runs` times in turn, one waiting message,
    after an untimed launch of each (its bytecode written, as an installed package has it)."""
    chosen = [c for c in contenders if c.name in LAUNCHED]
    results: dict[str, list[Outcome]] = {c.name: [] for c in chosen}
    for run in range(runs + 1):
        for contender in chosen:
            outcome = run_contender(
                contender,
                endpoint=responder.endpoint_url,
                handler="noop",
                concurrency=10,
                messages=1,
                deadline=30.0,
                loop=loop,
                responder=responder,
                launch=True,
            )
            if run == 0:
                continue  # the warm-up
            results[contender.name].append(outcome)
            progress(
                f"  [launch] {contender.name:<24} "
                + (
                    f"FAILED: {outcome.error}"
                    if outcome.error or not outcome.launch_seconds
                    else f"{outcome.launch_seconds:.3f} s to the first message"
                )
            )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Print the import figures: ``python -m benchmarks.startup --runs 15``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.startup",
        description="How long `import aiosqsworker` takes, in fresh processes.",
    )
    parser.add_argument("--runs", type=int, default=15, help="fresh processes each way")
    parser.add_argument(
        "--no-bytecode",
        action="store_true",
        help="compile every module from source in every process (PYTHONDONTWRITEBYTECODE)",
    )
    args = parser.parse_args(argv)
    times = import_times(args.runs, bytecode=not args.no_bytecode)
    print(
        f"import aiosqsworker, median of {times.runs} fresh processes each way, "
        f"{'from bytecode' if times.bytecode else 'compiled from source'}:\n"
        f"  {times.importtime_ms:.0f} ms by -X importtime (cumulative, the package)\n"
        f"  {times.wall_ms:.0f} ms wall beyond `python -c pass` "
        f"({times.wall_ms + times.interpreter_ms:.0f} against {times.interpreter_ms:.0f} ms, "
        f"{times.ratio:.2f}x), {times.cpu_ms:.0f} ms CPU beyond it\n"
        f"  {times.app_ms:.0f} ms wall, {times.app_cpu_ms:.0f} ms CPU beyond it for "
        f"`{APP_IMPORT}` (the engine)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
