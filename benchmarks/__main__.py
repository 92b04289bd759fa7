"""``python -m benchmarks``: run the suite, write docs/benchmarks.md and its chart.

``make bench`` runs it with no arguments (the full suite, about twenty minutes on two cores,
a little more the first time, while the peers install). ``--quick`` is a smoke run of a minute
or so that prints its tables and writes nothing unless ``--output`` is given.
"""

from __future__ import annotations

import argparse
import pstats
import sys
import tempfile
from pathlib import Path

from .blocking import run_blocking
from .harness import PROJECT_ROOT, Contender
from .instructions import CONTENDERS as INSTRUCTION_CONTENDERS
from .instructions import run_instructions
from .moto_run import run_moto
from .peer_setup import PEERS, prepare_peers
from .report import command_line, render_markdown, write_chart
from .responder import ResponderProcess
from .sparse import run_sparse
from .startup import import_times, run_launch
from .suite import (
    CLIENT_COST_ONLY,
    OWN_CONTENDERS,
    Plan,
    Results,
    Stopwatch,
    log,
    print_progress,
    run_client_cost,
    run_idle,
    run_inflight,
    run_scaling,
)


def _names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


def parse(argv: list[str]) -> argparse.Namespace:
    own = [c.name for c in OWN_CONTENDERS]
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks of aiosqsworker against bare loops and peers.",
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--contenders",
        type=_names,
        default=own,
        help=f"own contenders to run, comma-separated (default: all of {','.join(own)})",
    )
    parser.add_argument(
        "--handlers", type=_names, default=None, help="of noop,io,cpu (default: all)"
    )
    parser.add_argument(
        "--repetitions",
        type=int,
        help="runs per contender and handler, peers included (default: 1 for a peer)",
    )
    parser.add_argument("--messages", type=int, help="messages per run, every handler")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling curve")
    parser.add_argument(
        "--no-inflight", action="store_true", help="skip the 1,000 and 10,000 in flight rows"
    )
    parser.add_argument(
        "--no-idle", action="store_true", help="skip the idle ReceiveMessage-per-minute figure"
    )
    parser.add_argument(
        "--no-sparse",
        action="store_true",
        help="skip the sparse queue (a message a minute, requests per message)",
    )
    parser.add_argument("--no-moto", action="store_true", help="skip the run against moto")
    parser.add_argument(
        "--no-startup",
        action="store_true",
        help="skip the import time and the launch to the first message",
    )
    parser.add_argument(
        "--no-instructions",
        action="store_true",
        help="skip the no-op client cost counted in instructions (valgrind)",
    )
    parser.add_argument(
        "--no-blocking",
        action="store_true",
        help="skip the CPU-bound handlers on the loop, in threads, in processes",
    )
    parser.add_argument(
        "--peers",
        type=_names,
        default=None,
        help=f"peers to install and run (default: all of {','.join(PEERS)}; none with --quick)",
    )
    parser.add_argument("--no-peers", action="store_true", help="run no peer")
    parser.add_argument(
        "--peers-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "aiosqsworker-bench-peers",
        help="where the peers' virtual environments live (outside the project)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="markdown report to write (default: docs/benchmarks.md; none with --quick)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="also write a cProfile of the aiosqsworker contender's first run to this file",
    )
    args = parser.parse_args(argv)
    unknown = set(args.contenders) - set(own)
    if unknown:
        parser.error(f"unknown contenders: {', '.join(sorted(unknown))}")
    if args.peers is not None and set(args.peers) - set(PEERS):
        parser.error(f"unknown peers: {', '.join(sorted(set(args.peers) - set(PEERS)))}")
    return args


def peer_status(name: str, status: str, results: Results) -> str:
    """What the report says of a peer: which scenarios it ran, or why it did not."""
    if status == "installed":
        ran = [
            h for h, runs in results.client_cost.items() if any(o.ok for o in runs.get(name, ()))
        ]
        errors = [o.error for runs in results.client_cost.values() for o in runs.get(name, ())]
        status = f"ran ({', '.join(ran)})" if ran else "did not run"
        failures = [error for error in errors if error]
        if failures:
            status += f"; failed: {failures[0][:300]}"
    note = PEERS[name].note
    return f"{status}; {note}" if note else status


