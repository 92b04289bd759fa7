"""The peers' set-up: a peer that needs another Python than the benchmarks' own; their runs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import make_plan, parse
from benchmarks.peer_setup import PEERS, PeerSpec, find_python, prepare_peers


def _pyenv_version(root: Path, version: str, name: str) -> Path:
    """A pyenv version directory whose `name` is this test's own interpreter."""
    binary = root / "versions" / version / "bin" / name
    binary.parent.mkdir(parents=True)
    binary.symlink_to(sys.executable)
    return binary


def test_a_peer_whose_python_is_nowhere_is_skipped_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer that names an interpreter found neither on PATH nor among pyenv's versions is
    reported as not run, saying which, and nothing is installed for it. Catches making its
    environment with the benchmarks' own Python regardless (the peer's wheel then refuses to
    install, or installs for the wrong version)."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    spec = PeerSpec("elsewhere", "a peer", ("some-peer",), "some-peer", "x", python="python3.99")
    monkeypatch.setitem(PEERS, spec.name, spec)
    said: list[str] = []

    contenders, status = prepare_peers([spec.name], tmp_path / "peers", said.append)

    assert contenders == []
    assert status == {"elsewhere": "not run: python3.99 is not on this machine (PATH or pyenv)"}
    assert said == ["  elsewhere: " + status["elsewhere"]]
    assert not (tmp_path / "peers" / "elsewhere").exists()


def test_the_interpreter_is_the_newest_pyenv_version_when_the_path_one_does_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyenv puts a shim for every version's `python3.12` on PATH, which fails unless that
    version is selected: the interpreter is then taken from pyenv's versions, the newest
    first by number. Catches trusting the first `python3.12` on PATH, and ordering versions
    as text (3.12.9 after 3.12.10)."""
    shims = tmp_path / "shims"
    shims.mkdir()
    shim = shims / "python3.12"
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.12: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{tmp_path / 'empty-bin'}")
    root = tmp_path / "pyenv"
    monkeypatch.setenv("PYENV_ROOT", str(root))
    _pyenv_version(root, "3.12.9", "python3.12")
    newest = _pyenv_version(root, "3.12.10", "python3.12")
    _pyenv_version(root, "3.11.7", "python3.11")

    assert find_python("python3.12") == str(newest)
    assert find_python("python3.13") is None


def test_repetitions_asked_for_apply_to_the_peers_too() -> None:
    """`--repetitions 5` runs every contender five times, peers included, so a peer's figure
    is a median beside the others', not one sample; without it a peer runs once. Catches the
    option setting the own contenders' runs only."""
    assert make_plan(parse(["--repetitions", "5"])).peer_repetitions == 5
    assert make_plan(parse([])).peer_repetitions == 1
