"""Numbers and character sets SQS itself sets, written once.

The checks that use them are in `_sqs/rules.py`; the producer, the command line's ``send``
and `MemorySQS` each turn a refusal into their own error. The numbers are those of the SQS
API reference (SendMessage, SendMessageBatch, ReceiveMessage, ChangeMessageVisibility,
MessageAttributeValue).
"""

from __future__ import annotations

import re

__all__ = [
    "ALLOWED_CHARACTERS",
    "ATTRIBUTE_NAME",
    "BATCH_ENTRY_ID",
    "DATA_TYPES",
    "DEDUPLICATION_WINDOW",
    "FIFO_ID",
    "FORBIDDEN_CHARACTER",
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTE_NAME",
    "MAX_BATCH",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_ENTRY_ID",
    "MAX_DATA_TYPE",
    "MAX_DELAY",
    "MAX_FIFO_ID",
    "MAX_MESSAGE_BYTES",
    "MAX_QUEUE_NAME",
    "MAX_RECEIVE_COUNT",
    "MAX_RETENTION",
    "MAX_VISIBILITY",
    "MAX_WAIT_TIME",
    "MIN_MESSAGE_SIZE",
    "MIN_RETENTION",
    "NUMBER",
    "QUEUE_NAME",
    "RESERVED_ATTRIBUTE_PREFIXES",
]

#: One message, attributes included, and one batch call's messages together (1 MiB).
MAX_MESSAGE_BYTES = 1_048_576
#: Entries of one batch call; messages one ReceiveMessage returns.
MAX_BATCH = 10
#: The messages of one SendMessageBatch together, attributes included.
MAX_BATCH_BYTES = MAX_MESSAGE_BYTES
#: Characters of a batch entry's Id.
MAX_BATCH_ENTRY_ID = 80
#: A batch entry's Id: alphanumerics, '-' and '_' (its length is `MAX_BATCH_ENTRY_ID`).
BATCH_ENTRY_ID = re.compile(r"[A-Za-z0-9_-]+")
#: A message's DelaySeconds, and a queue's (15 minutes).
MAX_DELAY = 900
#: A long poll's WaitTimeSeconds.
MAX_WAIT_TIME = 20
#: A visibility timeout (12 hours), also the cap on a message's total invisibility.
MAX_VISIBILITY = 43_200
#: Message attributes a message may carry.
MAX_ATTRIBUTES = 10
#: Characters in a message attribute's name.
MAX_ATTRIBUTE_NAME = 256
#: The characters of a message attribute's name (its length is `MAX_ATTRIBUTE_NAME`).
ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
#: Prefixes of attribute names kept for AWS, in any casing (compared in lower case).
RESERVED_ATTRIBUTE_PREFIXES = ("aws.", "amazon.")
#: The data types of a message attribute; a custom label may follow a '.' ("Number.int").
DATA_TYPES = ("String", "Number", "Binary")
#: Characters in a message attribute's data type, custom label included.
MAX_DATA_TYPE = 256
#: The characters SQS accepts in a body or a String attribute, as its documentation writes them.
ALLOWED_CHARACTERS = "#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF"
#: One character outside `ALLOWED_CHARACTERS`, written as the set of those outside it (the
#: complement of the allowed ranges compiles in a tenth of the time, at every App import).
FORBIDDEN_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
#: A Number attribute's value as SQS reads it (a decimal, an optional sign and exponent): no
#: spaces around it and no '_' between digits, which Python's float() and Decimal() accept.
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
#: Characters of a FIFO message's MessageGroupId or MessageDeduplicationId.
MAX_FIFO_ID = 128
#: A MessageGroupId or MessageDeduplicationId: alphanumerics and ASCII punctuation.
FIFO_ID = re.compile(r"[A-Za-z0-9!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]+")
#: Seconds within which a FIFO queue drops a message whose deduplication id it has seen.
DEDUPLICATION_WINDOW = 300
#: Characters of a queue's name, ``.fifo`` included.
MAX_QUEUE_NAME = 80
#: A queue's name before its ``.fifo``: alphanumerics, '-' and '_'.
QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]+")
#: The range of a queue's MaximumMessageSize (its top is `MAX_MESSAGE_BYTES`).
MIN_MESSAGE_SIZE = 1024
#: The range of a queue's MessageRetentionPeriod, in seconds (1 minute to 14 days).
MIN_RETENTION, MAX_RETENTION = 60, 1_209_600
#: The top of a RedrivePolicy's maxReceiveCount.
MAX_RECEIVE_COUNT = 1000
