"""The benchmark harness, quickly: the aiosqsworker contender against the local responder.

No timing is asserted (machines are noisy): only that the harness counts what happened.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.harness import Outcome
from benchmarks.instructions import InstructionCounts, instruction_total
from benchmarks.report import render_markdown
from benchmarks.responder import ResponderProcess
from benchmarks.startup import ImportTimes, import_times
from benchmarks.suite import OWN_CONTENDERS, IdleRun, Plan, Results, run_client_cost


def test_quick_benchmark_of_aiosqsworker_against_the_responder() -> None:
    plan = Plan.quick()
    plan.handlers = ("noop",)
    plan.messages = {"noop": 300}
    contender = next(c for c in OWN_CONTENDERS if c.name == "aiosqsworker")
    with ResponderProcess() as responder:
        results = run_client_cost(plan, [contender], responder, progress=lambda *_: None)
        assert responder.counts()["remaining"] == 0
    [outcome] = results["noop"]["aiosqsworker"]
    assert outcome.error is None
    assert not outcome.timed_out
    assert outcome.handled == 300
    assert outcome.received == 300
    assert outcome.deleted == 300
    assert outcome.requests_per_message is not None
    assert outcome.requests_per_message > 0
    assert outcome.requests["ReceiveMessage"] >= 30
    assert outcome.seconds > 0
    assert outcome.cpu_seconds > 0
    assert outcome.peak_rss_kib > 0
    markdown = render_markdown(
        Results(client_cost=results, labels={contender.name: contender.label}),
        plan,
        command="make bench",
        chart=None,
        quick=True,
    )
    assert f"| {contender.label} | " in markdown


def test_the_lean_transport_alone_handles_and_deletes_every_message() -> None:
    """The contender with no loop around the transport: its pollers handle each poll's
    messages in turn and delete them in one batch before polling again. Catches a run that
    loses or repeats messages, deletes them one by one, or is run with a handler that waits
    (handled in turn, its figure would say nothing)."""
    plan = Plan.quick()
    plan.handlers = ("noop", "io")
    plan.messages = {"noop": 300, "io": 30}
    contender = next(c for c in OWN_CONTENDERS if c.name == "lean-transport")
    with ResponderProcess() as responder:
        results = run_client_cost(plan, [contender], responder, progress=lambda *_: None)
        assert responder.counts()["remaining"] == 0
    [outcome] = results["noop"]["lean-transport"]
    assert outcome.error is None
    assert (outcome.handled, outcome.received, outcome.deleted) == (300, 300, 300)
    assert outcome.requests["DeleteMessageBatch"] == 30
    assert results["io"]["lean-transport"] == []  # handlers in turn: the no-op handler only


def test_the_in_flight_and_idle_tables_say_what_was_measured() -> None:
    """Synthetic outcomes: the report's arithmetic (share of ideal, KiB per message, $)."""
    plan = Plan.quick()

    def slow_run(
        level: int, seconds: float, peak_mib: float, name: str = "aiosqsworker"
    ) -> Outcome:
        outcome = Outcome(name, "slow", level, 2 * level, handled=2 * level)
        outcome.seconds, outcome.peak_running = seconds, level
        outcome.peak_rss_kib = int(peak_mib * 1024)
        return outcome

    results = Results(
        inflight={
            100: {
                "aiosqsworker": [slow_run(100, 2.0, 60.0)],
                "aiohttp-loop": [slow_run(100, 2.0, 40.0, "aiohttp-loop")],
            },
            1000: {
                "aiosqsworker": [slow_run(1000, 2.5, 63.0)],
                "aiohttp-loop": [slow_run(1000, 3.0, 50.0, "aiohttp-loop")],
            },
        },
        idle={100: {"aiosqsworker": IdleRun("aiosqsworker", 100, receives=3, seconds=60.0)}},
        idle_seconds=60.0,
        labels={"aiosqsworker": "aiosqsworker"},
    )
    markdown = render_markdown(results, plan, command="make bench", chart=None, quick=True)
    # 200 msgs in 2 s of an ideal 100/s; 2,000 in 2.5 s of 1,000/s; 3 MiB over 900 more.
    # At 1,000: 800/s against the bare loop's 667/s in the same run: 1.20x.
    assert (
        "| aiosqsworker | 100 (100.0%) | 800 (80.0%) | 1.20x | 60.0 / 63.0 | 3.4 KiB |" in markdown
    )
    assert "| aiohttp-loop | 100 (100.0%) | 667 (66.7%) | 1.00x |" in markdown
    # Three calls a minute, 100 pods, a month at $0.40 per million: $5.
    assert "| 100 | 3.0/min (1.00x one poll), $5 |" in markdown


