"""`python -m aiosqsworker [run] MODULE[:APP]`: import a module and run the consumers it
registered, or its App, until SIGTERM or SIGINT; with ``--workers N`` or ``--reload``, under
a supervisor. `load_app` finds the App; the environment's settings and the command line's
options go over its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import os
import sys

from .._app import App
from .._config import (
    ENV_PREFIX,
    MAX_CONCURRENCY,
    MAX_PORT,
    EnvironmentSettings,
    available_cpus,
    too_many_workers,
    worker_count,
)
from .._errors import ConfigurationError
from .._registry import default_registry
from .._run.reload import file_changes, watched_directories
from .._run.runner import run as run_app
from .._run.supervisor import supervise
from .command import (
    Invocation,
    Subparsers,
    add_connection_options,
    add_logging_options,
    argument,
    checked_number,
    command_parser,
)

__all__ = ["add_parser", "load_app", "run"]

RUN_EPILOG = """\
environment:
  AWS_REGION, AWS_DEFAULT_REGION   region, when --region is not given
  AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL
                                   endpoint, when --endpoint-url is not given
  AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...
                                   credentials, through botocore's usual chain
  AIOSQSWORKER_SHUTDOWN_TIMEOUT    default of --shutdown-timeout
  AIOSQSWORKER_WORKERS             default of --workers (a number, or auto)
  AIOSQSWORKER_CLIENT              default of --client
  AIOSQSWORKER_CONCURRENCY         default of --concurrency
  AIOSQSWORKER_CONSUMERS           default of --consumer (names separated by commas)
  AIOSQSWORKER_METRICS_PORT        default of --metrics-port
  AIOSQSWORKER_METRICS_HOST        default of --metrics-host
  AIOSQSWORKER_LOG_LEVEL           default of --log-level
  AIOSQSWORKER_LOG_FORMAT          default of --log-format

signals:
  SIGTERM or SIGINT stops gracefully: no new polls, buffered messages released,
  running handlers given --shutdown-timeout seconds, acknowledgements flushed.
  A second signal cancels running handlers (their messages are released).
  With --workers N or --reload, signal the supervisor (a Ctrl-C does): it passes one
  SIGTERM to each worker per signal it gets.

exit codes:
  0 stopped gracefully, or, with --burst, every queue empty; 1 a fatal error (unknown
  queue, refused credentials, ...); 2 bad usage; 3 with --burst, a handler failed
  during the run; 128+N forced by a second signal N (143 SIGTERM, 130 SIGINT).

examples:
  python -m aiosqsworker myservice.orders
  python -m aiosqsworker myservice.orders:app --shutdown-timeout 60
  python -m aiosqsworker myservice.orders --workers 4 --metrics-port 9090
  python -m aiosqsworker myservice.orders --burst --concurrency 50
  python -m aiosqsworker myservice.orders --consumer process_order --reload
  python -m aiosqsworker myservice.orders --workers auto
  AWS_ENDPOINT_URL_SQS=http://127.0.0.1:4566 python -m aiosqsworker myservice.orders
