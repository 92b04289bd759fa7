"""Peers: each installed into its own environment, outside the project.

A peer's environment lives under ``--peers-dir`` (a temporary directory by default), one per
peer so that their pins never meet; it is made once and reused while its requirements stay
the same. A Python peer gets a virtual environment from PyPI, made with the Python running the
benchmarks or, for a peer that needs another version, with the interpreter its spec names
(`PeerSpec.python`, found on ``PATH`` or among pyenv's versions), and its driver
(`benchmarks/peers/`) runs with that environment's Python from the project's root, so it
imports `benchmarks._probe` and `benchmarks.handlers` (standard library only) and the peer,
nothing else of the project. A Node.js peer gets a directory of packages from the npm
registry, and its driver (a ``.cjs`` script beside the Python ones) finds them through
``NODE_PATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .harness import CLIENT_COST_HANDLERS, Contender

__all__ = ["PEERS", "PeerSpec", "find_python", "prepare_peers"]

INSTALL_TIMEOUT = 600.0


@dataclass(frozen=True)
class PeerSpec:
    name: str
    label: str
    requirements: tuple[str, ...]
    distribution: str
    module: str
    handlers: tuple[str, ...] = CLIENT_COST_HANDLERS
    #: Said in the report beside the peer's status.
    note: str = ""
    #: "node": `requirements` are npm packages and `module` is the driver's script.
    runtime: Literal["python", "node"] = "python"
    #: The interpreter its virtual environment is made with, for a peer that needs another
    #: Python than the one running the benchmarks (e.g. "python3.12"): `find_python` looks
    #: for it; None: the benchmarks' own.
    python: str | None = None


PEERS: dict[str, PeerSpec] = {
    spec.name: spec
    for spec in (
        PeerSpec(
            "boto3-loop",
            "tutorial-style boto3 loop (sequential)",
            ("boto3",),
            "boto3",
            "benchmarks.peers.boto3_loop",
        ),
        PeerSpec(
            "sqs-workers",
            "sqs-workers (RawQueue, one thread)",
            ("sqs-workers", "typing-extensions"),
            "sqs-workers",
            "benchmarks.peers.sqs_workers",
            note="typing-extensions added: it imports it without declaring it",
        ),
        PeerSpec(
            "aws-sqs-consumer",
            "aws-sqs-consumer (batches of 10, one thread)",
            ("aws-sqs-consumer",),
            "aws-sqs-consumer",
            "benchmarks.peers.aws_sqs_consumer",
        ),
        PeerSpec(
            "dramatiq-sqs",
            "dramatiq + dramatiq-sqs (threads)",
            ("dramatiq-sqs",),
            "dramatiq-sqs",
            "benchmarks.peers.dramatiq_sqs",
        ),
        PeerSpec(
            "taskiq-aio-sqs",
            "taskiq + taskiq-aio-sqs (asyncio)",
            ("taskiq-aio-sqs",),
            "taskiq-aio-sqs",
            "benchmarks.peers.taskiq_aio_sqs",
        ),
        PeerSpec(
            "celery-sqs",
            "celery[sqs] (thread pool)",
            ("celery[sqs]",),
            "celery",
            "benchmarks.peers.celery_sqs",
        ),
        PeerSpec(
            "sqs-consumer-node",
            "sqs-consumer (Node.js, batches of 10, one consumer per 10 in flight)",
            ("sqs-consumer", "@aws-sdk/client-sqs"),
            "sqs-consumer",
            "benchmarks/peers/sqs_consumer.cjs",
            runtime="node",
        ),
        PeerSpec(
            "fanferro",
            "fanferro (asyncio, Rust core)",
            ("fanferro", "uvloop"),
            "fanferro",
            "benchmarks.peers.fanferro_sqs",
            note="Python 3.12 (it needs 3.12 or later); uvloop added: it runs on the suite's loop",
            python="python3.12",
        ),
    )
}


def _runs(python: str) -> bool:
    """Whether `python` starts (a pyenv shim on PATH fails for a version not selected)."""
    try:
        completed = subprocess.run(
            [python, "-c", "pass"], capture_output=True, timeout=60, check=False
        )
    except OSError:
        return False
    return completed.returncode == 0


def _version_key(path: Path) -> list[int]:
    """pyenv's version directory of `path` (".../versions/3.12.1/bin/python3.12") as numbers."""
    return [int(part) if part.isdigit() else -1 for part in path.parent.parent.name.split(".")]


