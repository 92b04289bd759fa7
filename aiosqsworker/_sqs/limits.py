"""Numbers and character sets SQS itself sets for a message, written once.

The producer, the command line's ``send`` and `MemorySQS` check a message against these;
each turns a refusal into its own error.
"""

from __future__ import annotations

import re

__all__ = [
    "ALLOWED_CHARACTERS",
    "ATTRIBUTE_NAME",
    "FORBIDDEN_CHARACTER",
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTE_NAME",
    "NUMBER",
]

#: Message attributes a message may carry.
MAX_ATTRIBUTES = 10
#: Characters in a message attribute's name.
MAX_ATTRIBUTE_NAME = 256
#: The characters SQS accepts in a body or a String attribute, as its documentation writes them.
ALLOWED_CHARACTERS = "#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF"
#: One character outside `ALLOWED_CHARACTERS`.
FORBIDDEN_CHARACTER = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
#: A Number attribute's value as SQS reads it (a decimal, an optional sign and exponent): no
#: spaces around it and no '_' between digits, which Python's float() and Decimal() accept.
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
#: The characters of a message attribute's name (its length is `MAX_ATTRIBUTE_NAME`).
ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