"""


def _metrics_port(args: argparse.Namespace, env: EnvironmentSettings, workers: int) -> int | None:
    """The first metrics port, checked: worker i of `workers` serves on port + i."""
    from_environment = args.metrics_port is None
    port = env.metrics_port if from_environment else args.metrics_port
    if port is None:
        return None
    highest = MAX_PORT - workers + 1
    if not 1 <= port <= highest:
        given = f"{ENV_PREFIX}METRICS_PORT={port}" if from_environment else f"--metrics-port {port}"
        each = f" (worker i of --workers {workers} serves on PORT + i)" if workers > 1 else ""
        raise ConfigurationError(f"{given} is invalid: it must be a port from 1 to {highest}{each}")
    return port


_concurrency = argument(
    checked_number(
        int,
        lambda value: 1 <= value <= MAX_CONCURRENCY,
        f"a whole number from 1 to {MAX_CONCURRENCY}",
    )
)


def _workers(raw: str) -> int:
    return worker_count(raw, repr(raw))


_workers_option = argument(_workers)


def add_parser(sub: Subparsers, env: EnvironmentSettings) -> argparse.ArgumentParser:
    parser = command_parser(
        sub,
        "run",
        help="run the consumers a module registers (the default command)",
        description="Import MODULE and run every consumer it registered with @consumer, or "
        "the App named by MODULE:APP, until SIGTERM or SIGINT.",
        epilog=RUN_EPILOG,
    )
    parser.add_argument("target", metavar="MODULE[:APP]", help="e.g. myservice.orders")
    add_connection_options(parser)
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        help="seconds running handlers get to finish on shutdown (default: "
        "AIOSQSWORKER_SHUTDOWN_TIMEOUT, else the App's, else 30)",
    )
    parser.add_argument(
        "--workers",
        metavar="N|auto",
        type=_workers_option,
        help="worker processes, under a supervisor that forwards signals and restarts "
        "crashed workers; auto: one per CPU (default: AIOSQSWORKER_WORKERS, else 1: no "
        "supervisor)",
    )
    parser.add_argument(
        "--client",
        choices=["fast", "botocore", "aiohttp"],
        help="'fast' speaks SQS's protocol over HTTP/1.1 connections of its own, 'botocore' "
        "sends everything through aiobotocore, 'aiohttp' the hot calls over aiohttp "
        "(default: AIOSQSWORKER_CLIENT, else the App's, else fast)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="serve /metrics, /healthz and /readyz on this port (default: "
        "AIOSQSWORKER_METRICS_PORT, else none). With --workers N, worker i uses port+i",
    )
    parser.add_argument(
        "--metrics-host",
        help="address the metrics server binds (default: AIOSQSWORKER_METRICS_HOST, else "
        "127.0.0.1; use 0.0.0.0 only where the network is yours)",
    )
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="print a progress line every 5 s (default: when stderr is a terminal)",
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument(
        "--burst",
        action="store_true",
        help="stop once every consumer's queue is empty and nothing is in flight, as SQS "
        "counts them (visible, in flight, delayed) twice in a row; exit 0, or 3 if a "
        "handler failed during the run",
    )
    parser.add_argument(
        "--concurrency",
        type=_concurrency,
        metavar="N",
        help="every consumer's concurrency, whatever its own (default: "
        "AIOSQSWORKER_CONCURRENCY, else each consumer's)",
    )
    parser.add_argument(
        "--consumer",
        action="append",
        metavar="NAME",
        help="run only this consumer (repeatable; default: AIOSQSWORKER_CONSUMERS, else all)",
    )
    parser.add_argument(
        "--reload",
        action="store_true",
        help="for development: restart the worker gracefully when a Python file of the "
        "module's package changes (needs the reload extra: watchfiles)",
    )
    add_logging_options(parser, env)
    return parser


def load_app(target: str) -> App:
    """Import `module` or `module:attribute` and return the App to run."""
    module_name, _, attribute = target.partition(":")
    if not module_name:
        raise ConfigurationError(f"{target!r} names no module: use MODULE or MODULE:APP")
    if module_name.endswith(".py") or "/" in module_name or os.sep in module_name:
        dotted = module_name.removesuffix(".py").replace(os.sep, "/").strip("./")
        dotted = dotted.replace("/", ".") + (f":{attribute}" if attribute else "")
        raise ConfigurationError(
            f"{module_name!r} is a file path: give the module's dotted name, as python -m "
            f"takes it: python -m aiosqsworker {dotted} (from the directory that contains it)"
        )
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
                f", not an aiosqsworker App{_apps_hint(module_name, attribute, vars(module))}"
            )
        return app
    if not len(default_registry):
        raise ConfigurationError(
            f"module {module_name!r} registered no consumers: decorate handlers with "
            "@consumer(...), or point to an App with MODULE:APP"
        )
    return App(consumers=default_registry)


def _apps_hint(module_name: str, attribute: str, namespace: dict[str, object]) -> str:
    """What MODULE:APP could have named instead: a close App, the module's Apps, or MODULE."""
    apps = sorted(name for name, value in namespace.items() if isinstance(value, App))
    close = difflib.get_close_matches(attribute, apps, n=1)
    if close:
        return f" (did you mean {module_name}:{close[0]}?)"
    if apps:
        return f"; the module's Apps: {', '.join(f'{module_name}:{name}' for name in apps)}"
    if len(default_registry):
        return (
            f"; the module defines no App, but registers consumers with @consumer: run "
            f"{module_name} alone"
        )
    return "; the module defines no App"


