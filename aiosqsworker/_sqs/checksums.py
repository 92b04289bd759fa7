"""The MD5 digests SQS returns with every message it stores or hands out.

``MD5OfMessageBody`` (``MD5OfBody`` on receive) is the MD5 of the body's UTF-8 bytes.
``MD5OfMessageAttributes`` covers the message attributes in a fixed encoding: for each
attribute, by name in byte order, the name, the data type, a transport byte (1 for a string
value, 2 for a binary one) and the value, each but the byte as a 4-byte big-endian length
followed by the bytes.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from typing import Any

__all__ = ["md5_of_attributes", "md5_of_body"]

_STRING = b"\x01"
_BINARY = b"\x02"


def md5_of_body(body: str) -> str:
    """What SQS reports as the body's MD5."""
    return hashlib.md5(body.encode(), usedforsecurity=False).hexdigest()


def _length_prefixed(value: bytes) -> bytes:
    return struct.pack("!I", len(value)) + value


def md5_of_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> str | None:
    """What SQS reports as the message attributes' MD5; ``None`` without attributes."""
    if not attributes:
        return None
    digest = hashlib.md5(usedforsecurity=False)
    for name in sorted(attributes, key=lambda name: name.encode()):
        value = attributes[name]
        data_type = str(value["DataType"])
        digest.update(_length_prefixed(name.encode()))
        digest.update(_length_prefixed(data_type.encode()))
        if data_type.startswith("Binary"):
            raw = value["BinaryValue"]
            digest.update(
                _BINARY + _length_prefixed(raw if isinstance(raw, bytes) else raw.encode())
            )
        else:
            digest.update(_STRING + _length_prefixed(str(value["StringValue"]).encode()))
    return digest.hexdigest()
