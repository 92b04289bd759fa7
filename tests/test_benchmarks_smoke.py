"""The benchmark harness, quickly: the aiosqsworker contender against the local responder.

No timing is asserted (machines are noisy): only that the harness counts what happened.
"""

from __future__ import annotations

from benchmarks.harness import Outcome
from benchmarks.report import render_markdown
from benchmarks.responder import ResponderProcess
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


def test_the_in_flight_and_idle_tables_say_what_was_measured() -> None:
    """Synthetic outcomes: the report's arithmetic (share of ideal, KiB per message, $)."""
    plan = Plan.quick()

    def slow_run(level: int, seconds: float, peak_mib: float) -> Outcome:
        outcome = Outcome("aiosqsworker", "slow", level, 2 * level, handled=2 * level)
        outcome.seconds, outcome.peak_running = seconds, level
        outcome.peak_rss_kib = int(peak_mib * 1024)
        return outcome

    results = Results(
        inflight={
            100: {"aiosqsworker": [slow_run(100, 2.0, 60.0)]},
            1000: {"aiosqsworker": [slow_run(1000, 2.5, 63.0)]},
        },
        idle={100: {"aiosqsworker": IdleRun("aiosqsworker", 100, receives=3, seconds=60.0)}},
        idle_seconds=60.0,
        labels={"aiosqsworker": "aiosqsworker"},
    )
    markdown = render_markdown(results, plan, command="make bench", chart=None, quick=True)
    # 200 msgs in 2 s of an ideal 100/s; 2,000 in 2.5 s of 1,000/s; 3 MiB over 900 more.
    assert "| aiosqsworker | 100 (100.0%) | 800 (80.0%) | 60.0 / 63.0 | 3.4 KiB |" in markdown
    # Three calls a minute, 100 pods, a month at $0.40 per million: $5.
    assert "| 100 | 3.0/min (1.00x one poll), $5 |" in markdown
