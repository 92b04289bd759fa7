"""Message: what a handler receives."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ._errors import MessageDecodeError

if TYPE_CHECKING:
    from .outbox import Outbox

__all__ = ["Message", "from_epoch_millis"]


class _NoAttributes(dict[str, Any]):
    """The attributes of a message that has none, shared by all such messages (most carry
    no message attributes): read-only, and still a dict, so `json.dumps` takes it."""

    def _read_only(self, *args: object, **kwargs: object) -> Any:
        raise TypeError("a message's attributes are read-only")

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only


_NONE: Mapping[str, Any] = _NoAttributes()


def from_epoch_millis(value: object) -> datetime | None:
    """SQS's timestamps (``SentTimestamp`` and the like: milliseconds since the epoch, as
    text) as a UTC datetime, or ``None`` for a missing or unreadable one."""
    try:
        return datetime.fromtimestamp(int(str(value)) / 1000, tz=UTC)
    except (ValueError, OverflowError):
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One SQS message, as received.

    Attributes:
        message_id: SQS's id of the message, stable across redeliveries.
        body: the body as SQS holds it: text.
        receipt_handle: the handle of this receipt; it changes with every delivery.
        queue: the URL of the queue it came from.
        attributes: SQS's system attributes (``SentTimestamp``, ``ApproximateReceiveCount``,
            ``MessageGroupId``, ...), as strings.
        message_attributes: the sender's message attributes, as SQS returns them
            (``{"name": {"DataType": "String", "StringValue": "..."}}``).
    """

    message_id: str
    body: str
    receipt_handle: str = field(repr=False)
    queue: str
    attributes: Mapping[str, str] = field(default_factory=dict, repr=False)
    message_attributes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def receive_count(self) -> int:
        """How many times SQS has handed this message out, this delivery included."""
        try:
            return int(self.attributes["ApproximateReceiveCount"])
        except (KeyError, ValueError):
            return 1

    @property
    def sent_at(self) -> datetime | None:
        """When the message was sent (UTC), or ``None`` if SQS did not say."""
        return from_epoch_millis(self.attributes.get("SentTimestamp"))

    @property
    def group_id(self) -> str | None:
        """The MessageGroupId: a FIFO queue's group, or a standard (fair) queue's tenant;
        ``None`` for a message sent without one."""
        return self.attributes.get("MessageGroupId")

    @property
    def tenant(self) -> str | None:
        """The tenant of a fair queue's message: its MessageGroupId (the same as `group_id`;
        on a standard queue it orders nothing, it only names whose message it is)."""
        return self.attributes.get("MessageGroupId")

    @property
    def outbox(self) -> Outbox:
        """Sends made only if this message's handler succeeds, before its delete (a consumer
        with ``outbox=True``: see `aiosqsworker.outbox`)."""
        from .outbox import current_outbox

        return current_outbox(self)

    def json(self) -> Any:
        """Decode the body as JSON.

        Raises:
            MessageDecodeError: the body is not JSON. Raised from a handler this is an
                ordinary failure: the message is retried and, at last, dead-lettered.
        """
        try:
            return json.loads(self.body)
        except json.JSONDecodeError as exc:
            raise MessageDecodeError(
                f"message {self.message_id}: body is not valid JSON ({exc.msg} at line "
                f"{exc.lineno} column {exc.colno}; body is {len(self.body)} characters)"
            ) from exc

    @classmethod
    def from_sqs(
        cls, raw: Mapping[str, Any], queue: str, shared: dict[str, str] | None = None
    ) -> Message:
        """Build a Message from one entry of a ReceiveMessage response.

        With `shared` (one dict for the messages of one response), system attribute values
        that repeat from message to message (the sender, the receive count, timestamps of
        the same millisecond) are held once rather than once per message.
        """
        attributes = raw.get("Attributes")
        if attributes and shared is not None:
            held = shared.setdefault
            for name, value in attributes.items():
                attributes[name] = held(value, value)
        # The fields set through their slots: the frozen class's __init__ goes through
        # object.__setattr__ once a field, more than a third of a received message's cost.
        message = object.__new__(cls)
        _set_message_id(message, raw["MessageId"])
        _set_body(message, raw.get("Body", ""))
        _set_receipt_handle(message, raw["ReceiptHandle"])
        _set_queue(message, queue)
        _set_attributes(message, attributes or _NONE)
        _set_message_attributes(message, raw.get("MessageAttributes") or _NONE)
        return message


_set_message_id = Message.__dict__["message_id"].__set__
_set_body = Message.__dict__["body"].__set__
_set_receipt_handle = Message.__dict__["receipt_handle"].__set__
_set_queue = Message.__dict__["queue"].__set__
_set_attributes = Message.__dict__["attributes"].__set__
_set_message_attributes = Message.__dict__["message_attributes"].__set__
