"""SQS's rules for a message and a batch call, as pure checks.

Each check returns a `Refusal` (the error code SQS answers, its message, the parameter it is
about and a hint how to fix it) or None. The producer refuses before sending, with the hint;
the command line's ``send`` names the input and the hint; `MemorySQS` answers with the code
and message, as a server would. The numbers and character sets are those of `limits`.

The codes are those the SQS API reference lists for SendMessage and SendMessageBatch
(``InvalidParameterValue``, ``InvalidMessageContents``, ``MissingParameter`` and the
``AWS.SimpleQueueService.*`` batch errors). The reference does not print the texts: those
below are the ones SQS answers, as clients report them; a text marked *unverified* is ours,
in SQS's style, where we have not seen SQS's own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .limits import (
    ALLOWED_CHARACTERS,
    ATTRIBUTE_NAME,
    BATCH_ENTRY_ID,
    DATA_TYPES,
    FIFO_ID,
    FORBIDDEN_CHARACTER,
    MAX_ATTRIBUTE_NAME,
    MAX_ATTRIBUTES,
    MAX_BATCH,
    MAX_BATCH_BYTES,
    MAX_BATCH_ENTRY_ID,
    MAX_DATA_TYPE,
    MAX_DELAY,
    MAX_FIFO_ID,
    MAX_MESSAGE_BYTES,
    MAX_QUEUE_NAME,
    NUMBER,
    QUEUE_NAME,
    RESERVED_ATTRIBUTE_PREFIXES,
)

__all__ = [
    "Refusal",
    "attribute_count_refusal",
    "attribute_name_refusal",
    "attribute_refusal",
    "attributes_refusal",
    "batch_ids_refusal",
    "batch_size_refusal",
    "body_refusal",
    "data_type_refusal",
    "delay_refusal",
    "fifo_id_refusal",
    "message_refusal",
    "message_size",
    "queue_kind_refusal",
    "queue_message_limit",
    "queue_name_refusal",
    "size_refusal",
]

_INVALID = "InvalidParameterValue"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why SQS refuses a request: its error `code` and `message`, and how to fix it."""

    code: str
    message: str
    #: The request's parameter it is about (``MessageBody``, ``MessageAttributes``, ...).
    parameter: str
    #: What is wrong and how to fix it, in the framework's words.
    hint: str

    @property
    def answer(self) -> str:
        """What SQS would answer, for a message that says so."""
        return f"SQS would answer {self.code}: {self.message}"


def message_size(body: str, attributes: Mapping[str, Mapping[str, Any]]) -> int:
    """Bytes SQS counts against its limit: the body plus every attribute's name, type, value."""
    size = len(body.encode())
    for name, value in attributes.items():
        size += len(name.encode()) + len(str(value.get("DataType", "")).encode())
        raw = value.get("StringValue", value.get("BinaryValue", b""))
        size += len(raw) if isinstance(raw, bytes | bytearray) else len(str(raw).encode())
    return size


def _bad_character(text: str, where: str, parameter: str) -> Refusal | None:
    bad = FORBIDDEN_CHARACTER.search(text)
    if bad is None:
        return None
    return Refusal(
        "InvalidMessageContents",
        f"Invalid binary character '#x{ord(bad.group()):X}' was found in {where}, the set of "
        f"allowed characters is {ALLOWED_CHARACTERS}",
        parameter,
        f"character U+{ord(bad.group()):04X} at position {bad.start() + 1} is not allowed in "
        "an SQS message (control characters other than tab, line feed and carriage return "
        "are not): encode the text (JSON escapes it, base64 carries bytes)",
    )


def queue_message_limit(attributes: Mapping[str, str]) -> int | None:
    """The bytes a queue takes in one message: its MaximumMessageSize, never over SQS's 1 MiB;
    None when its attributes do not say (the caller chooses what to assume)."""
    try:
        return min(int(attributes["MaximumMessageSize"]), MAX_MESSAGE_BYTES)
    except (KeyError, ValueError):
        return None


def body_refusal(body: object) -> Refusal | None:
    """A body SQS refuses: missing or empty, or holding a character it does not allow."""
    if not isinstance(body, str) or not body:
        return Refusal(
            "MissingParameter",
            "The request must contain the parameter MessageBody.",
            "MessageBody",
            "the message is empty: SQS refuses empty messages",
        )
    return _bad_character(body, "the message body", "MessageBody")


