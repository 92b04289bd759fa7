"""Every Python example in the README and the docs runs, as a reader would run it.

A block that defines ``test_`` functions is a pytest module: it runs under pytest, in a
directory of its own with no configuration (as pasted into a new project), and must pass
at least one test. Any other block runs as a script. A block opts out only with
``<!-- not run: why -->`` on the line before it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)\n```", re.S)
TEST_FUNCTION = re.compile(r"^(async )?def test_", re.M)
PASSED = re.compile(r"\b[1-9]\d* passed\b")


def _examples() -> list[tuple[str, str]]:
    examples = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = "\n" + page.read_text()
        for number, match in enumerate(BLOCK.finditer(text), start=1):
            if "<!-- not run:" in match["before"]:
                continue
            examples.append((f"{page.relative_to(REPO)}#{number}", match["code"]))
    return examples


@pytest.mark.slow
@pytest.mark.parametrize(("where", "code"), _examples(), ids=[w for w, _ in _examples()])
def test_the_example_runs(where: str, code: str, tmp_path: Path) -> None:
    pytest_module = TEST_FUNCTION.search(code) is not None
    script = tmp_path / ("test_example.py" if pytest_module else "example.py")
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
        cwd=tmp_path,
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
