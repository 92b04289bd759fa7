"""`python -m aiosqsworker` and the `aiosqsworker` command: see `python -m aiosqsworker --help`."""

from typing import NoReturn

from ._cli.main import main
from ._run.runner import exit_process


def console_main() -> NoReturn:
    """Run the command line and end the process with its exit status."""
    try:
        status: int | str | None = main()
    except SystemExit as exc:  # argparse, or a handler's sys.exit() once the worker drained
        status = exc.code
    exit_process(status)


if __name__ == "__main__":
    console_main()