def size_refusal(
    body: str, attributes: Mapping[str, Mapping[str, Any]], limit: int = MAX_MESSAGE_BYTES
) -> Refusal | None:
    """A message over `limit` bytes (a queue's MaximumMessageSize, at most 1 MiB), counting
    the body and every attribute's name, type and value."""
    size = message_size(body, attributes)
    if size <= limit:
        return None
    return Refusal(
        _INVALID,
        f"One or more parameters are invalid. Reason: Message must be shorter than {limit} bytes.",
        "MessageBody",
        f"message of {size} bytes (body and attributes) is over the limit of {limit} bytes: "
        "store large payloads elsewhere (S3) and send a reference",
    )


def attribute_count_refusal(count: int) -> Refusal | None:
    """More message attributes than SQS allows on one message."""
    if count <= MAX_ATTRIBUTES:
        return None
    return Refusal(
        _INVALID,
        f"Number of message attributes [{count}] exceeds the allowed maximum [{MAX_ATTRIBUTES}].",
        "MessageAttributes",
        f"{count} attributes given: SQS allows at most {MAX_ATTRIBUTES} per message; put the "
        "rest in the body",
    )


def attribute_name_refusal(name: object) -> Refusal | None:
    """A message attribute name SQS refuses (its length, characters, dots, reserved prefix)."""
    # For a character outside the set, the text local servers (moto) copy from SQS; for the
    # length, the dots and the reserved prefixes the text is unverified (SQS answers
    # InvalidParameterValue; we have not seen its own words).
    message = (
        f"Message (user) attribute name {name!r} is invalid: use 1 to {MAX_ATTRIBUTE_NAME} of "
        "A-Z, a-z, 0-9, '_', '-' and '.', not starting or ending with '.', without '..', and "
        "not starting with 'AWS.' or 'Amazon.'."
    )
    if not isinstance(name, str) or not name:
        why = "a name must be a non-empty string"
    elif len(name) > MAX_ATTRIBUTE_NAME:
        why = f"a name is at most {MAX_ATTRIBUTE_NAME} characters"
    elif not ATTRIBUTE_NAME.fullmatch(name):
        why = "a name may hold only letters, digits, '_', '-' and '.'"
        message = (
            f"The message attribute name '{name}' is invalid. Attribute name can contain A-Z, "
            "a-z, 0-9, underscore (_), hyphen (-), and period (.) characters."
        )
    elif name.lower().startswith(RESERVED_ATTRIBUTE_PREFIXES):
        why = "names starting with 'AWS.' or 'Amazon.' are reserved"
    elif name.startswith(".") or name.endswith(".") or ".." in name:
        why = "a name may not start or end with '.', nor hold '..'"
    else:
        return None
    return Refusal(_INVALID, message, "MessageAttributes", why)


def data_type_refusal(name: str, data_type: object) -> Refusal | None:
    """A data type that is not String, Number or Binary, with an optional custom label."""
    text = data_type if isinstance(data_type, str) else ""
    base, dot, label = text.partition(".")
    if base in DATA_TYPES and (label or not dot) and len(text) <= MAX_DATA_TYPE:
        return None
    return Refusal(
        _INVALID,
        f"The message attribute '{name}' has an invalid message attribute type, the set of "
        "supported type prefixes is Binary, Number, and String.",
        "MessageAttributes",
        f"type {text!r} is not String, Number or Binary (a custom label may follow a dot, as "
        f"in Number.int; {MAX_DATA_TYPE} characters at most)",
    )


def attribute_refusal(name: str, value: object) -> Refusal | None:
    """One attribute's value: its type, not empty, a String's characters, a Number's form."""
    data_type = value.get("DataType") if isinstance(value, Mapping) else None
    refusal = data_type_refusal(name, data_type)
    if refusal is not None:
        return refusal
    assert isinstance(value, Mapping)
    assert isinstance(data_type, str)
    base = data_type.partition(".")[0]
    raw = value.get("BinaryValue") if base == "Binary" else value.get("StringValue")
    if not isinstance(raw, str | bytes | bytearray) or not raw:
        return Refusal(
            _INVALID,
            f"The message attribute '{name}' must contain non-empty message attribute value "
            f"for message attribute type '{data_type}'.",
            "MessageAttributes",
            f"{name!r} has an empty value: SQS refuses empty attributes",
        )
    if base == "Binary" or not isinstance(raw, str):
        return None
    refusal = _bad_character(raw, f"the value of message attribute '{name}'", "MessageAttributes")
    if refusal is None and base == "Number" and not NUMBER.fullmatch(raw):
        return Refusal(
            _INVALID,
            f"Can't cast the value of message (user) attribute '{name}' to a number.",
            "MessageAttributes",
            f"{raw!r} is not a number: SQS reads digits with an optional sign, '.' and "
            "exponent (no spaces, no '_')",
        )
    return refusal


