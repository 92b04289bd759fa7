"""`python -m aiosqsworker`: see `python -m aiosqsworker --help`."""

import sys

from ._cli.main import main

sys.exit(main())
