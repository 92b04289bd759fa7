"""The MD5 digests SQS returns with every message it stores or hands out.

``MD5OfMessageBody`` (``MD5OfBody`` on receive) is the MD5 of the body's UTF-8 bytes.
``MD5OfMessageAttributes`` covers the message attributes in a fixed encoding: for each
attribute, by name in byte order, the name, the data type, a transport byte (1 for a string
value, 2 for a binary one) and the value, each but the byte as a 4-byte big-endian length
followed by the bytes.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import struct
from collections.abc import Callable, Mapping
from typing import Any, Protocol

__all__ = ["md5_of_attributes", "md5_of_body"]

_STRING = b"\x01"
_BINARY = b"\x02"


class _Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


def _builtin_md5() -> Callable[[bytes], _Digest]:
    """CPython's own MD5 where it is built (hashlib's goes through OpenSSL, which looks the
    algorithm up again for every digest: nearly half of each received message's check),
    else hashlib's."""
    try:
        module = importlib.import_module("_md5")
    except ImportError:  # pragma: no cover - a Python built without it
        return functools.partial(hashlib.md5, usedforsecurity=False)
    md5: Callable[[bytes], _Digest] = module.md5
    return md5


_md5 = _builtin_md5()


def md5_of_body(body: str) -> str:
    """What SQS reports as the body's MD5."""
    return _md5(body.encode()).hexdigest()


def _length_prefixed(value: bytes) -> bytes:
    return struct.pack("!I", len(value)) + value


def md5_of_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> str | None:
    """What SQS reports as the message attributes' MD5; ``None`` without attributes."""
    if not attributes:
        return None
    digest = _md5(b"")
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
