"""`python -m aiosqsworker`: see `python -m aiosqsworker --help`."""

import sys

from ._cli import main

sys.exit(main())
