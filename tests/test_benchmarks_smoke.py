"""The benchmark harness, quickly: the aiosqsworker contender against the local responder.

No timing is asserted (machines are noisy): only that the harness counts what happened.
"""

from __future__ import annotations

from benchmarks.report import render_markdown
from benchmarks.responder import ResponderProcess
from benchmarks.suite import OWN_CONTENDERS, Plan, Results, run_client_cost


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
