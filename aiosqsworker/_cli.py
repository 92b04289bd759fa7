"""`python -m aiosqsworker`: run the consumers of a module, or the demo."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from ._app import App
from ._errors import AioSQSWorkerError, ConfigurationError
from ._registry import default_registry
from ._runner import run, uvloop_available

__all__ = ["load_app", "main"]

logger = logging.getLogger("aiosqsworker")

ENV_PREFIX = "AIOSQSWORKER_"

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
  AIOSQSWORKER_LOG_LEVEL           default of --log-level

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
  AWS_ENDPOINT_URL_SQS=http://127.0.0.1:4566 python -m aiosqsworker myservice.orders
"""


def _env(name: str, default: str) -> str:
    return os.environ.get(ENV_PREFIX + name, default)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aiosqsworker",
        description="Run SQS consumers. Commands: run (the default), demo.",
        usage="python -m aiosqsworker [run] MODULE[:APP] [options]\n"
        "       python -m aiosqsworker demo [options]",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run_parser = sub.add_parser(
        "run",
        help="run the consumers a module registers (the default command)",
        description="Import MODULE and run every consumer it registered with @consumer, or "
        "the App named by MODULE:APP, until SIGTERM or SIGINT.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run_parser.add_argument("target", metavar="MODULE[:APP]", help="e.g. myservice.orders")
    run_parser.add_argument("--region", help="AWS region (default: AWS_REGION, then botocore's)")
    run_parser.add_argument(
        "--endpoint-url", help="SQS endpoint (default: AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL)"
    )
    run_parser.add_argument("--profile", help="AWS profile (default: AWS_PROFILE)")
    _add_common(run_parser)
    run_parser.add_argument(
        "--shutdown-timeout",
        type=float,
        help="seconds running handlers get to finish on shutdown (default: "
        "AIOSQSWORKER_SHUTDOWN_TIMEOUT, else the App's, else 30)",
    )
    run_parser.add_argument(
        "--workers",
        type=int,
        default=int(_env("WORKERS", "1")) if _env("WORKERS", "1").isdigit() else 1,
        help="worker processes to run under a supervisor that forwards signals and restarts "
        "crashed workers (default: AIOSQSWORKER_WORKERS, else %(default)s: no supervisor)",
    )
    run_parser.add_argument(
        "--client",
        choices=["fast", "botocore"],
        default=None,
        help="'fast' sends the hot calls over aiohttp directly, 'botocore' everything through "
        "aiobotocore (default: AIOSQSWORKER_CLIENT, else the App's, else fast)",
    )

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
    _add_common(demo_parser)
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="(default: %(default)s)",
    )
    parser.add_argument(
        "--no-uvloop",
        action="store_true",
        help="use asyncio's own event loop even when uvloop is installed",
    )


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


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # botocore's own INFO lines (credential discovery) are noise at the worker's INFO level.
    logging.getLogger("botocore").setLevel(max(logging.WARNING, getattr(logging, level)))
    logging.getLogger("aiobotocore").setLevel(max(logging.WARNING, getattr(logging, level)))


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] not in {"run", "demo", "-h", "--help"}:
        args_list.insert(0, "run")  # `python -m aiosqsworker MODULE` means `run MODULE`
    parser = _build_parser()
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return 2
    _configure_logging(args.log_level)
    use_uvloop = uvloop_available() and not args.no_uvloop
    try:
        if args.command == "demo":
            from ._demo import run_demo

            return run_demo(
                messages=args.messages, keep_running=args.keep_running, use_uvloop=use_uvloop
            )
        if args.workers < 1:
            raise ConfigurationError(f"--workers {args.workers} is invalid: it must be 1 or more")
        if args.workers > 1:
            from ._supervisor import supervise

            return supervise(_worker_argv(args_list), args.workers)
        app = _with_overrides(load_app(args.target), args)
        return run(app, use_uvloop=use_uvloop)
    except AioSQSWorkerError as exc:
        print(f"aiosqsworker: error: {exc}", file=sys.stderr)
        return 1


def _with_overrides(app: App, args: argparse.Namespace) -> App:
    """The app with the command line's (and environment's) settings applied over its own."""
    changes: dict[str, object] = {
        name: getattr(args, name)
        for name in ("region", "endpoint_url", "profile", "shutdown_timeout", "client")
        if getattr(args, name) is not None
    }
    timeout_from_env = os.environ.get(ENV_PREFIX + "SHUTDOWN_TIMEOUT")
    client_from_env = os.environ.get(ENV_PREFIX + "CLIENT")
    if "client" not in changes and client_from_env:
        changes["client"] = client_from_env
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
    return App(**dataclasses.asdict(config), consumers=app.consumers)


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
