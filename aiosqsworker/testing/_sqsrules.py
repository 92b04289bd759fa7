"""What SQS accepts in a request, and the code and words it refuses the rest with.

Pure checks for `MemorySQS`: a queue's name and attributes (CreateQueue), a batch call's
entry ids, a SendMessage entry (body characters and size, message attributes, delay, FIFO
parameters), a visibility timeout. The rules a message and a batch's ids break are those of
`_sqs/rules.py`, which the producer and the command line's ``send`` check too; this module
adds what only a server decides (the queue's kind, its attributes). Each raises `Refused`
with SQS's error code and text; the caller turns it into the framework's error for a whole
call, or a failed entry of a batch.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._sqs.limits import (
    MAX_DELAY,
    MAX_MESSAGE_BYTES,
    MAX_RETENTION,
    MAX_VISIBILITY,
    MAX_WAIT_TIME,
    MIN_MESSAGE_SIZE,
    MIN_RETENTION,
)
from .._sqs.rules import (
    Refusal,
    batch_ids_refusal,
    batch_size_refusal,
    message_refusal,
    message_size,
    queue_kind_refusal,
    queue_name_refusal,
)

__all__ = [
    "Refused",
    "SendEntry",
    "check_batch_ids",
    "check_batch_size",
    "check_queue",
    "check_send_entry",
    "whole_seconds",
]

#: Queue attributes with a range, their defaults, and the others CreateQueue takes.
_RANGES = {
    "DelaySeconds": (0, MAX_DELAY),
    "MaximumMessageSize": (MIN_MESSAGE_SIZE, MAX_MESSAGE_BYTES),
    "MessageRetentionPeriod": (MIN_RETENTION, MAX_RETENTION),
    "ReceiveMessageWaitTimeSeconds": (0, MAX_WAIT_TIME),
    "VisibilityTimeout": (0, MAX_VISIBILITY),
}
_DEFAULTS = {
    "DelaySeconds": "0",
    "MaximumMessageSize": str(MAX_MESSAGE_BYTES),
    "MessageRetentionPeriod": "345600",
    "ReceiveMessageWaitTimeSeconds": "0",
    "VisibilityTimeout": "30",
}
_FIFO_DEFAULTS = {
    "FifoQueue": "true",
    "ContentBasedDeduplication": "false",
    "DeduplicationScope": "queue",
    "FifoThroughputLimit": "perQueue",
}
_FIFO_CHOICES = {
    "FifoQueue": ("true", "false"),
    "ContentBasedDeduplication": ("true", "false"),
    "DeduplicationScope": ("queue", "messageGroup"),
    "FifoThroughputLimit": ("perQueue", "perMessageGroupId"),
}
_OTHER_ATTRIBUTES = (
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "Policy",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
)
_QUEUE_ATTRIBUTES = (*_RANGES, *_FIFO_CHOICES, *_OTHER_ATTRIBUTES)
_ENTRY_FIELDS = (
    "Id",
    "MessageBody",
    "DelaySeconds",
    "MessageAttributes",
    "MessageSystemAttributes",
    "MessageDeduplicationId",
    "MessageGroupId",
)


class Refused(Exception):
    """What SQS answers a request, or one entry of a batch, that it refuses."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @classmethod
    def check(cls, refusal: Refusal | None) -> None:
        """Raise SQS's answer to a request that breaks one of `_sqs.rules`."""
        if refusal is not None:
            raise cls(refusal.code, refusal.message)


