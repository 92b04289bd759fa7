"""`python -m aiosqsworker`: run consumers, the demo, and the operator's tools."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from .._app import App
from .._errors import AioSQSWorkerError, ConfigurationError
from .._logging import configure_logging
from .._registry import default_registry
from .._run.runner import run, uvloop_available

__all__ = ["load_app", "main"]

ENV_PREFIX = "AIOSQSWORKER_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
COMMANDS = ("run", "demo", "scale", "send", "stats", "dlq")
MAX_PORT = 65_535

RUN_EPILOG = """\
environment:
  AWS_REGION, AWS_DEFAULT_REGION   region, when --region is not given
  AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL
                                   endpoint, when --endpoint-url is not given
  AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...
                                   credentials, through botocore's usual chain
  AIOSQSWORKER_SHUTDOWN_TIMEOUT    default of --shutdown-timeout
  AIOSQSWORKER_WORKERS             default of --workers
  AIOSQSWORKER_CLIENT              default of --client
  AIOSQSWORKER_METRICS_PORT        default of --metrics-port
  AIOSQSWORKER_METRICS_HOST        default of --metrics-host
  AIOSQSWORKER_LOG_LEVEL           default of --log-level
  AIOSQSWORKER_LOG_FORMAT          default of --log-format

signals:
  SIGTERM or SIGINT stops gracefully: no new polls, buffered messages released,
  running handlers given --shutdown-timeout seconds, acknowledgements flushed.
  A second signal cancels running handlers (their messages are released).

exit codes:
  0 stopped gracefully; 1 a fatal error (unknown queue, refused credentials, ...);
  2 bad usage; 128+N forced by a second signal N (143 SIGTERM, 130 SIGINT).

examples:
  python -m aiosqsworker myservice.orders
  python -m aiosqsworker myservice.orders:app --shutdown-timeout 60
  python -m aiosqsworker myservice.orders --workers 4 --metrics-port 9090
  AWS_ENDPOINT_URL_SQS=http://127.0.0.1:4566 python -m aiosqsworker myservice.orders
"""

SCALE_EPILOG = """\
how it decides:
  arrivals = completions + growth of the queue (visible + in flight + delayed),
  desired  = ceil((arrivals + visible / --target-latency) / per-worker rate),
  clamped to [--min, --max]. The per-worker rate is --per-worker-rate, or measured
  from the workers' own counters (--worker-metrics, their /metrics endpoints).

examples:
  python -m aiosqsworker scale orders --target-latency 60 --min 1 --max 20 --per-worker-rate 40
  python -m aiosqsworker scale orders --worker-metrics http://10.0.0.5:9090/metrics --watch
