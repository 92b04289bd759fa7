"""The command line starts fast: asking for help imports no SQS client, HTTP library or server.

`python -m aiosqsworker --help` (and each command's ``--help``) only builds the parsers; the
AWS SDK (botocore, aiobotocore), aiohttp and moto are imported by the command that runs and
needs them. Each case runs the command in a fresh interpreter and lists the heavy packages
it found in ``sys.modules`` once the help was printed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .clikit import REPO

HEAVY = ("botocore", "aiobotocore", "aiohttp", "moto")

#: Runs `python -m aiosqsworker ARGS...` as the console script does, then reports (on its
#: last stderr line) which of HEAVY were imported and the exit status.
PROBE = """\
import json, runpy, sys
heavy = json.loads(sys.argv[1])
sys.argv = ["aiosqsworker", *sys.argv[2:]]
try:
    runpy.run_module("aiosqsworker", run_name="__main__", alter_sys=True)
    status = None
except SystemExit as exc:
    status = exc.code
loaded = [name for name in heavy if name in sys.modules]
print(json.dumps({"status": status, "loaded": loaded}), file=sys.stderr)
"""


def _help_of(*args: str) -> tuple[str, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(HEAVY), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return done.stdout, report


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["run", "--help"],
        ["demo", "--help"],
        ["scale", "--help"],
        ["local-server", "--help"],
        ["send", "--help"],
        ["stats", "--help"],
        ["dlq", "inspect", "--help"],
        ["dlq", "redrive", "--help"],
        ["queue", "create", "--help"],
        ["bucket", "create", "--help"],
    ],
    ids=" ".join,
)
def test_help_imports_no_sdk_http_library_or_server(args: list[str]) -> None:
    """Catches a module-level import of what only a command's run needs: aiobotocore or the
    local server (and with it the testing package) at the top of the demo or `local-server`,
    `from botocore.exceptions import ...` at the top of the bucket tool, or aiohttp (for
    /metrics) loaded with the runner that ends every process."""
    out, report = _help_of(*args)
    assert report["status"] == 0
    assert out.startswith(("usage:", "aiosqsworker "))
    assert report["loaded"] == []
