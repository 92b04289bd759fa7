"""The settings written more than once stay one list.

The ``AIOSQSWORKER_*`` variables are written three times: the parsers in
``_config/environment.py``, the fields of `EnvironmentSettings` and the table of
docs/configuration.md. A setting added to one of them and forgotten in another (a parser whose
value no field takes, a variable the page never mentions) is what these checks catch.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from aiosqsworker._config import environment

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _field(variable: str) -> str:
    return "only" if variable == "CONSUMERS" else variable.lower()


def test_every_environment_variable_has_a_field_and_every_field_a_variable() -> None:
    """A new variable parsed but given no `EnvironmentSettings` field fails ``read()``."""
    fields = {field.name for field in dataclasses.fields(environment.EnvironmentSettings)}
    assert {_field(name) for name in environment._ENV_PARSERS} == fields


def test_the_configuration_page_names_every_variable_a_user_sets() -> None:
    """A new variable left out of docs/configuration.md is a setting no reader finds."""
    documented = set(re.findall(r"AIOSQSWORKER_([A-Z_]+)", DOCS.read_text()))
    offered = set(environment._ENV_PARSERS) - set(environment._SET_BY_THE_SUPERVISOR)
    assert offered <= documented