def make_plan(args: argparse.Namespace) -> Plan:
    plan = Plan.quick() if args.quick else Plan()
    if args.handlers:
        plan.handlers = tuple(args.handlers)
    if args.repetitions:
        plan.repetitions = dict.fromkeys(plan.repetitions, args.repetitions)
        plan.peer_repetitions = args.repetitions
    if args.messages:
        plan.messages = dict.fromkeys(plan.messages, args.messages)
        plan.peer_messages = dict.fromkeys(plan.peer_messages, args.messages)
    plan.concurrency = args.concurrency
    plan.loop = args.loop
    return plan


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    plan = make_plan(args)
    watch = Stopwatch()
    contenders: list[Contender] = [c for c in OWN_CONTENDERS if c.name in args.contenders]
    results = Results(labels={c.name: c.label for c in OWN_CONTENDERS})
    peer_names = [] if args.no_peers else (args.peers or ([] if args.quick else list(PEERS)))
    if peer_names:
        log(f"preparing peers in {args.peers_dir} ...")
        peers, results.peers = prepare_peers(peer_names, args.peers_dir, log)
        results.labels.update({name: PEERS[name].label for name in peer_names})
        results.labels.update({p.name: p.label for p in peers})
        contenders += peers
    with ResponderProcess() as responder:
        log(f"client cost against the responder ({', '.join(plan.handlers)}) ...")
        results.client_cost = run_client_cost(
            plan,
            contenders,
            responder,
            profile=str(args.profile) if args.profile else None,
        )
        # The variants of the client cost table (a `def` handler, other floors) stay there.
        if not args.no_instructions and not args.quick:
            counted = [c for c in OWN_CONTENDERS if c.name in INSTRUCTION_CONTENDERS]
            log(
                f"instructions per message under valgrind ({', '.join(INSTRUCTION_CONTENDERS)}) ..."
            )
            results.instructions = run_instructions(
                counted, responder, concurrency=plan.concurrency, loop=plan.loop, progress=log
            )
            if results.instructions.skipped:
                log(f"  skipped: {results.instructions.skipped}")
        if not args.no_startup:
            log("launch to the first message ...")
            results.launch = run_launch(
                contenders, responder, runs=plan.launch_runs, loop=plan.loop, progress=log
            )
        own = [c for c in contenders if not c.peer and c.name not in CLIENT_COST_ONLY]
        if not args.no_scaling:
            log("scaling: I/O-bound handler against concurrency ...")
            results.scaling = run_scaling(plan, own, responder)
        if not args.no_inflight:
            log("in flight: a 1 s handler at high concurrency ...")
            results.inflight = run_inflight(plan, own, responder)
        if not args.no_idle:
            idle = [c for c in own if c.name != "aiosqsworker-botocore"]  # polls alike
            log(f"idle: an empty queue for {plan.idle_seconds:.0f} s, every contender at once ...")
            results.idle = run_idle(plan, idle, responder, progress=log)
            results.idle_seconds = plan.idle_seconds
    for name, status in results.peers.items():
        results.peers[name] = peer_status(name, status, results)
    if not args.no_sparse:
        log(
            f"sparse: {plan.sparse_messages} messages, one every {plan.sparse_interval:.0f} s, "
            "against moto ..."
        )
        results.sparse = run_sparse(messages=plan.sparse_messages, interval=plan.sparse_interval)
        log(
            f"  {results.sparse.receives:.2f} ReceiveMessage, "
            f"{results.sparse.extensions:.2f} ChangeMessageVisibility, "
            f"{results.sparse.deletes:.2f} DeleteMessage calls per message"
        )
    if not args.no_moto:
        log("end to end against moto ...")
        results.moto = run_moto(
            own,
            messages=plan.moto_messages,
            backlog=plan.moto_backlog,
            repetitions=plan.moto_repetitions,
            concurrency=plan.concurrency,
            loop=plan.loop,
            progress=print_progress,
        )
    if not args.no_startup:
        log(f"import aiosqsworker, {plan.import_runs} fresh processes ...")
        results.imports = import_times(plan.import_runs)
        log(
            f"  {results.imports.importtime_ms:.0f} ms (-X importtime), "
            f"{results.imports.wall_ms:.0f} ms wall beyond the interpreter's start"
        )
    if not args.no_blocking:
        log("blocking and CPU-bound handlers against moto ...")
        results.blocking = run_blocking(quick=args.quick)
    results.seconds = watch.elapsed
    output = args.output
    if output is None and not args.quick:
        output = PROJECT_ROOT / "docs" / "benchmarks.md"
    chart = None
    if output is not None:
        chart_path = output.with_suffix(".png")
        write_chart(results, chart_path, loop=plan.loop)
        chart = chart_path.name
    markdown = render_markdown(
        results, plan, command=command_line(argv), chart=chart, quick=args.quick
    )
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(markdown, encoding="utf-8")
        log(f"wrote {output} and {chart} in {results.seconds / 60:.1f} min")
    else:
        print(markdown)
    if args.profile:
        log(f"profile of the aiosqsworker contender's first run: {args.profile}")
        pstats.Stats(str(args.profile), stream=sys.stderr).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
