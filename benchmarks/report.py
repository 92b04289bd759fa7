"""docs/benchmarks.md and its chart, from one invocation's results."""

from __future__ import annotations

import os
import platform
import shlex
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

from .blocking import table as blocking_table
from .blocking import workloads
from .contender import WAIT_TIME
from .harness import Outcome, Summary, summarize
from .instructions import InstructionCounts
from .suite import REFERENCE, Plan, Results, ideal_rate

__all__ = ["command_line", "machine_note", "render_markdown", "write_chart"]

HANDLER_TITLES = {
    "noop": "No-op handler",
    "io": "I/O-bound handler (`await asyncio.sleep(0.05)`)",
    "cpu": "CPU-bound handler (100 chained SHA-256 of 1 KiB, about 200 µs)",
}


def machine_note(loop: str) -> str:
    cores = os.cpu_count() or 0
    return (
        f"{cores} CPU cores ({platform.machine()}), {platform.system()}, "
        f"Python {platform.python_version()}, event loop: {loop}"
    )


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(value: float, reference: Summary | None, attribute: str) -> str:
    if reference is None or not reference.ok:
        return "-"
    base: float = getattr(reference, attribute)
    return f"{value / base:.2f}x" if base else "-"


def _summaries(by_contender: dict[str, list[Outcome]]) -> dict[str, Summary]:
    return {name: summarize(name, outcomes) for name, outcomes in by_contender.items()}


def _contender_table(
    by_contender: dict[str, list[Outcome]], labels: dict[str, str], *, requests: bool = True
) -> list[str]:
    summaries = _summaries(by_contender)
    reference = summaries.get(REFERENCE)
    header = "| contender | messages/s (min-max) | x ref |"
    rule = "|---|---:|---:|"
    if requests:
        header += " deleted/s |"
        rule += "---:|"
    header += " CPU µs/message | x ref |"
    rule += "---:|---:|"
    if requests:
        header += " requests/message |"
        rule += "---:|"
    header += " peak RSS MiB | runs |"
    rule += "---:|---:|"
    if requests:
        header += " responder CPU |"
        rule += "---:|"
    lines = [header, rule]
    for name, summary in summaries.items():
        label = labels.get(name, name)
        if not summary.ok:
            lines.append(
                f"| {label} | did not run: {(summary.error or '')[:160]} |"
                + " |" * (rule.count("|") - 3)
            )
            continue
        note = ""
        if summary.timed_out:
            note = f" (time-boxed: {summary.handled:,} of {summary.messages:,})"
        row = (
            f"| {label} | {_fmt(summary.rate)} ({_fmt(summary.rate_low)}-{_fmt(summary.rate_high)})"
            f"{note} | {_ratio(summary.rate, reference, 'rate')} |"
        )
        if requests:
            row += f" {_fmt(summary.completed_rate)} |"
        row += f" {_fmt(summary.cpu_us)} | {_ratio(summary.cpu_us, reference, 'cpu_us')} |"
        if requests:
            row += f" {_fmt(summary.requests_per_message, 3)} |"
        row += f" {_fmt(summary.peak_rss_mib, 1)} | {summary.runs} |"
        if requests:
            row += f" {summary.responder_load:.0%} |"
        lines.append(row)
    return lines


def _scaling_tables(results: Results) -> list[str]:
    levels = sorted(results.scaling)
    names = list(next(iter(results.scaling.values()))) if results.scaling else []
    summaries = {level: _summaries(results.scaling[level]) for level in levels}
    lines = ["| concurrency | messages | " + " | ".join(results.labels.get(n, n) for n in names)]
    lines[0] += " |"
    lines.append("|---:|---:|" + "---:|" * len(names))
    for level in levels:
        first = summaries[level][names[0]] if names else None
        cells = []
        for name in names:
            summary = summaries[level][name]
            cells.append(
                f"{_fmt(summary.rate)} ({_fmt(summary.completed_rate)})" if summary.ok else "failed"
            )
        count = first.messages if first is not None else 0
        lines.append(f"| {level:,} | {count:,} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Peak RSS (MiB) against the messages in flight (at most concurrency + prefetch; the "
        "column says how many handlers actually ran at once). RSS growth is the resident "
        "set at the window's end less that at its start:",
        "",
        "| concurrency | "
        + " | ".join(f"{results.labels.get(n, n)}: peak (growth)" for n in names)
        + " |",
        "|---:|" + "---:|" * len(names),
    ]
    for level in levels:
        cells = []
        for name in names:
            summary = summaries[level][name]
            running = max((o.peak_running for o in results.scaling[level][name]), default=0)
            cells.append(
                f"{summary.peak_rss_mib:.1f} (+{summary.rss_growth_mib:.1f}), {running:,} running"
                if summary.ok
                else "failed"
            )
        lines.append(f"| {level:,} | " + " | ".join(cells) + " |")
    return lines