"""


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name, default)


def _env_int(name: str, default: int | None) -> int | None:
    raw = _env(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(
            f"{ENV_PREFIX}{name}={raw!r} is invalid: it must be a whole number"
        ) from None


def _metrics_port(args: argparse.Namespace, workers: int) -> int | None:
    """The first metrics port, checked: worker i of `workers` serves on port + i."""
    from_environment = args.metrics_port is None
    port = _env_int("METRICS_PORT", None) if from_environment else args.metrics_port
    if port is None:
        return None
    highest = MAX_PORT - workers + 1
    if not 1 <= port <= highest:
        given = f"{ENV_PREFIX}METRICS_PORT={port}" if from_environment else f"--metrics-port {port}"
        each = f" (worker i of --workers {workers} serves on PORT + i)" if workers > 1 else ""
        raise ConfigurationError(f"{given} is invalid: it must be a port from 1 to {highest}{each}")
    return port


def _environment_choice_problem(args: argparse.Namespace) -> str | None:
    """argparse checks choices on the command line only, not on defaults from the environment."""
    for option, choices in (("log_level", LOG_LEVELS), ("log_format", LOG_FORMATS)):
        value = getattr(args, option, None)
        if value is not None and value not in choices:
            name = f"{ENV_PREFIX}{option.upper()}"
            raw = os.environ.get(name, value)
            return f"{name}={raw!r} is invalid: choose one of {', '.join(choices)}"
    return None


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", help="AWS region (default: AWS_REGION, then botocore's)")
    parser.add_argument(
        "--endpoint-url", help="SQS endpoint (default: AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL)"
    )
    parser.add_argument("--profile", help="AWS profile (default: AWS_PROFILE)")


def _add_logging_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        default=(_env("LOG_LEVEL") or "INFO").upper(),
        choices=LOG_LEVELS,
        type=str.upper,
        help="(default: %(default)s)",
    )
    parser.add_argument(
        "--log-format",
        default=_env("LOG_FORMAT") or "text",
        choices=LOG_FORMATS,
        help="text for people, json (one object per line) for machines (default: %(default)s)",
    )
    parser.add_argument(
        "--no-uvloop",
        action="store_true",
        help="use asyncio's own event loop even when uvloop is installed",
    )


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aiosqsworker",
        description="Run SQS consumers. Commands: run (the default), demo, scale, send, "
        "stats, dlq.",
        usage="python -m aiosqsworker [run] MODULE[:APP] [options]\n"
        "       python -m aiosqsworker demo [options]\n"
        "       python -m aiosqsworker scale QUEUE [options]\n"
        "       python -m aiosqsworker send QUEUE [BODY ...] [options]\n"
        "       python -m aiosqsworker stats QUEUE... [options]\n"
        "       python -m aiosqsworker dlq {inspect,redrive} QUEUE [options]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Without prog, a command's usage line would repeat the whole multi-line usage above.
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", prog="python -m aiosqsworker")

    run_parser = sub.add_parser(
        "run",
        help="run the consumers a module registers (the default command)",
        description="Import MODULE and run every consumer it registered with @consumer, or "
        "the App named by MODULE:APP, until SIGTERM or SIGINT.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run_parser.add_argument("target", metavar="MODULE[:APP]", help="e.g. myservice.orders")
    _add_connection_options(run_parser)
    run_parser.add_argument(
        "--shutdown-timeout",
        type=float,
        help="seconds running handlers get to finish on shutdown (default: "
        "AIOSQSWORKER_SHUTDOWN_TIMEOUT, else the App's, else 30)",
    )
    run_parser.add_argument(
        "--workers",
        type=int,
        help="worker processes, under a supervisor that forwards signals and restarts "
        "crashed workers (default: AIOSQSWORKER_WORKERS, else 1: no supervisor)",
    )
    run_parser.add_argument(
        "--client",
        choices=["fast", "botocore"],
        help="'fast' sends the hot calls over aiohttp directly, 'botocore' everything through "
        "aiobotocore (default: AIOSQSWORKER_CLIENT, else the App's, else fast)",
    )
    run_parser.add_argument(
        "--metrics-port",
        type=int,
        help="serve /metrics, /healthz and /readyz on this port (default: "
        "AIOSQSWORKER_METRICS_PORT, else none). With --workers N, worker i uses port+i",
    )
    run_parser.add_argument(
        "--metrics-host",
        help="address the metrics server binds (default: AIOSQSWORKER_METRICS_HOST, else "
        "127.0.0.1; use 0.0.0.0 only where the network is yours)",
    )
    progress = run_parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="print a progress line every 5 s (default: when stderr is a terminal)",
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    _add_logging_options(run_parser)
    # `python -m aiosqsworker MODULE` is `run MODULE`: the top-level help shows its options.
    parser.epilog = "the run command (the default):\n\n" + run_parser.format_help()

    demo_parser = sub.add_parser(
        "demo",
        help="run demo consumers against a local SQS server started for the occasion",
        description="Start a local SQS server (moto's) on 127.0.0.1, create demo queues, "
        "send messages (some slow, some poisonous) and consume them with visible progress.",
    )
    demo_parser.add_argument("--messages", type=int, default=200, help="(default: %(default)s)")
    demo_parser.add_argument(
        "--keep-running",
        action="store_true",
        help="keep consuming after the demo messages are done, until Ctrl-C",
    )
    _add_logging_options(demo_parser)

    scale_parser = sub.add_parser(
        "scale",
        help="recommend a worker count for a queue, from SQS's own counters",
        description="Sample the queue (and the workers' metrics, if given) and print how many "
        "workers keep up with arrivals and drain the backlog within --target-latency.",
        epilog=SCALE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scale_parser.add_argument("queue", metavar="QUEUE", help="queue name or URL")
    scale_parser.add_argument("--target-latency", type=float, default=60.0, help="seconds")
    scale_parser.add_argument("--min", type=int, default=1, dest="minimum")
    scale_parser.add_argument("--max", type=int, default=20, dest="maximum")
    scale_parser.add_argument(
        "--per-worker-rate", type=float, help="messages/s one worker handles, if known"
    )
    scale_parser.add_argument(
        "--worker-metrics",
        action="append",
        default=[],
        metavar="URL",
        help="a worker's /metrics URL (repeat for each worker): measures the rate",
    )
    scale_parser.add_argument(
        "--interval", type=float, default=10.0, help="seconds between samples (default: 10)"
    )
    scale_parser.add_argument("--watch", action="store_true", help="keep printing")
    _add_connection_options(scale_parser)
    _add_logging_options(scale_parser)

    from .tools import add_admin_parsers

    add_admin_parsers(
        sub,
        connection_options=_add_connection_options,
        logging_options=_add_logging_options,
    )
    return parser


def load_app(target: str) -> App:
    """Import `module` or `module:attribute` and return the App to run."""
    module_name, _, attribute = target.partition(":")
    if not module_name:
        raise ConfigurationError(f"{target!r} names no module: use MODULE or MODULE:APP")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: modules of the current directory
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigurationError(
                f"cannot import module {module_name!r}: {exc}. Run from the directory that "
                "contains it, or install it"
            ) from exc
        raise
    if attribute:
        app = getattr(module, attribute, None)
        if not isinstance(app, App):
            raise ConfigurationError(
                f"{module_name}:{attribute} is {'missing' if app is None else type(app).__name__}"
                ", not an aiosqsworker App"
            )
        return app
    if not len(default_registry):
        raise ConfigurationError(
            f"module {module_name!r} registered no consumers: decorate async handlers with "
            "@consumer(...), or point to an App with MODULE:APP"
        )
    return App(consumers=default_registry)


def _with_overrides(app: App, args: argparse.Namespace) -> App:
    """The app with the command line's (and environment's) settings applied over its own."""
    changes: dict[str, object] = {
        name: getattr(args, name)
        for name in ("region", "endpoint_url", "profile", "shutdown_timeout", "client")
        if getattr(args, name, None) is not None
    }
    if "client" not in changes and _env("CLIENT"):
        changes["client"] = _env("CLIENT")
    timeout_from_env = _env("SHUTDOWN_TIMEOUT")
    if "shutdown_timeout" not in changes and timeout_from_env:
        try:
            changes["shutdown_timeout"] = float(timeout_from_env)
        except ValueError:
            raise ConfigurationError(
                f"{ENV_PREFIX}SHUTDOWN_TIMEOUT={timeout_from_env!r} is invalid: it must be a "
                "number of seconds"
            ) from None
    if not changes:
        return app
    config = dataclasses.replace(app.config, **changes)  # type: ignore[arg-type]
    app.config = config  # the module's own App runs: its handlers may use it (app.send)
    return app


def _worker_argv(argv: list[str]) -> list[str]:
    """The command line of one worker: the supervisor's own, less --workers."""
    result: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            result.append(arg)
    return [*result, "--workers", "1"]