def attributes_refusal(attributes: Mapping[Any, Any]) -> Refusal | None:
    """A message's attributes: how many, then each one's name and value."""
    refusal = attribute_count_refusal(len(attributes))
    for name, value in attributes.items():
        if refusal is not None:
            break
        refusal = attribute_name_refusal(name) or attribute_refusal(name, value)
    return refusal


def delay_refusal(delay: object) -> Refusal | None:
    """A DelaySeconds that is not a whole number of seconds from 0 to 900."""
    if isinstance(delay, int) and not isinstance(delay, bool) and 0 <= delay <= MAX_DELAY:
        return None
    return Refusal(
        _INVALID,
        f"Value {delay} for parameter DelaySeconds is invalid. Reason: DelaySeconds must be "
        f">= 0 and <= {MAX_DELAY}.",
        "DelaySeconds",
        f"a delay of {delay!r} is invalid: it must be a whole number of seconds from 0 to "
        f"{MAX_DELAY}",
    )


def fifo_id_refusal(parameter: str, value: object) -> Refusal | None:
    """A MessageGroupId or MessageDeduplicationId SQS refuses (None: not given)."""
    if value is None or (
        isinstance(value, str) and len(value) <= MAX_FIFO_ID and FIFO_ID.fullmatch(value)
    ):
        return None
    return Refusal(
        _INVALID,
        f"Value {value} for parameter {parameter} is invalid. Reason: {parameter} can only "
        f"include alphanumeric and punctuation characters. 1 to {MAX_FIFO_ID} in length.",
        parameter,
        f"{parameter} {value!r} is invalid: 1 to {MAX_FIFO_ID} letters, digits and ASCII "
        "punctuation, no spaces",
    )


def message_refusal(
    body: object,
    attributes: Mapping[Any, Any] | None = None,
    *,
    delay: object = None,
    group_id: object = None,
    deduplication_id: object = None,
    limit: int | None = MAX_MESSAGE_BYTES,
) -> Refusal | None:
    """The first rule one message breaks, in the order SQS checks them; None if it breaks none.

    `limit` is the queue's MaximumMessageSize (at most 1 MiB), or None when the caller holds
    the size against the queue itself (a sender that may store the body in S3 instead); a
    `delay` of None is the queue's own. Whether the queue takes a group id or a delay (FIFO
    or not) is the caller's.
    """
    attributes = attributes or {}
    refusal = body_refusal(body) or attributes_refusal(attributes)
    if refusal is None:
        assert isinstance(body, str)
        refusal = (
            (size_refusal(body, attributes, limit) if limit is not None else None)
            or fifo_id_refusal("MessageGroupId", group_id)
            or fifo_id_refusal("MessageDeduplicationId", deduplication_id)
        )
    if refusal is None and delay is not None:
        refusal = delay_refusal(delay)
    return refusal


_NOT_FOR_THIS_QUEUE = "The request include parameter that is not valid for this queue type."


def queue_kind_refusal(
    *,
    fifo: bool,
    group_id: object = None,
    deduplication_id: object = None,
    delay: object = None,
    content_based: bool | None = None,
) -> Refusal | None:
    """What a FIFO queue requires and a standard queue does not take: a FIFO message needs a
    MessageGroupId, takes no DelaySeconds of its own, and needs a MessageDeduplicationId
    unless the queue has ContentBasedDeduplication (`content_based` None: not known, not
    checked); a standard queue takes no MessageDeduplicationId."""
    if fifo and group_id is None:
        return Refusal(
            "MissingParameter",
            "The request must contain the parameter MessageGroupId.",
            "MessageGroupId",
            "a FIFO queue's message needs a MessageGroupId: messages of one group are "
            "delivered in order, one at a time",
        )
    if fifo and delay:
        return Refusal(
            _INVALID,
            f"Value {delay} for parameter DelaySeconds is invalid. Reason: {_NOT_FOR_THIS_QUEUE}",
            "DelaySeconds",
            "a FIFO queue takes no per-message delay: set the queue's DelaySeconds instead",
        )
    if fifo and deduplication_id is None and content_based is False:
        return Refusal(
            _INVALID,
            "The queue should either have ContentBasedDeduplication enabled or "
            "MessageDeduplicationId provided explicitly",
            "MessageDeduplicationId",
            "this FIFO queue has no ContentBasedDeduplication: give each message a "
            "MessageDeduplicationId, or enable ContentBasedDeduplication",
        )
    if not fifo and deduplication_id is not None:
        return Refusal(
            _INVALID,
            f"Value {deduplication_id} for parameter MessageDeduplicationId is invalid. "
            f"Reason: {_NOT_FOR_THIS_QUEUE}",
            "MessageDeduplicationId",
            "a MessageDeduplicationId is for FIFO queues only",
        )
    return None