#: The floor every ratio of the framework's CPU is read against, and the variants beside it.
FLOOR = "aiohttp-loop"
LEAN_FLOOR = "lean-floor"
TRANSPORT_ALONE = "lean-transport"
FRAMEWORK = "aiosqsworker"
SYNC_FRAMEWORK = "aiosqsworker-def"


def _same_run_ratios(by_contender: dict[str, list[Outcome]]) -> list[str]:
    """The framework's CPU per message against the floors and its `def` variant, read in
    the same invocation (ratios hold where a loaded machine moves the absolute figures)."""
    summaries = _summaries(by_contender)
    ours = summaries.get(FRAMEWORK)
    if ours is None or not ours.ok:
        return []
    lines = []
    for name, what in ((FLOOR, "the bare aiohttp loop's"), (LEAN_FLOOR, "the lean floor's")):
        floor = summaries.get(name)
        if floor is not None and floor.ok and floor.cpu_us:
            lines.append(
                f"- aiosqsworker's CPU per message: {ours.cpu_us / floor.cpu_us:.2f}x {what} "
                f"({ours.cpu_us:.0f} against {floor.cpu_us:.0f} µs)."
            )
        elif floor is not None:
            lines.append(f"- {what.capitalize()} ratio: not measured ({floor.error or 'no run'}).")
    transport, loop = summaries.get(TRANSPORT_ALONE), summaries.get(FLOOR)
    if transport is not None and transport.ok and loop is not None and loop.ok and loop.cpu_us:
        lines.append(
            f"- The lean transport alone, with no loop around it: {transport.cpu_us:.0f} µs per "
            f"message, {transport.cpu_us / loop.cpu_us:.2f}x the bare aiohttp loop's. At 0.6x "
            f"that loop, {max(0.0, 0.6 * loop.cpu_us - transport.cpu_us):.0f} µs would be left "
            "for the handler's slot and every guarantee the framework keeps."
        )
    sync = summaries.get(SYNC_FRAMEWORK)
    if sync is not None and sync.ok and ours.cpu_us:
        lines.append(
            f"- A `def` handler (a thread hand-off per message): {sync.cpu_us:.0f} µs of CPU per "
            f"message against {ours.cpu_us:.0f} for `async def`, {sync.cpu_us / ours.cpu_us:.2f}x."
        )
    return lines


def _instruction_lines(counts: InstructionCounts, labels: dict[str, str]) -> list[str]:
    """The no-op cost counted in instructions: steadier than CPU time on a busy machine."""
    lines = [
        "Counted rather than timed (`benchmarks/instructions.py`): instructions per message "
        "under valgrind's cachegrind, from runs of "
        f"{counts.small:,} and {counts.large:,} messages (their difference: start-up and "
        "imports cancel out). User space only: the kernel's share, a socket write and read "
        "per request, is the same for every contender at the same requests per message.",
        "",
    ]
    if counts.skipped:
        return [*lines, f"Not counted: {counts.skipped}."]
    lines += [
        "| Contender | Instructions per message | Against the bare aiohttp loop |",
        "|---|---:|---:|",
    ]
    for name, per_message in counts.per_message.items():
        ratio = counts.ratio(name)
        shown = f"{ratio:.2f}x" if ratio is not None else "-"
        lines.append(f"| {labels.get(name, name)} | {per_message:,.0f} | {shown} |")
    for name, error in counts.errors.items():
        lines.append(f"| {labels.get(name, name)} | not counted: {error} | - |")
    return lines


