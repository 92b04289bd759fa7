"""The AIOSQSWORKER_* environment: read in one place by the command line and `App.from_env`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest

from aiosqsworker import App, ConfigurationError
from aiosqsworker._config import EnvironmentSettings

REPO = Path(__file__).resolve().parent.parent


def test_every_setting_is_read_and_checked() -> None:
    settings = EnvironmentSettings.read(
        {
            "AIOSQSWORKER_SHUTDOWN_TIMEOUT": "12.5",
            "AIOSQSWORKER_CLIENT": "botocore",
            "AIOSQSWORKER_CONCURRENCY": "40",
            "AIOSQSWORKER_CONSUMERS": "handle_order, send_email",
            "AIOSQSWORKER_WORKERS": "4",
            "AIOSQSWORKER_METRICS_PORT": "9090",
            "AIOSQSWORKER_METRICS_HOST": "0.0.0.0",
            "AIOSQSWORKER_LOG_LEVEL": "debug",
            "AIOSQSWORKER_LOG_FORMAT": "JSON",
            "AIOSQSWORKER_WORKER_INDEX": "2",
            "AIOSQSWORKER_METRICS": "",  # another tool's: not close to any setting's name
            "HOME": "/root",
        }
    )
    assert settings == EnvironmentSettings(
        shutdown_timeout=12.5,
        client="botocore",
        concurrency=40,
        only=("handle_order", "send_email"),
        workers=4,
        metrics_port=9090,
        metrics_host="0.0.0.0",
        log_level="DEBUG",
        log_format="json",
        worker_index=2,
    )
    assert settings.app_settings() == {
        "shutdown_timeout": 12.5,
        "client": "botocore",
        "concurrency": 40,
        "only": ("handle_order", "send_email"),
    }
    assert EnvironmentSettings.read({"AIOSQSWORKER_WORKERS": " "}) == EnvironmentSettings()


@pytest.mark.parametrize(
    ("variable", "value", "error"),
    [
        ("AIOSQSWORKER_WORKERS", "two", "AIOSQSWORKER_WORKERS='two' is invalid: give a "
         "whole number from 1 to 1024, or auto"),
        ("AIOSQSWORKER_CONCURRENCY", "0", "from 1 to 10000"),
        ("AIOSQSWORKER_SHUTDOWN_TIMEOUT", "-1", "a number of seconds from 0 to 86400"),
        ("AIOSQSWORKER_SHUTDOWN_TIMEOUT", "nan", "a number of seconds"),
        ("AIOSQSWORKER_CLIENT", "boto", "choose one of fast, botocore"),
        ("AIOSQSWORKER_LOG_LEVEL", "LOUD", "choose one of DEBUG, INFO, WARNING, ERROR"),
        ("AIOSQSWORKER_METRICS_PORT", "70000", "a port from 1 to 65535"),
        ("AIOSQSWORKER_CONSUMERS", ",", "consumer names separated by commas"),
        ("AIOSQSWORKER_CONCURENCY", "4", "AIOSQSWORKER_CONCURENCY is not a setting (did you "
         "mean AIOSQSWORKER_CONCURRENCY?)"),
        ("AIOSQSWORKER_CONSUMER", "a", "did you mean AIOSQSWORKER_CONSUMERS?"),
    ],
)  # fmt: skip
def test_a_bad_value_or_a_misspelled_name_says_what_to_fix(
    variable: str, value: str, error: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        EnvironmentSettings.read({variable: value})
    assert error in str(raised.value)


def test_a_misspelled_name_is_offered_only_the_public_variables() -> None:
    """Catches the list of settings built from every variable read, which offered a user the
    two the supervisor sets for its workers (WORKER_INDEX, SUPERVISOR_PID)."""
    with pytest.raises(ConfigurationError) as raised:
        EnvironmentSettings.read({"AIOSQSWORKER_CONCURENCY": "4"})
    assert "AIOSQSWORKER_LOG_FORMAT" in str(raised.value)
    assert "WORKER_INDEX" not in str(raised.value)
    assert "SUPERVISOR_PID" not in str(raised.value)
    # The supervisor's own are still read.
    assert EnvironmentSettings.read({"AIOSQSWORKER_WORKER_INDEX": "2"}).worker_index == 2


def test_from_env_lets_the_environment_replace_the_apps_own_settings() -> None:
    environ = {"AIOSQSWORKER_SHUTDOWN_TIMEOUT": "60", "AIOSQSWORKER_CONCURRENCY": "8"}
    app = App.from_env(environ, shutdown_timeout=5, region="eu-west-1")
    assert (app.config.shutdown_timeout, app.config.concurrency) == (60, 8)
    assert app.config.region == "eu-west-1"
    assert App.from_env({}, shutdown_timeout=5).config.shutdown_timeout == 5
    with pytest.raises(ConfigurationError, match="AIOSQSWORKER_CLIENT='x' is invalid"):
        App.from_env({"AIOSQSWORKER_CLIENT": "x"})


def test_from_env_reads_the_process_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIOSQSWORKER_CONSUMERS", "handle_order")
    assert App.from_env().config.only == ("handle_order",)


def test_app_level_overrides_are_checked_like_every_setting() -> None:
    with pytest.raises(ConfigurationError, match="concurrency=0 is invalid"):
        App(concurrency=0)
    with pytest.raises(ConfigurationError, match="only='handle' is invalid"):
        App(only="handle")
    with pytest.raises(ConfigurationError, match="only=\\[\\] is invalid"):
        App(only=[])


async def test_the_command_line_refuses_a_bad_variable_in_one_line() -> None:
    """The command line reads the variables through the same checks as `App.from_env`."""
    result = await anyio.run_process(
        [sys.executable, "-m", "aiosqsworker", "tests.apps.orders_service"],
        cwd=REPO,
        env={**os.environ, "AIOSQSWORKER_CONCURRENCY": "lots"},
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.decode().strip().splitlines() == [
        "aiosqsworker: error: AIOSQSWORKER_CONCURRENCY='lots' is invalid: it must be a whole "
        "number from 1 to 10000"
    ]