def batch_ids_refusal(operation: str, ids: Sequence[object]) -> Refusal | None:
    """A batch call's entries: at least one, at most ten, ids SQS takes, no id twice."""
    if not ids:
        return Refusal(
            "AWS.SimpleQueueService.EmptyBatchRequest",
            f"There should be at least one {operation}RequestEntry in the request.",
            "Entries",
            "a batch call needs at least one entry",
        )
    if len(ids) > MAX_BATCH:
        return Refusal(
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            f"Maximum number of entries per request are {MAX_BATCH}. You have sent {len(ids)}.",
            "Entries",
            f"{len(ids)} entries: a batch call takes at most {MAX_BATCH}; split it",
        )
    for id_ in ids:
        if not (
            isinstance(id_, str)
            and len(id_) <= MAX_BATCH_ENTRY_ID
            and BATCH_ENTRY_ID.fullmatch(id_)
        ):
            return Refusal(
                "AWS.SimpleQueueService.InvalidBatchEntryId",
                "A batch entry id can only contain alphanumeric characters, hyphens and "
                f"underscores. It can be at most {MAX_BATCH_ENTRY_ID} letters long.",
                "Id",
                f"entry id {id_!r} is invalid: 1 to {MAX_BATCH_ENTRY_ID} letters, digits, '-' "
                "and '_'",
            )
    seen: set[object] = set()
    for id_ in ids:
        if id_ in seen:
            return Refusal(
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
                f"Id {id_} repeated.",
                "Id",
                f"entry id {id_!r} is given twice: each entry of a batch needs its own id",
            )
        seen.add(id_)
    return None


def batch_size_refusal(total: int) -> Refusal | None:
    """A SendMessageBatch whose messages come to more than 1 MiB together (`message_size`
    of each entry), refused as a whole before any entry is looked at."""
    if total <= MAX_BATCH_BYTES:
        return None
    return Refusal(
        "AWS.SimpleQueueService.BatchRequestTooLong",
        f"Batch requests cannot be longer than {MAX_BATCH_BYTES} bytes. You have sent "
        f"{total} bytes.",
        "Entries",
        f"the batch's messages come to {total} bytes: SQS takes at most {MAX_BATCH_BYTES} in "
        "one call; send fewer at once",
    )


def queue_name_refusal(name: str, *, fifo: bool) -> Refusal | None:
    """A queue name CreateQueue refuses: 1 to 80 alphanumerics, '-' and '_', and a FIFO
    queue's ending in ``.fifo`` (counted in the 80)."""
    base = name.removesuffix(".fifo") if fifo else name
    if len(name) > MAX_QUEUE_NAME:
        why = f"a queue name is at most {MAX_QUEUE_NAME} characters ({len(name)} given)"
    elif fifo and base == name:
        why = f"a FIFO queue's name ends in .fifo: use {name}.fifo"
    elif not QUEUE_NAME.fullmatch(base):
        why = "a queue name may hold only letters, digits, '-' and '_' (and end in .fifo)"
        if not fifo and name.endswith(".fifo"):
            why += "; a name ending in .fifo is a FIFO queue's (FifoQueue=true)"
    else:
        return None
    # Unverified text: SQS answers InvalidParameterValue in words of its own.
    return Refusal(
        _INVALID,
        f"Queue name {name!r} is invalid: it can only include alphanumeric characters, "
        f"hyphens, or underscores, 1 to {MAX_QUEUE_NAME} in length"
        + (", and a FIFO queue's must end in .fifo" if fifo else ""),
        "QueueName",
        why,
    )