def _startup_lines(results: Results) -> list[str]:
    lines: list[str] = []
    imports = results.imports
    if imports is not None:
        source = "from bytecode, as installed" if imports.bytecode else "no bytecode"
        lines += [
            f"`import aiosqsworker`, median of {imports.runs} fresh processes ({source}): "
            f"**{imports.importtime_ms:.0f} ms** by `python -X importtime` (the package's "
            f"cumulative import time), {imports.wall_ms:.0f} ms of wall time beyond the "
            f"interpreter's own start ({imports.interpreter_ms:.0f} ms for `python -c pass`, "
            f"{imports.ratio:.2f}x; alone: `python -m benchmarks.startup --runs 15`).",
            "",
        ]
        if imports.app_ms is not None:
            lines += [
                f"`from aiosqsworker import App` (the package imports its engine when a name "
                f"is first used: what a worker pays before it starts): {imports.app_ms:.0f} ms "
                "of wall time beyond the interpreter's own start"
                + (
                    f", {imports.app_cpu_ms:.0f} ms of CPU time "
                    f"(`import aiosqsworker`: {imports.cpu_ms:.0f} ms)."
                    if imports.app_cpu_ms is not None and imports.cpu_ms is not None
                    else "."
                ),
                "",
            ]
    if results.launch:
        lines += [
            "Launch to the first message: the wall time from just before the process is "
            "started to its first handled message. Each releases the run's one message as "
            "soon as it is ready to consume (celery: at `worker_ready`), so every contender "
            "is timed alike (`benchmarks/startup.py`):",
            "",
            "| contender | launch to first message, s (median) | runs |",
            "|---|---:|---:|",
        ]
        for name, outcomes in results.launch.items():
            good = [o.launch_seconds for o in outcomes if o.ok and o.launch_seconds > 0]
            label = results.labels.get(name, name)
            if good:
                lines.append(f"| {label} | {median(good):.3f} | {len(good)} |")
            else:
                why = next((o.error for o in outcomes if o.error), "no run")
                lines.append(f"| {label} | did not run: {why[:160]} | 0 |")
        if "celery-sqs" not in results.launch:
            lines.append(
                "| celery (SQS) | not run: the celery peer was not installed in this "
                "invocation (`--peers celery-sqs`) | 0 |"
            )
        lines.append("")
    return lines


#: SQS standard queues, US East, beyond the free tier: dollars per million requests.
PRICE_PER_MILLION = 0.40
IDLE_PODS = 100
MINUTES_PER_MONTH = 60 * 24 * 30


def _inflight_table(results: Results) -> list[str]:
    """Medians over the repetitions; each ratio pairs a run with the bare aiohttp loop's of
    the same repetition (run just before or after it), each RSS growth a run at the low level
    with the same repetition's at the high one."""
    levels = sorted(results.inflight)
    if len(levels) < 2:
        return []
    low, high = levels[0], levels[-1]
    names = list(results.inflight[low])
    header = (
        f"| contender | {low:,}: messages/s (% of ideal) | {high:,}: messages/s (% of ideal) "
        f"| {high:,}: x the bare aiohttp loop (same repetition; range) "
        f"| peak RSS MiB at {low:,} / {high:,} | RSS per in-flight message, {low:,} to "
        f"{high:,} |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|"]
    floor_runs = results.inflight[high].get(FLOOR, [])
    for name in names:
        lows, highs = results.inflight[low].get(name, []), results.inflight[high].get(name, [])
        pairs = [(a, b) for a, b in zip(lows, highs, strict=False) if a.ok and b.ok]
        if not pairs:
            errors = [o.error for o in (*lows, *highs)]
            why = next((e for e in errors if e), "no run")
            lines.append(f"| {results.labels.get(name, name)} | did not run: {why[:160]} | | | | |")
            continue
        summaries = {level: summarize(name, runs) for level, runs in ((low, lows), (high, highs))}
        cells = []
        for level, summary in summaries.items():
            note = " (time-boxed)" if summary.timed_out else ""
            cells.append(f"{summary.rate:,.0f} ({summary.rate / ideal_rate(level):.1%}){note}")
        ratios = [
            ours.rate / floor.rate
            for ours, floor in zip(highs, floor_runs, strict=False)
            if ours.ok and floor.ok and floor.rate
        ]
        ratio = "-"
        if ratios:
            ratio = f"{median(ratios):.2f}x"
            if len(ratios) > 1:
                ratio += f" ({min(ratios):.2f}-{max(ratios):.2f}x)"
        growths = [
            (b.peak_rss_kib - a.peak_rss_kib) / (b.peak_running - a.peak_running)
            for a, b in pairs
            if b.peak_running > a.peak_running
        ]
        per_message = median(growths) if growths else 0.0
        rss_low, rss_high = summaries[low].peak_rss_mib, summaries[high].peak_rss_mib
        lines.append(
            f"| {results.labels.get(name, name)} | {cells[0]} | {cells[1]} | {ratio} | "
            f"{rss_low:.1f} / {rss_high:.1f} | {per_message:.1f} KiB |"
        )
    return lines