def _hint(word: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_queue(name: str, given: Mapping[str, str]) -> dict[str, str]:
    """CreateQueue's checks of a name and attributes; the queue's attributes with defaults.

    The RedrivePolicy is only checked to be one: whether its target exists is the caller's.
    """
    for key in given:
        if key not in _QUEUE_ATTRIBUTES:
            raise Refused(
                "InvalidAttributeName", f"Unknown Attribute {key}.{_hint(key, _QUEUE_ATTRIBUTES)}"
            )
    fifo = given.get("FifoQueue") == "true"
    Refused.check(queue_name_refusal(name, fifo=fifo))
    attributes = {**_DEFAULTS, **(_FIFO_DEFAULTS if fifo else {})}
    for key, value in given.items():
        if key in _RANGES:
            low, high = _RANGES[key]
            if not str(value).isdigit() or not low <= int(value) <= high:
                raise Refused(
                    "InvalidAttributeValue",
                    f"Invalid value for the parameter {key}: {value!r} (from {low} to {high}).",
                )
        elif key in _FIFO_CHOICES:
            if key != "FifoQueue" and not fifo:
                raise Refused("InvalidAttributeName", f"Unknown Attribute {key}.")
            if value not in _FIFO_CHOICES[key]:
                raise Refused(
                    "InvalidAttributeValue",
                    f"Invalid value for the parameter {key}: {value!r} (one of "
                    f"{', '.join(_FIFO_CHOICES[key])}).",
                )
            if key == "FifoQueue" and not fifo:
                continue  # a standard queue lists no FifoQueue attribute
        attributes[key] = str(value)
    return attributes


def check_batch_ids(operation: str, ids: Sequence[object]) -> None:
    """The whole-call errors of a batch call: its number of entries and their ids."""
    Refused.check(batch_ids_refusal(operation, ids))


def check_batch_size(entries: Sequence[Mapping[str, Any]]) -> None:
    """SendMessageBatch's whole-call errors beyond the ids: unknown fields, total size."""
    for entry in entries:
        unknown = sorted(set(entry) - set(_ENTRY_FIELDS))
        if unknown:
            raise Refused(
                "InvalidParameterValue",
                f"Unknown parameter {unknown[0]!r} in entry {entry.get('Id')}"
                f"{_hint(unknown[0], _ENTRY_FIELDS)}",
            )
    total = sum(
        message_size(str(entry.get("MessageBody", "")), _as_given(entry.get("MessageAttributes")))
        for entry in entries
    )
    Refused.check(batch_size_refusal(total))


def whole_seconds(value: object, parameter: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Refused(
            "InvalidParameterValue",
            f"Value {value} for parameter {parameter} is invalid. Reason: Must be between "
            f"{low} and {high}, if provided.",
        )
    return value


@dataclass(frozen=True, slots=True)
class SendEntry:
    """A SendMessage entry SQS accepts, normalized."""

    body: str
    message_attributes: dict[str, dict[str, Any]]
    system_attributes: dict[str, str]
    delay: int | None  # None: the queue's DelaySeconds
    group_id: str | None
    deduplication_id: str | None  # on a FIFO queue: given, or the body's SHA-256


def check_send_entry(
    entry: Mapping[str, Any], *, fifo: bool, content_based: bool, max_size: int
) -> SendEntry:
    """One SendMessage entry, checked as SQS checks it for a queue of that kind."""
    body = entry.get("MessageBody")
    raw = entry.get("MessageAttributes")
    if raw is not None and not isinstance(raw, Mapping):
        raise Refused("InvalidParameterValue", "MessageAttributes must be a map of attributes.")
    group_id = entry.get("MessageGroupId")
    deduplication_id = entry.get("MessageDeduplicationId")
    delay = entry.get("DelaySeconds")
    Refused.check(
        message_refusal(
            body,
            raw,
            delay=delay,
            group_id=group_id,
            deduplication_id=deduplication_id,
            limit=max_size,
        )
    )
    assert isinstance(body, str)
    attributes = {name: _attribute_value(value) for name, value in (raw or {}).items()}
    Refused.check(
        queue_kind_refusal(
            fifo=fifo,
            group_id=group_id,
            deduplication_id=deduplication_id,
            delay=delay,
            content_based=content_based,
        )
    )
    if fifo and deduplication_id is None:  # content-based: the body's SHA-256
        deduplication_id = hashlib.sha256(body.encode()).hexdigest()
    return SendEntry(
        body=body,
        message_attributes=attributes,
        system_attributes=_system_attributes(entry.get("MessageSystemAttributes")),
        delay=delay,
        group_id=group_id,
        deduplication_id=deduplication_id,
    )


def _as_given(attributes: object) -> dict[str, dict[str, Any]]:
    """Attributes as sent, for counting a batch's bytes before each entry is checked."""
    if not isinstance(attributes, Mapping):
        return {}
    return {
        str(name): dict(value) for name, value in attributes.items() if isinstance(value, Mapping)
    }


def _attribute_value(value: Mapping[str, Any]) -> dict[str, Any]:
    """An attribute `attribute_refusal` accepted, as it is stored (a Binary value in bytes)."""
    data_type = value["DataType"]
    if data_type.partition(".")[0] == "Binary":
        binary = value["BinaryValue"]
        return {
            "DataType": data_type,
            "BinaryValue": binary.encode() if isinstance(binary, str) else bytes(binary),
        }
    return {"DataType": data_type, "StringValue": value["StringValue"]}


def _system_attributes(raw: object) -> dict[str, str]:
    """A SendMessage's MessageSystemAttributes: only AWSTraceHeader exists."""
    if raw is None:
        return {}
    value = raw.get("AWSTraceHeader") if isinstance(raw, Mapping) else None
    text = value.get("StringValue") if isinstance(value, Mapping) else None
    if not isinstance(raw, Mapping) or set(raw) != {"AWSTraceHeader"} or not text:
        raise Refused(
            "InvalidParameterValue",
            "MessageSystemAttributes may only hold AWSTraceHeader, a non-empty String.",
        )
    return {"AWSTraceHeader": str(text)}
