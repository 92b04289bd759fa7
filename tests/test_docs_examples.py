"""Every Python example in the README and the docs runs, as a reader would run it, and prints
what its page says it prints.

A block that defines ``test_`` functions is a pytest module: it runs under pytest, in a
directory of its own with no configuration (as pasted into a new project), and must pass
at least one test. Any other block runs as a script. A block opts out only with
``<!-- not run: why -->`` on the line before it.

What a page shows an example printing is the comment after a ``print(...)`` call on its line:
``print(outcome.action)  # ack``. The script's output must hold each such line, in the order
of the calls, whole; ``...`` in the comment stands for any text (``# handler ... is async``).
A print without such a comment is not checked, so the comment is only for output.

Every ``python -m aiosqsworker ...`` line of a console block (not a synopsis with
placeholders) must be one the command line takes: its options exist, its arguments fit.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from aiosqsworker._cli.main import COMMANDS, _build_parser

REPO = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)\n```", re.S)
TEST_FUNCTION = re.compile(r"^(async )?def test_", re.M)
PASSED = re.compile(r"\b[1-9]\d* passed\b")
SHOWN_OUTPUT = re.compile(r"^\s*print\(.*\)\s+# (?P<shown>.+?)\s*$", re.M)


def _examples() -> list[tuple[str, str]]:
    examples = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = "\n" + page.read_text()
        for number, match in enumerate(BLOCK.finditer(text), start=1):
            if "<!-- not run:" in match["before"]:
                continue
            examples.append((f"{page.relative_to(REPO)}#{number}", match["code"]))
    return examples


def shown_output(code: str) -> list[str]:
    """The lines the page says the example prints: the comments of its print calls."""
    return [match["shown"] for match in SHOWN_OUTPUT.finditer(code)]


def _line_pattern(shown: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in shown.split("...")))


def output_mismatch(shown: list[str], printed: str) -> str | None:
    """Why `printed` is not what the page shows (`shown`, in order), or None when it is."""
    lines = [line.strip() for line in printed.splitlines()]
    position = 0
    for expected in shown:
        pattern = _line_pattern(expected)
        while position < len(lines) and not pattern.fullmatch(lines[position]):
            position += 1
        if position == len(lines):
            return (
                f"the page shows it printing {expected!r}, but no line of its output after "
                f"the ones already matched is that; it printed:\n{printed}"
            )
        position += 1
    return None


def run_example(where: str, code: str, directory: Path) -> None:
    """Run one example as a reader would, and fail with what went wrong."""
    pytest_module = TEST_FUNCTION.search(code) is not None
    script = directory / ("test_example.py" if pytest_module else "example.py")
    script.write_text(code)
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "PYTHONPATH": str(REPO),
    }
    env.pop("AWS_ENDPOINT_URL_SQS", None)
    env.pop("PYTEST_ADDOPTS", None)
    command = [sys.executable, str(script)]
    if pytest_module:
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", script.name]
    result = subprocess.run(
        command,
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{where} failed:\n{output[-3000:]}"
    if pytest_module:
        assert PASSED.search(result.stdout), f"{where} passed no test:\n{output[-3000:]}"
        return
    mismatch = output_mismatch(shown_output(code), result.stdout)
    assert mismatch is None, f"{where} prints something else than its page: {mismatch}"


@pytest.mark.slow
@pytest.mark.parametrize(("where", "code"), _examples(), ids=[w for w, _ in _examples()])
def test_the_example_runs(where: str, code: str, tmp_path: Path) -> None:
    run_example(where, code, tmp_path)


def test_the_output_shown_is_read_from_the_print_calls_comments() -> None:
    code = (
        "print(outcome.action)  # ack\n"
        "print('no comment')\n"
        "    print(exc)  # handler ... is async\n"
        "x = 1  # not a print\n"
    )
    assert shown_output(code) == ["ack", "handler ... is async"]


def test_output_that_differs_from_the_page_is_a_mismatch() -> None:
    """Catches the docs test that checked only an example's exit code: an example printing
    `retry` where its page says `ack` exits 0 and passed."""
    assert output_mismatch(["ack"], "retry\n") is not None
    assert output_mismatch(["ack"], "ack\n") is None
    # Whole lines, in order; `...` is any text.
    assert output_mismatch(["ack"], "acknowledged\n") is not None
    assert output_mismatch(["b", "a"], "a\nb\n") is not None
    assert output_mismatch(["a", "b"], "a\nsomething else\nb\n") is None
    assert output_mismatch(["handler ... is async"], "handler f is async\n") is None


def test_an_example_printing_other_than_its_page_fails(tmp_path: Path) -> None:
    """The whole path, on purpose: a script that exits 0 but prints `retry` where the page
    says `ack` fails the docs test."""
    with pytest.raises(AssertionError, match="prints something else than its page"):
        run_example("page.md#1", "print('retry')  # ack\n", tmp_path)
    run_example("page.md#1", "print('ack')  # ack\n", tmp_path)


CONSOLE_BLOCK = re.compile(r"```console\n(?P<lines>.*?)\n```", re.S)
COMMAND = "python -m aiosqsworker"
#: A synopsis (`stats QUEUE... [--json]`) shows the shape of a command, not one to type.
SYNOPSIS = re.compile(r"[\[{]|\.\.\.|\b(QUEUE|NAME|MODULE|BODY|PORT|DLQ|URL|PATH|N|SECONDS)\b")


def _command_lines() -> list[tuple[str, str]]:
    """Every `python -m aiosqsworker ...` line of the pages' console blocks, as typed."""
    lines = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for block in CONSOLE_BLOCK.finditer(page.read_text()):
            for line in block["lines"].replace("\\\n", " ").splitlines():
                if COMMAND not in line:
                    continue
                typed = line[line.index(COMMAND) :].split(" | ")[0]  # not what it is piped to
                if not SYNOPSIS.search(typed.split(" #")[0]):
                    lines.append((page.name, typed))
    return lines


def command_line_problem(line: str) -> str | None:
    """Why the command line would refuse `line` (a `python -m aiosqsworker ...`), or None."""
    argv = shlex.split(line, comments=True)[len(COMMAND.split()) :]
    if argv and argv[0] not in {*COMMANDS, "-h", "--help", "--version"}:
        argv.insert(0, "run")
    if {"-h", "--help", "--version"} & set(argv):
        return None
    try:
        _, extras = _build_parser().parse_known_args(argv)
    except SystemExit:
        return "refused by the command line"
    return f"the command line does not take {extras}" if extras else None


@pytest.mark.parametrize(
    ("page", "line"), _command_lines(), ids=[f"{p}: {c}" for p, c in _command_lines()]
)
def test_every_command_line_on_a_page_is_one_the_cli_takes(page: str, line: str) -> None:
    """Catches a page whose command has an option the command line does not know (or lost),
    which a reader pastes and gets a usage error for."""
    problem = command_line_problem(line)
    assert problem is None, f"{page}: {line!r}: {problem}"


def test_a_command_line_the_cli_refuses_is_a_problem() -> None:
    assert command_line_problem("python -m aiosqsworker stats orders --jsn") is not None
    assert command_line_problem("python -m aiosqsworker queue create orders --fifo") is None
    assert command_line_problem("python -m aiosqsworker queue create") is not None
    assert command_line_problem("python -m aiosqsworker myservice.orders --burst") is None
