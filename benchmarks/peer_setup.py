"""Peers: each installed from PyPI into its own virtual environment, outside the project.

A peer's environment lives under ``--peers-dir`` (a temporary directory by default), one per
peer so that their pins never meet; it is made once and reused while its requirements stay
the same. Its driver (`benchmarks/peers/`) runs with that environment's Python from the
project's root, so it imports `benchmarks._probe` and `benchmarks.handlers` (standard
library only) and the peer, nothing else of the project.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .harness import Contender

__all__ = ["PEERS", "PeerSpec", "prepare_peers"]

INSTALL_TIMEOUT = 600.0


@dataclass(frozen=True)
class PeerSpec:
    name: str
    label: str
    requirements: tuple[str, ...]
    distribution: str
    module: str
    handlers: tuple[str, ...] = ("noop", "io", "cpu")
    #: Said in the report beside the peer's status.
    note: str = ""


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
    )
}


def _python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[-1][:300]


def install(spec: PeerSpec, directory: Path, log: Callable[[str], None]) -> tuple[Path, str]:
    """The peer's Python, and "" or why it could not be installed."""
    venv = directory / spec.name
    python = _python(venv)
    stamp = venv / ".bench-requirements"
    wanted = "\n".join(spec.requirements)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python, ""
    log(f"  installing {spec.name} ({' '.join(spec.requirements)}) ...")
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run(
            [*pip, *spec.requirements],
            check=True,
            capture_output=True,
            timeout=INSTALL_TIMEOUT,
        )
    except subprocess.CalledProcessError as exc:
        return python, "could not be installed: " + _last_line(
            (exc.stderr or b"").decode(errors="replace") or (exc.stdout or b"").decode()
        )
    except subprocess.TimeoutExpired as exc:
        return python, f"could not be installed: no end within {exc.timeout:.0f} s"
    stamp.write_text(wanted)
    return python, ""


def version(python: Path, distribution: str) -> str:
    completed = subprocess.run(
        [
            str(python),
            "-c",
            f"from importlib import metadata; print(metadata.version({distribution!r}))",
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return completed.stdout.decode().strip() or "?"


def prepare_peers(
    names: list[str], directory: Path, log: Callable[[str], None]
) -> tuple[list[Contender], dict[str, str]]:
    """The peers that installed, as contenders, and each peer's status."""
    directory.mkdir(parents=True, exist_ok=True)
    contenders: list[Contender] = []
    status: dict[str, str] = {}
    for name in names:
        spec = PEERS[name]
        python, problem = install(spec, directory, log)
        if problem:
            status[name] = problem
            log(f"  {name}: {problem}")
            continue
        label = f"{spec.label} {version(python, spec.distribution)}"
        contenders.append(
            Contender(
                name=name,
                label=label,
                module=spec.module,
                python=str(python),
                peer=True,
                handlers=spec.handlers,
            )
        )
        status[name] = "installed"
    return contenders, status