def find_python(name: str) -> str | None:
    """The path of the interpreter `name` ("python3.12"): on PATH, else the newest of pyenv's
    versions that has it (``$PYENV_ROOT``, by default ``~/.pyenv``); None if none runs."""
    candidates = [found] if (found := shutil.which(name)) else []
    versions = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    if versions.is_dir():
        found_there = sorted(versions.glob(f"*/bin/{name}"), key=_version_key, reverse=True)
        candidates += [str(path) for path in found_there]
    return next((candidate for candidate in candidates if _runs(candidate)), None)


def _python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[-1][:300]


def _run_installer(command: list[str]) -> str:
    """Run one install command: "" or why it failed."""
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=INSTALL_TIMEOUT)
    except subprocess.CalledProcessError as exc:
        return "could not be installed: " + _last_line(
            (exc.stderr or b"").decode(errors="replace") or (exc.stdout or b"").decode()
        )
    except subprocess.TimeoutExpired as exc:
        return f"could not be installed: no end within {exc.timeout:.0f} s"
    return ""


def install(spec: PeerSpec, directory: Path, log: Callable[[str], None]) -> tuple[Path, str]:
    """Where the peer lives (its Python, or its packages' directory), and "" or why not."""
    home = directory / spec.name
    stamp = home / ".bench-requirements"
    wanted = "\n".join(spec.requirements)
    interpreter = sys.executable
    if spec.python is not None:
        found = find_python(spec.python)
        if found is None:
            return _python(home), f"not run: {spec.python} is not on this machine (PATH or pyenv)"
        interpreter = found
        wanted += f"\n{spec.python}"
    if spec.runtime == "node":
        installed = home / "node_modules"
        if shutil.which("node") is None or shutil.which("npm") is None:
            return installed, "not run: Node.js and npm are not on this machine"
    else:
        installed = _python(home)
    if installed.exists() and stamp.exists() and stamp.read_text() == wanted:
        return installed, ""
    log(f"  installing {spec.name} ({' '.join(spec.requirements)}) ...")
    if spec.runtime == "node":
        home.mkdir(parents=True, exist_ok=True)
        npm = ["npm", "install", "--prefix", str(home), "--no-audit", "--no-fund", "--silent"]
        problem = _run_installer([*npm, *spec.requirements])
    else:
        problem = _run_installer([interpreter, "-m", "venv", "--clear", str(home)])
        pip = [str(installed), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        problem = problem or _run_installer([*pip, *spec.requirements])
    if not problem:
        stamp.write_text(wanted)
    return installed, problem


def version(spec: PeerSpec, installed: Path) -> str:
    if spec.runtime == "node":
        try:
            manifest = json.loads((installed / spec.distribution / "package.json").read_text())
        except (OSError, ValueError):
            return "?"
        return str(manifest.get("version", "?"))
    completed = subprocess.run(
        [
            str(installed),
            "-c",
            f"from importlib import metadata; print(metadata.version({spec.distribution!r}))",
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return completed.stdout.decode().strip() or "?"


def contender(spec: PeerSpec, installed: Path) -> Contender:
    label = f"{spec.label} {version(spec, installed)}"
    if spec.runtime == "node":
        return Contender(
            name=spec.name,
            label=label,
            program=("node", spec.module),
            env=(("NODE_PATH", str(installed)),),
            peer=True,
            handlers=spec.handlers,
        )
    return Contender(
        name=spec.name,
        label=label,
        module=spec.module,
        python=str(installed),
        peer=True,
        handlers=spec.handlers,
    )


def prepare_peers(
    names: list[str], directory: Path, log: Callable[[str], None]
) -> tuple[list[Contender], dict[str, str]]:
    """The peers that installed, as contenders, and each peer's status."""
    directory.mkdir(parents=True, exist_ok=True)
    contenders: list[Contender] = []
    status: dict[str, str] = {}
    for name in names:
        spec = PEERS[name]
        installed, problem = install(spec, directory, log)
        if problem:
            status[name] = problem
            log(f"  {name}: {problem}")
            continue
        contenders.append(contender(spec, installed))
        status[name] = "installed"
    return contenders, status
