"""`python -m aiosqsworker`: run consumers, the demo, and the operator's tools."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .. import __version__
from .._app import App
from .._config import (
    ENV_PREFIX,
    LOG_FORMATS,
    LOG_LEVELS,
    MAX_CONCURRENCY,
    MAX_PORT,
    EnvironmentSettings,
    available_cpus,
    too_many_workers,
    worker_count,
)
from .._errors import AioSQSWorkerError, ConfigurationError
from .._logging import configure_logging
from .._registry import default_registry
from .._run.reload import file_changes, watched_directories
from .._run.runner import run, uvloop_available
from .._run.supervisor import supervise
from .demo import run_demo
from .localserver import DEFAULT_PORT, run_local_server
from .parsing import ForgivingParser, leaf_parser, unknown_arguments_error
from .scale import run_scale
from .tools import add_admin_parsers, run_command

__all__ = ["load_app", "main"]

COMMANDS = ("run", "demo", "scale", "send", "stats", "dlq", "queue", "bucket", "local-server")

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


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", help="AWS region (default: AWS_REGION, then botocore's)")
    parser.add_argument(
        "--endpoint-url", help="SQS endpoint (default: AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL)"
    )
    parser.add_argument("--profile", help="AWS profile (default: AWS_PROFILE)")


def _logging_options(env: EnvironmentSettings) -> Callable[[argparse.ArgumentParser], None]:
    """Adds --log-level, --log-format and --no-uvloop, defaults from the environment."""

    def add(parser: argparse.ArgumentParser) -> None:
        _add_logging_options(parser, env)

    return add


def _add_logging_options(parser: argparse.ArgumentParser, env: EnvironmentSettings) -> None:
    parser.add_argument(
        "--log-level",
        default=env.log_level or "INFO",
        choices=LOG_LEVELS,
        type=str.upper,
        help="(default: %(default)s)",
    )
    parser.add_argument(
        "--log-format",
        default=env.log_format or "text",
        choices=LOG_FORMATS,
        help="text for people, json (one object per line) for machines (default: %(default)s)",
    )
    parser.add_argument(
        "--no-uvloop",
        action="store_true",
        help="use asyncio's own event loop even when uvloop is installed",
    )


def _concurrency(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a whole number from 1 to {MAX_CONCURRENCY}"
        )
    return value


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65_535:
        raise argparse.ArgumentTypeError(f"{text!r}: give a port from 0 (any free one) to 65535")
    return int(text)


def _workers_option(raw: str) -> int:
    try:
        return worker_count(raw, repr(raw))
    except ConfigurationError as exc:  # argparse shows only this kind's message
        raise argparse.ArgumentTypeError(str(exc)) from None


def _build_parser(env: EnvironmentSettings | None = None) -> argparse.ArgumentParser:
    env = env or EnvironmentSettings()
    logging_options = _logging_options(env)
    parser: argparse.ArgumentParser = ForgivingParser(
        prog="python -m aiosqsworker",
        description="Run SQS consumers. Commands: run (the default), demo, scale, send, "
        "stats, dlq, queue, bucket, local-server.",
        usage="python -m aiosqsworker [run] MODULE[:APP] [options]\n"
        "       python -m aiosqsworker local-server [--port PORT]\n"
        "       python -m aiosqsworker queue {create,purge,delete} NAME [options]\n"
        "       python -m aiosqsworker bucket create NAME [options]\n"
        "       python -m aiosqsworker send QUEUE [BODY ...] [options]\n"
        "       python -m aiosqsworker stats QUEUE... [options]\n"
        "       python -m aiosqsworker dlq {inspect,redrive} QUEUE [options]\n"
        "       python -m aiosqsworker scale QUEUE [options]\n"
        "       python -m aiosqsworker demo [options]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"aiosqsworker {__version__} (Python {sys.version.split()[0]})",
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
        metavar="N|auto",
        type=_workers_option,
        help="worker processes, under a supervisor that forwards signals and restarts "
        "crashed workers; auto: one per CPU (default: AIOSQSWORKER_WORKERS, else 1: no "
        "supervisor)",
    )
    run_parser.add_argument(
        "--client",
        choices=["fast", "botocore", "aiohttp"],
        help="'fast' speaks SQS's protocol over HTTP/1.1 connections of its own, 'botocore' "
        "sends everything through aiobotocore, 'aiohttp' the hot calls over aiohttp "
        "(default: AIOSQSWORKER_CLIENT, else the App's, else fast)",
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
    run_parser.add_argument(
        "--burst",
        action="store_true",
        help="stop once every consumer's queue is empty and nothing is in flight, as SQS "
        "counts them (visible, in flight, delayed) twice in a row; exit 0, or 3 if a "
        "handler failed during the run",
    )
    run_parser.add_argument(
        "--concurrency",
        type=_concurrency,
        metavar="N",
        help="every consumer's concurrency, whatever its own (default: "
        "AIOSQSWORKER_CONCURRENCY, else each consumer's)",
    )
    run_parser.add_argument(
        "--consumer",
        action="append",
        metavar="NAME",
        help="run only this consumer (repeatable; default: AIOSQSWORKER_CONSUMERS, else all)",
    )
    run_parser.add_argument(
        "--reload",
        action="store_true",
        help="for development: restart the worker gracefully when a Python file of the "
        "module's package changes (needs the reload extra: watchfiles)",
    )
    logging_options(run_parser)
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
    logging_options(demo_parser)

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
    logging_options(scale_parser)

    local_parser = sub.add_parser(
        "local-server",
        help="run the project's local SQS server on 127.0.0.1, for development",
        description="Start the local SQS server the test suite uses (moto, with receives "
        "made atomic as SQS's are) on 127.0.0.1, print the environment to point a worker at "
        "it, and serve until Ctrl-C or SIGTERM. Queues and messages live in its memory.",
        epilog="examples:\n  python -m aiosqsworker local-server\n"
        "  python -m aiosqsworker local-server --port 0     any free port\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    local_parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help="port on 127.0.0.1 (default: %(default)s; 0: any free one)",
    )
    logging_options(local_parser)

    add_admin_parsers(
        sub,
        connection_options=_add_connection_options,
        logging_options=logging_options,
    )
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


@dataclass(frozen=True)
class _Invocation:
    """What a command runs with: its arguments, the raw command line, the environment."""

    args: argparse.Namespace
    argv: list[str]
    env: EnvironmentSettings
    use_uvloop: bool


def _command_run(call: _Invocation) -> int:
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
    return run(
        app,
        use_uvloop=call.use_uvloop,
        metrics_address=(host, port) if port is not None else None,
        progress_interval=5.0 if show_progress else None,
        supervisor_pid=supervisor_pid,
        burst=args.burst,
    )


def _command_demo(call: _Invocation) -> int:
    args = call.args
    return run_demo(
        messages=args.messages, keep_running=args.keep_running, use_uvloop=call.use_uvloop
    )


def _command_scale(call: _Invocation) -> int:
    return run_scale(call.args)


def _command_admin(call: _Invocation) -> int:
    return run_command(call.args)


def _command_local_server(call: _Invocation) -> int:
    return run_local_server(port=call.args.port)


_COMMANDS: dict[str, Callable[[_Invocation], int]] = {
    "run": _command_run,
    "demo": _command_demo,
    "scale": _command_scale,
    "send": _command_admin,
    "stats": _command_admin,
    "dlq": _command_admin,
    "queue": _command_admin,
    "bucket": _command_admin,
    "local-server": _command_local_server,
}


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] not in {*COMMANDS, "-h", "--help", "--version"}:
        args_list.insert(0, "run")  # `python -m aiosqsworker MODULE` means `run MODULE`
    try:
        env = EnvironmentSettings.read()
    except ConfigurationError as exc:
        print(f"aiosqsworker: error: {exc}", file=sys.stderr)
        return 1
    parser = _build_parser(env)
    args, extras = parser.parse_known_args(args_list)
    if extras:
        command = leaf_parser(parser, args)
        command.error(unknown_arguments_error(extras, command))
    if args.command is None:
        parser.print_help()
        return 2
    configure_logging(args.log_level, args.log_format, worker=env.worker_index)
    use_uvloop = uvloop_available() and not args.no_uvloop
    try:
        return _COMMANDS[args.command](_Invocation(args, args_list, env, use_uvloop))
    except AioSQSWorkerError as exc:
        print(f"aiosqsworker: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Only a handler's own (signals are handled): the worker has drained already.
        print("aiosqsworker: stopped: a handler raised KeyboardInterrupt", file=sys.stderr)
        return 130