def test_the_in_flight_table_reads_medians_of_its_interleaved_repetitions() -> None:
    """Three repetitions per point: rates, ratios and RSS growth are medians, each ratio of
    a run to the bare loop's of the same repetition. Catches a table that reads only the
    first run (500/s, 1.00x here) or pairs runs of different repetitions."""
    plan = Plan.quick()

    def slow_run(name: str, level: int, seconds: float, peak_mib: float) -> Outcome:
        outcome = Outcome(name, "slow", level, 2 * level, handled=2 * level)
        outcome.seconds, outcome.peak_running = seconds, level
        outcome.peak_rss_kib = int(peak_mib * 1024)
        return outcome

    def runs(name: str, level: int, seconds: list[float], peaks: list[float]) -> list[Outcome]:
        return [slow_run(name, level, s, p) for s, p in zip(seconds, peaks, strict=True)]

    ours, floor = "aiosqsworker", "aiohttp-loop"
    results = Results(
        inflight={
            100: {
                ours: runs(ours, 100, [2.0, 2.0, 2.0], [60.0, 61.0, 62.0]),
                floor: runs(floor, 100, [2.0, 2.0, 2.0], [40.0, 40.0, 40.0]),
            },
            1000: {  # ours 500, 800, 1,000/s; the bare loop's 500, 667, 800/s
                ours: runs(ours, 1000, [4.0, 2.5, 2.0], [63.0, 66.0, 63.0]),
                floor: runs(floor, 1000, [4.0, 3.0, 2.5], [50.0, 50.0, 50.0]),
            },
        },
        labels={ours: ours},
    )
    markdown = render_markdown(results, plan, command="make bench", chart=None, quick=True)
    # Ratios 1.00, 1.20, 1.25; growths of 3, 5 and 1 MiB over 900 more handlers.
    row = (
        "| aiosqsworker | 100 (100.0%) | 800 (80.0%) | 1.20x (1.00-1.25x) | 61.0 / 63.0 | 3.4 KiB |"
    )
    assert row in markdown


def test_the_client_cost_ratios_and_start_up_read_the_same_run() -> None:
    """Synthetic outcomes: the framework's CPU per message as a ratio to the floor and the
    `def` handler's to `async def`'s, a missing lean floor said as such, and the start-up
    figures with celery's launch row saying why it is absent."""
    plan = Plan.quick()

    def run(name: str, cpu_us: float) -> Outcome:
        outcome = Outcome(name, "noop", 100, 1000, handled=1000, seconds=0.1)
        outcome.cpu_seconds = cpu_us * 1000 / 1e6
        return outcome

    lean = Outcome("lean-floor", "noop", 100, 1000, error="exit code 1: lean-floor: not here")
    launch = Outcome("aiosqsworker", "noop", 10, 1, handled=1, seconds=0.01, launch_seconds=0.42)
    results = Results(
        client_cost={
            "noop": {
                "aiosqsworker": [run("aiosqsworker", 40.0)],
                "aiosqsworker-def": [run("aiosqsworker-def", 60.0)],
                "aiohttp-loop": [run("aiohttp-loop", 32.0)],
                "lean-floor": [lean],
                "lean-transport": [run("lean-transport", 20.0)],
            }
        },
        launch={"aiosqsworker": [launch]},
        imports=ImportTimes(runs=3, importtime_ms=101.0, wall_ms=110.0, interpreter_ms=20.0),
    )
    markdown = render_markdown(results, plan, command="make bench", chart=None, quick=True)
    assert "1.25x the bare aiohttp loop's (40 against 32 µs)" in markdown
    assert "The lean floor's ratio: not measured (exit code 1: lean-floor: not here)" in markdown
    assert "60 µs of CPU per message against 40 for `async def`, 1.50x" in markdown
    assert (
        "The lean transport alone, with no loop around it: 20 µs per message, 0.62x the bare "
        "aiohttp loop's. At 0.6x that loop, 0 µs would be left"
    ) in markdown
    assert "**101 ms** by `python -X importtime`" in markdown
    assert "| aiosqsworker | 0.420 | 1 |" in markdown
    assert "| celery (SQS) | not run: the celery peer was not installed" in markdown


def test_import_time_is_read_from_fresh_processes() -> None:
    times = import_times(runs=1)
    assert times.runs == 1
    assert times.importtime_ms > 0
    assert times.interpreter_ms > 0


def test_the_instruction_counts_are_per_message_and_said_as_ratios(tmp_path: Path) -> None:
    """Synthetic counts: instructions per message shown against the bare aiohttp loop, a
    contender that could not be counted said as such, and a machine without valgrind told
    how to get it; cachegrind's summary line read as the total."""
    counts = InstructionCounts(
        per_message={"aiosqsworker": 90_000.0, "aiohttp-loop": 120_000.0},
        errors={"lean-floor": "exit code 1: lean-floor: not here"},
    )
    results = Results(
        client_cost={"noop": {}},
        instructions=counts,
        labels={"aiosqsworker": "aiosqsworker", "aiohttp-loop": "bare aiohttp loop"},
    )
    markdown = render_markdown(results, Plan.quick(), command="make bench", chart=None, quick=True)
    assert "| aiosqsworker | 90,000 | 0.75x |" in markdown
    assert "| bare aiohttp loop | 120,000 | 1.00x |" in markdown
    assert "| lean-floor | not counted: exit code 1: lean-floor: not here | - |" in markdown

    results.instructions = InstructionCounts(skipped="valgrind is not installed")
    markdown = render_markdown(results, Plan.quick(), command="make bench", chart=None, quick=True)
    assert "Not counted: valgrind is not installed." in markdown

    out = tmp_path / "cachegrind.out"
    out.write_text("desc: I1 cache: ...\ncmd: python\nevents: Ir\nsummary: 123456789\n")
    assert instruction_total(out) == 123_456_789