def _command_run(args: argparse.Namespace, argv: list[str], use_uvloop: bool) -> int:
    workers = args.workers if args.workers is not None else _env_int("WORKERS", 1)
    assert workers is not None
    if workers < 1:
        raise ConfigurationError(f"--workers {workers} is invalid: it must be 1 or more")
    port = _metrics_port(args, workers)
    if workers > 1:
        from .._run.supervisor import supervise

        return supervise(_worker_argv(argv), workers)
    if port is not None:
        port += _env_int("WORKER_INDEX", 0) or 0  # the supervisor numbers its workers
    host = args.metrics_host or _env("METRICS_HOST") or "127.0.0.1"
    show_progress = args.progress if args.progress is not None else sys.stderr.isatty()
    # Read once and forgotten: a process this worker starts is not a worker of the supervisor.
    supervisor_pid = _env_int("SUPERVISOR_PID", None)
    os.environ.pop(f"{ENV_PREFIX}SUPERVISOR_PID", None)
    app = _with_overrides(load_app(args.target), args)
    return run(
        app,
        use_uvloop=use_uvloop,
        metrics_address=(host, port) if port is not None else None,
        progress_interval=5.0 if show_progress else None,
        supervisor_pid=supervisor_pid,
    )


def _command_demo(args: argparse.Namespace, argv: list[str], use_uvloop: bool) -> int:
    from .demo import run_demo

    return run_demo(messages=args.messages, keep_running=args.keep_running, use_uvloop=use_uvloop)


def _command_scale(args: argparse.Namespace, argv: list[str], use_uvloop: bool) -> int:
    from .scale import run_scale

    return run_scale(args)


def _command_admin(args: argparse.Namespace, argv: list[str], use_uvloop: bool) -> int:
    from .tools import run_command

    return run_command(args)


_COMMANDS: dict[str, Callable[[argparse.Namespace, list[str], bool], int]] = {
    "run": _command_run,
    "demo": _command_demo,
    "scale": _command_scale,
    "send": _command_admin,
    "stats": _command_admin,
    "dlq": _command_admin,
}


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] not in {*COMMANDS, "-h", "--help"}:
        args_list.insert(0, "run")  # `python -m aiosqsworker MODULE` means `run MODULE`
    parser = _build_parser()
    args = parser.parse_args(args_list)
    problem = _environment_choice_problem(args)
    if problem is not None:
        print(f"aiosqsworker: error: {problem}", file=sys.stderr)
        return 1
    if args.command is None:
        parser.print_help()
        return 2
    configure_logging(args.log_level, args.log_format)
    use_uvloop = uvloop_available() and not args.no_uvloop
    try:
        return _COMMANDS[args.command](args, args_list, use_uvloop)
    except AioSQSWorkerError as exc:
        print(f"aiosqsworker: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Only a handler's own (signals are handled): the worker has drained already.
        print("aiosqsworker: stopped: a handler raised KeyboardInterrupt", file=sys.stderr)
        return 130