def _idle_table(results: Results) -> list[str]:
    levels = sorted(results.idle)
    names = list(next(iter(results.idle.values()))) if results.idle else []
    one_poll = 60 / WAIT_TIME
    lines = [
        "| concurrency | " + " | ".join(f"{results.labels.get(n, n)}" for n in names) + " |",
        "|---:|" + "---:|" * len(names),
    ]
    for level in levels:
        cells = []
        for name in names:
            run = results.idle[level][name]
            if run.error:
                cells.append(f"failed: {run.error[:80]}")
                continue
            dollars = run.per_minute * MINUTES_PER_MONTH * IDLE_PODS * PRICE_PER_MILLION / 1e6
            cells.append(
                f"{run.per_minute:.1f}/min ({run.per_minute / one_poll:.2f}x one poll), "
                f"${dollars:,.0f}"
            )
        lines.append(f"| {level:,} | " + " | ".join(cells) + " |")
    return lines


def render_markdown(
    results: Results, plan: Plan, *, command: str, chart: str | None, quick: bool
) -> str:
    loop = plan.loop
    out: list[str] = [
        "# Benchmarks",
        "",
        "Generated by the benchmark suite in `benchmarks/` "
        f"({'smoke run, figures not representative' if quick else 'full run'}). "
        "Reproduce with:",
        "",
        "```",
        command,
        "```",
        "",
        f"- Machine: {machine_note(loop)}.",
        f"- Date: {datetime.now(UTC):%Y-%m-%d}; the suite took {results.seconds / 60:.1f} min.",
        "- Machines are noisy: read the ratios to the bare aiobotocore loop (x ref), measured "
        "in the same invocation, rather than the absolute figures.",
        "",
        "## What is measured",
        "",
        "Each contender runs in its own process against the same server, with the same "
        "handler and concurrency, and consumes a preset number of messages. It first sets up "
        "(imports, client, queue URL, long polls open), then opens a measuring window that "
        "releases the messages, and closes it when its handlers have finished the last one. "
        "Over that window:",
        "",
        "- **messages/s**: messages handled ÷ window (median of the runs; min-max beside);",
        "- **deleted/s**: messages deleted ÷ the time from the window's opening to the last "
        "delete the server saw (shutdown flush included): lower than messages/s when deletes "
        "lag behind the handlers;",
        "- **CPU µs/message**: user + system CPU of the consumer process (`getrusage`) ÷ "
        "messages, handler included (the CPU-bound handler itself costs about 200 µs);",
        "- **requests/message**: ReceiveMessage, DeleteMessage(Batch) and "
        "ChangeMessageVisibility(Batch) calls the server saw for the whole run (shutdown "
        "included) ÷ messages: 0.2 is one receive of ten plus one batch delete of ten;",
        "- **peak RSS**: the process's peak resident set (Linux's VmHWM: `ru_maxrss` would "
        "include the harness's own size, inherited across fork and exec), imports included;",
        "- **responder CPU**: the responder's CPU over the run as a share of one core: near "
        "100 % the responder, not the contender, is the limit.",
        "",
        "Contenders:",
        "",
        "- **aiosqsworker (default: fast path)**: `App()` with default settings; every call "
        "over the lean HTTP/1.1 transport (`_sqs/lean.py`) with its own SigV4 signing, no "
        "botocore or aiohttp;",
        '- **aiosqsworker (client="botocore")**: every call through aiobotocore;',
        "- **bare aiobotocore loop**: pollers calling ReceiveMessage(10) into a small bounded "
        "queue, N handler tasks, DeleteMessageBatch of ten with a 50 ms linger; no leases, "
        "retries or shutdown care: the ceiling of anything built on aiobotocore, and the "
        "reference (x ref) of every ratio;",
        "- **bare aiohttp loop**: the same loop with hand-built unsigned JSON over aiohttp, "
        "no checks: the floor of a Python asyncio consumer, on the same event loop as every "
        "other contender, and beside it the same loop always on asyncio's own event loop;",
        "- **bare loop on the lean transport**: the same loop over the lean HTTP/1.1 "
        "transport alone, no framework: the floor of the fast path (its row says why when "
        "the transport is not in the tree);",
        "- **the lean transport alone** (no-op handler only): each poller receives ten, runs "
        "the handler on each in turn and deletes them before polling again, with no queue "
        "and no task per handler: what the transport itself costs a message, the part of "
        "every floor no engine can take away;",
        "- **aiosqsworker, `def` handler**: the default app with the handler a plain `def`, "
        "called in the consumer's threads: beside the first row, the thread hand-off's cost;",
        "- peers from PyPI and npm, each in its own environment (see below).",
        "",
        "The bare loops keep open as many long polls as aiosqsworker opens at most at the "
        "same concurrency (16 up to 1,600 messages of room, then one per 100, at most 128), "
        "so that under load the comparison is of client and framework cost, not of polling "
        "strategy (on an idle queue, the idle figure below, it is). The server is a local "
        "SQS responder (`benchmarks/responder.py`): "
        "an aiohttp server in its own process speaking SQS's JSON protocol, answering at "
        "once, never redelivering; its budget of messages is released when the window "
        "opens. Against it, everything left is the client's own cost.",
        "",
        "## Client cost against the local responder",
        "",
    ]
    for handler, by_contender in results.client_cost.items():
        messages = plan.messages.get(handler, 0)
        peer_messages = plan.peer_messages.get(handler, 0)
        repetitions = plan.repetitions.get(handler, 1)
        out += [
            f"### {HANDLER_TITLES.get(handler, handler)}",
            "",
            f"Concurrency {plan.concurrency}, {messages:,} messages per run, median of "
            f"{repetitions} run{'s' if repetitions > 1 else ''} "
            f"(peers: {peer_messages:,} messages, {plan.peer_repetitions} "
            f"run{'s' if plan.peer_repetitions > 1 else ''}, time-boxed to "
            f"{plan.peer_deadline:.0f} s).",
            "",
            *_contender_table(by_contender, results.labels),
            "",
        ]
        ratios = _same_run_ratios(by_contender)
        if ratios:
            out += [*ratios, ""]
        if handler == "noop" and results.instructions is not None:
            out += [*_instruction_lines(results.instructions, results.labels), ""]
    if results.launch or results.imports is not None:
        out += ["## Start-up", "", *_startup_lines(results)]
    if results.scaling:
        out += [
            "## Scaling: I/O-bound handler against concurrency",
            "",
            "Messages/s with the 50 ms handler (the ideal is concurrency x 20/s), and in "
            "brackets deleted/s (to the last delete), "
            f"{plan.scaling_repetitions} run per point:",
            "",
            *_scaling_tables(results),
            "",
        ]
    if results.inflight:
        levels = sorted(results.inflight)
        out += [
            f"## {levels[-1]:,} in flight",
            "",
            "A handler that waits 1 s, so that the concurrency is the number of messages in "
            f"flight, {plan.inflight_rounds} s of work per handler slot. The ideal is "
            "concurrency messages a second; RSS per in-flight message is the growth of the "
            f"peak RSS from {levels[0]:,} to {levels[-1]:,} handlers running, divided by "
            f"the growth in handlers running. Every figure is the median of "
            f"{plan.inflight_repetitions} runs per point, the contenders interleaved. The "
            "absolute share of the ideal swings with the machine's load: read the ratio to "
            "the bare aiohttp loop, whose run of the same repetition came just before or "
            "after (the range is that of the repetitions' ratios):",
            "",
            *_inflight_table(results),
            "",
        ]
    if results.idle:
        out += [
            "## Idle: ReceiveMessage calls on an empty queue",
            "",
            f"Every contender at once for {results.idle_seconds:.0f} s, each on an empty queue "
            f"of its own, long polls of {WAIT_TIME} s: one open poll makes "
            f"{60 / WAIT_TIME:.0f} calls a minute. The calls are counted by the responder "
            "within each contender's measuring window; the dollars are what "
            f"{IDLE_PODS} such idle pods cost in a month at ${PRICE_PER_MILLION:.2f} per "
            "million requests (standard queue, beyond the free tier). The bare loops keep "
            "all their polls open; aiosqsworker keeps one on an idle queue and widens as "
            "polls come back full:",
            "",
            *_idle_table(results),
            "",
        ]
    if results.sparse is not None:
        sparse = results.sparse
        out += [
            "## A sparse queue: requests per message",
            "",
            f"The default consumer on moto, {sparse.messages} messages, one every "
            f"{sparse.interval:.0f} s on average, a handler that returns at once, every "
            "request counted by a proxy (`benchmarks/sparse.py`). Nearly every message is "
            "caught by the idle consumer's watch poll, which asks for a 5 s visibility "
            "timeout so that a stop can give it up at once; the lease keeper extends what it "
            "brings to the full timeout straight away ([shutdown](shutdown.md#watch-polls-"
            "and-busy-polls-the-trade-in-numbers)). A busy queue pays none of it (busy polls "
            "keep the full timeout):",
            "",
            "| per message | ReceiveMessage | ChangeMessageVisibility | DeleteMessage |",
            "|---|---:|---:|---:|",
            f"| calls | {sparse.receives:.2f} | {sparse.extensions:.2f} | {sparse.deletes:.2f} |",
            "",
        ]
    if results.moto:
        out += [
            "## End to end against moto's server",
            "",
            f"moto (`aiosqsworker.testing.LocalSQSServer`), no-op handler, concurrency "
            f"{plan.concurrency}, {plan.moto_messages:,} messages per run with the backlog "
            f"refilled to about {plan.moto_backlog} (moto scans the whole queue on every "
            "call), median of "
            f"{plan.moto_repetitions} run{'s' if plan.moto_repetitions > 1 else ''}. moto, "
            "the contender and the refill share the machine: this shows that everything works "
            "against real SQS semantics, and how much CPU each contender spends per message "
            "when the server is slow; the throughput is mostly moto's.",
            "",
            *_contender_table(results.moto, results.labels, requests=False),
            "",
        ]
    if results.blocking:
        out += [
            "## Blocking and CPU-bound handlers",
            "",
            "The same CPU-bound job (pure Python arithmetic for a set CPU time) four ways: an "
            "`async def` doing it on the event loop, a plain `def` (a worker thread), a `def` "
            'with `run_in="process"` in a pool of two processes, and the `async def` under '
            "`--workers 2` (see [blocking and CPU-bound work](blocking-and-cpu.md)). Each "
            "runs `python -m aiosqsworker benchmarks.blocking_service:app` against moto "
            "(real visibility timeouts) on a fresh queue with a 2 s visibility timeout, "
            "concurrency 2 and no prefetch, timed from its first job's start to its last "
            "job's end; one run each. A duplicate run is a job started again because its "
            "lease expired while it ran.",
            "",
        ]
        for workload in workloads(quick):
            out += [
                f"### {workload.name.capitalize()} jobs: {workload.messages} jobs of "
                f"{workload.seconds:g} s of CPU",
                "",
                *blocking_table(results.blocking, workload.name),
                "",
            ]
        out += [
            "Threads keep the leases (a job that outlives its visibility timeout runs once) "
            "but not the CPU: the interpreter lock lets one thread compute at a time. "
            "Processes keep both. Whole workers on the loop use the cores too: a job longer "
            "than the visibility timeout blocks its worker's loop, and the lease keeper's "
            "thread extends the lease meanwhile (see [leases through a blocked "
            "loop](blocking-and-cpu.md#leases-through-a-blocked-loop)), so no other worker "
            "runs it again; but that worker's polls and acknowledgements wait for the job.",
            "",
        ]
    out += ["## Peers", ""]
    if results.peers:
        out += [
            "Each peer is installed into its own environment outside the project (a virtual "
            "environment from PyPI, or a directory of npm packages for the Node.js peer) and "
            "driven by a small script in `benchmarks/peers/` that uses the peer's documented "
            "API with the same handlers and concurrency. A peer that could not be installed "
            "or run is listed with the reason. fanferro (an asyncio SNS and SQS library whose "
            "signing, HTTP and SQS protocol are in Rust; 0.5.0 when it was added) needs Python "
            "3.12 or later: its environment is made with `python3.12`, found on `PATH` or among "
            "pyenv's versions (without one it is listed as not run, with the reason), and it "
            "runs on the suite's event loop with its own defaults but for the concurrency and "
            "the number of long polls, as many as aiosqsworker opens at most.",
            "",
            "| peer | status |",
            "|---|---|",
        ]
        for name, status in results.peers.items():
            out.append(f"| {results.labels.get(name, name)} | {status} |")
        out += [
            "",
            "Not attempted: pyqs (a celery-like task queue whose workers fork processes and "
            "read its own task envelope), to keep `make bench` within about ten minutes.",
        ]
    else:
        out.append("Not run in this invocation (`--no-peers`).")
    out.append("")
    if chart:
        out += ["## Chart", "", f"![benchmark chart]({chart})", ""]
    return "\n".join(out)