def _with_overrides(app: App, args: argparse.Namespace, env: EnvironmentSettings) -> App:
    """The app with the environment's settings over its own, and the command line's over both."""
    changes: dict[str, object] = env.app_settings()
    changes.update(
        {
            name: getattr(args, name)
            for name in (
                "region",
                "endpoint_url",
                "profile",
                "shutdown_timeout",
                "client",
                "concurrency",
            )
            if getattr(args, name, None) is not None
        }
    )
    if args.consumer:
        changes["only"] = tuple(args.consumer)
    if not changes:
        return app
    try:
        config = dataclasses.replace(app.config, **changes)  # type: ignore[arg-type]
    except ConfigurationError as exc:
        raise ConfigurationError(f"{exc} (from the command line or environment)") from None
    app.config = config  # the module's own App runs: its handlers may use it (app.send)
    return app


def _worker_argv(argv: list[str]) -> list[str]:
    """The command line of one worker: the supervisor's own, less --workers and --reload."""
    result: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers=") and arg != "--reload":
            result.append(arg)
    return [*result, "--workers", "1"]


def run(call: Invocation) -> int:
    """Run the app (or, with --workers N or --reload, supervise workers that run it)."""
    args, env = call.args, call.env
    workers = args.workers if args.workers is not None else (env.workers or 1)
    if args.reload and args.burst:
        raise ConfigurationError(
            "--reload and --burst do not go together: a burst ends when the queues are empty, "
            "a reload waits for the next change"
        )
    port = _metrics_port(args, env, workers)  # checked before any worker starts
    crowded = too_many_workers(workers, available_cpus())
    if crowded is not None:
        refused, why = crowded
        if refused:
            raise ConfigurationError(why)
        print(f"aiosqsworker: warning: {why}", file=sys.stderr)
    if args.reload:
        directories = watched_directories(args.target, [os.getcwd(), *sys.path])
        changes = file_changes(directories)
        print(
            f"aiosqsworker: reloading on changes to the Python files under "
            f"{', '.join(str(directory) for directory in directories)}",
            file=sys.stderr,
        )
        return supervise(_worker_argv(call.argv), workers, file_changes=changes)
    if workers > 1:
        return supervise(_worker_argv(call.argv), workers, burst=args.burst)
    if port is not None:
        port += env.worker_index or 0  # the supervisor numbers its workers
    host = args.metrics_host or env.metrics_host or "127.0.0.1"
    show_progress = args.progress if args.progress is not None else sys.stderr.isatty()
    # Read once and forgotten: a process this worker starts is not a worker of the supervisor.
    supervisor_pid = env.supervisor_pid
    os.environ.pop(f"{ENV_PREFIX}SUPERVISOR_PID", None)
    app = _with_overrides(load_app(args.target), args, env)
    return run_app(
        app,
        use_uvloop=call.use_uvloop,
        metrics_address=(host, port) if port is not None else None,
        progress_interval=5.0 if show_progress else None,
        supervisor_pid=supervisor_pid,
        burst=args.burst,
    )
