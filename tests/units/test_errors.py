"""The exception tree's helpers (`_errors.py`).

Pure decisions and small parts, called directly: no server here.
"""

from __future__ import annotations


def test_two_pollers_failing_alike_surface_as_one_framework_error() -> None:
    from aiosqsworker._errors import QueueNotFoundError, single_error

    group = ExceptionGroup(
        "pollers",
        [QueueNotFoundError("gone"), ExceptionGroup("inner", [QueueNotFoundError("gone")])],
    )
    assert isinstance(single_error(group), QueueNotFoundError)
    assert single_error(ExceptionGroup("mixed", [QueueNotFoundError("gone"), ValueError()])) is None