def write_chart(results: Results, path: Path, *, loop: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(14, 13))
    grid = figure.add_gridspec(3, 2)
    axes = [
        [figure.add_subplot(grid[0, :]), figure.add_subplot(grid[1, :])],
        [figure.add_subplot(grid[2, 0]), figure.add_subplot(grid[2, 1])],
    ]
    handlers = list(results.client_cost)
    names = list(dict.fromkeys(n for runs in results.client_cost.values() for n in runs))
    width = 0.8 / max(1, len(names))
    for axis, attribute, title in (
        (axes[0][0], "rate", "messages/s (concurrency 100), log scale"),
        (axes[0][1], "cpu_us", "consumer CPU µs per message (lower is better), log scale"),
    ):
        for index, name in enumerate(names):
            values = []
            for handler in handlers:
                outcomes = results.client_cost[handler].get(name, [])
                summary = summarize(name, outcomes)
                values.append(float(getattr(summary, attribute)) if summary.ok else 0.0)
            positions = [h + (index - (len(names) - 1) / 2) * width for h in range(len(handlers))]
            axis.bar(positions, values, width, label=results.labels.get(name, name))
        axis.set_xticks(range(len(handlers)), [HANDLER_TITLES[h].split(" (")[0] for h in handlers])
        axis.set_title(title)
        axis.set_yscale("log")
        axis.grid(axis="y", alpha=0.3, which="both")
    axes[0][0].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    scaling_axis, memory_axis = axes[1]
    levels = sorted(results.scaling)
    scaling_names = list(results.scaling[levels[0]]) if levels else []
    for name in scaling_names:
        rates = [summarize(name, results.scaling[level][name]).rate for level in levels]
        peaks = [summarize(name, results.scaling[level][name]).peak_rss_mib for level in levels]
        label = results.labels.get(name, name)
        scaling_axis.plot(levels, rates, marker="o", label=label)
        memory_axis.plot(levels, peaks, marker="o", label=label)
    if levels:
        scaling_axis.plot(levels, [20 * level for level in levels], "k:", label="ideal (20/s each)")
    for axis in (scaling_axis, memory_axis):
        axis.set_xscale("log")
        axis.set_xlabel("concurrency (≈ messages in flight), I/O-bound handler")
        axis.grid(alpha=0.3)
    scaling_axis.set_yscale("log")
    scaling_axis.set_title("throughput against concurrency (messages/s)")
    scaling_axis.legend(fontsize="small")
    memory_axis.set_title("peak RSS (MiB) against messages in flight")
    figure.suptitle(f"aiosqsworker benchmarks: {machine_note(loop)}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def command_line(argv: Sequence[str]) -> str:
    """The command as anyone would type it (no paths of this machine)."""
    if not argv:
        return "make bench    # = python -m benchmarks, after installing the bench extra"
    arguments = " ".join(shlex.quote(arg) for arg in argv)
    return f"python -m benchmarks {arguments}    # or: make bench BENCH_ARGS='{arguments}'"
