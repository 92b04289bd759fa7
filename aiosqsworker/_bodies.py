"""Typed bodies: what a handler's first parameter asks for, decoded from the message.

```python
@consumer("orders")
async def handle(order: Order, message: Message) -> None: ...
```

The first parameter's annotation picks the decoder: `Message` (or none) hands over the
message itself; `str` and `bytes` the payload; `dict`, `list` or `Any` the JSON value; a
dataclass or a pydantic model is validated from JSON. An optional second parameter annotated
`Message` receives the message too, for its attributes.

An envelope (`envelope="sns"`, `"eventbridge"`, `"s3"`) is unwrapped first, so that the
handler gets the inner payload. A body that does not decode or validate raises
`MessageDecodeError` naming the field: the message is dead-lettered (no retry decodes it),
never dropped. A dataclass refuses JSON fields it does not declare, unless the consumer
says ``unknown_fields="ignore"``.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from ._config import UnknownFields
from ._errors import ConfigurationError, HandlerSignatureError, MessageDecodeError
from ._message import Message
from ._text import public_text

__all__ = [
    "Arguments",
    "Envelope",
    "arguments_for",
    "build_invoker",
    "call_with",
    "decoder_for",
    "unwrap_envelope",
]

Envelope = Literal["sns", "eventbridge", "s3"]
ENVELOPES: tuple[str, ...] = typing.get_args(Envelope)

Decoder = Callable[[Message], Any]
Invoker = Callable[[Message], Awaitable[object]]
#: The positional arguments a typed handler is called with, made from the message.
Arguments = Callable[[Message], tuple[Any, ...]]

_fast_loads: Callable[[str], Any] | None
try:  # a fast JSON parser where installed (the "fast" extra): decoding is on every message's path
    from orjson import loads as _orjson_loads

    _fast_loads = _orjson_loads
except ImportError:  # pragma: no cover - depends on the environment
    _fast_loads = None


def _loads(text: str) -> Any:
    if _fast_loads is not None:
        return _fast_loads(text)
    return json.loads(text)


def _parse_json(message: Message, text: str, what: str = "body") -> Any:
    try:
        return _loads(text)
    except json.JSONDecodeError as exc:  # orjson's error is a subclass of it
        raise MessageDecodeError(
            f"message {message.message_id}: {what} is not valid JSON ({exc}; "
            f"{len(text)} characters)"
        ) from None


def unwrap_envelope(message: Message, envelope: Envelope | None) -> Any:
    """The payload inside the message: text for plain and SNS bodies, JSON values otherwise."""
    if envelope is None:
        return message.body
    if envelope == "sns":
        try:
            outer = _loads(message.body) if message.body.startswith("{") else None
        except json.JSONDecodeError:  # raw delivery of text that only starts like JSON
            outer = None
        if isinstance(outer, dict) and outer.get("Type") == "Notification" and "Message" in outer:
            return outer["Message"]
        return message.body  # raw message delivery: the body is the payload already
    document = _parse_json(message, message.body)
    if envelope == "eventbridge":
        if not isinstance(document, dict) or "detail" not in document:
            raise MessageDecodeError(
                f"message {message.message_id}: not an EventBridge event (no 'detail' field)"
            )
        return document["detail"]
    records = document.get("Records") if isinstance(document, dict) else None
    if not isinstance(records, list) or not all(
        isinstance(record, dict) and record.get("eventSource") == "aws:s3" for record in records
    ):
        if isinstance(document, dict) and document.get("Event") == "s3:TestEvent":
            return []  # S3 sends one test event when a notification is configured
        raise MessageDecodeError(
            f"message {message.message_id}: not an S3 event notification (no aws:s3 Records)"
        )
    return records


def _check_field_type(owner: str, name: str, expected: Any, value: Any) -> None:
    simple = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    if expected not in simple:
        return  # only the simple JSON types are checked; deeper shapes want pydantic
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise MessageDecodeError(
            f"{owner}: field {name!r} must be {simple[expected]}, got {type(value).__name__}"
        )


def _dataclass_decoder(
    cls: type[Any], unknown_fields: UnknownFields = "refuse"
) -> Callable[[Message, Any], Any]:
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    required = {
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    known = {f.name for f in fields}

    def decode(message: Message, value: Any) -> Any:
        owner = f"message {message.message_id} as {cls.__name__}"
        if not isinstance(value, dict):
            raise MessageDecodeError(f"{owner}: expected a JSON object, got {type(value).__name__}")
        missing = sorted(required - value.keys())
        if missing:
            raise MessageDecodeError(f"{owner}: field {missing[0]!r} is required but missing")
        unknown = sorted(value.keys() - known)
        if unknown and unknown_fields == "refuse":
            raise MessageDecodeError(
                f"{owner}: field {unknown[0]!r} is not a field of {cls.__name__} (a consumer "
                "with unknown_fields='ignore' leaves such fields out)"
            )
        if unknown:
            value = {name: item for name, item in value.items() if name in known}
        for name, item in value.items():
            _check_field_type(owner, name, hints.get(name), item)
        return cls(**value)

    return decode


def _pydantic_decoder(cls: type[Any]) -> Callable[[Message, Any], Any] | None:
    try:
        import pydantic
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    if not (isinstance(cls, type) and issubclass(cls, pydantic.BaseModel)):
        return None

    def decode(message: Message, value: Any) -> Any:
        try:
            if isinstance(value, str):
                return cls.model_validate_json(value)
            return cls.model_validate(value)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(body)"
            raise MessageDecodeError(
                f"message {message.message_id} as {cls.__name__}: field {where!r}: {first['msg']}"
                f" ({exc.error_count()} error(s) in all)"
            ) from None

    return decode


def decoder_for(
    annotation: Any, envelope: Envelope | None = None, *, unknown_fields: UnknownFields = "refuse"
) -> Decoder:
    """The function that turns a message into what a parameter annotated so expects."""
    if envelope is not None and envelope not in ENVELOPES:
        raise ConfigurationError(
            f"envelope={envelope!r} is invalid: it must be one of {', '.join(ENVELOPES)} or None"
        )
    if annotation in (inspect.Parameter.empty, Message):
        if envelope is not None:
            raise HandlerSignatureError(
                f"envelope={envelope!r} unwraps the body for the handler: annotate its first "
                "parameter with the payload's type (str, dict, a dataclass or a model)"
            )
        return lambda message: message
    origin = typing.get_origin(annotation) or annotation

    def as_text(message: Message) -> str:
        payload = unwrap_envelope(message, envelope)
        return payload if isinstance(payload, str) else json.dumps(payload)

    def as_json(message: Message) -> Any:
        payload = unwrap_envelope(message, envelope)
        return _parse_json(message, payload, "payload") if isinstance(payload, str) else payload

    if origin is str:
        return as_text
    if origin is bytes:
        return lambda message: as_text(message).encode()
    if origin in (dict, list, Mapping, Any, object):
        expected = {dict: dict, Mapping: dict, list: list}.get(origin)

        def as_container(message: Message) -> Any:
            value = as_json(message)
            if expected is not None and not isinstance(value, expected):
                raise MessageDecodeError(
                    f"message {message.message_id}: expected a JSON "
                    f"{'object' if expected is dict else 'array'}, got {type(value).__name__}"
                )
            return value

        return as_container
    model = _pydantic_decoder(origin)
    if model is not None:

        def as_model(message: Message) -> Any:
            payload = unwrap_envelope(message, envelope)
            return model(message, payload)

        return as_model
    if dataclasses.is_dataclass(origin) and isinstance(origin, type):
        decode = _dataclass_decoder(origin, unknown_fields)
        return lambda message: decode(message, as_json(message))
    raise HandlerSignatureError(
        f"cannot decode a message body into {public_text(repr(annotation))}: annotate the "
        "handler's first parameter with Message, str, bytes, dict, list, a dataclass or a "
        "pydantic model"
    )


def arguments_for(
    handler: Callable[..., object],
    envelope: Envelope | None,
    *,
    unknown_fields: UnknownFields = "refuse",
) -> Arguments | None:
    """The handler's positional arguments made from a message, or None when it takes the
    message itself (the common case: no decoding, no extra call)."""
    signature = inspect.signature(handler)
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    try:
        hints = typing.get_type_hints(handler)
    except Exception:  # noqa: BLE001 - unresolvable annotations: fall back to Message
        hints = {}
    first = positional[0] if positional else None
    annotation = hints.get(first.name, inspect.Parameter.empty) if first else Message
    decode = _blaming(handler, decoder_for(annotation, envelope, unknown_fields=unknown_fields))
    wants_message = len(positional) > 1 and hints.get(positional[1].name) is Message
    if annotation in (inspect.Parameter.empty, Message) and not wants_message:
        return None
    if wants_message:
        return lambda message: (decode(message), message)
    return lambda message: (decode(message),)


def _definition_site(handler: Callable[..., object]) -> str | None:
    """``path:line in name`` of the function `handler` is, or wraps; None for other callables."""
    function = inspect.unwrap(handler)
    code = getattr(function, "__code__", None)
    if code is None:
        return None
    name = getattr(function, "__qualname__", code.co_name)
    return f"{code.co_filename}:{code.co_firstlineno} in {name}"


def _blaming(
    handler: Callable[..., object], decode: Callable[[Message], Any]
) -> Callable[[Message], Any]:
    """`decode`, whose MessageDecodeError names the handler that asked for the type."""
    site = _definition_site(handler)

    def decode_for_handler(message: Message) -> Any:
        try:
            return decode(message)
        except MessageDecodeError as exc:
            exc.handler_site = site
            raise

    return decode_for_handler


def build_invoker(
    handler: Callable[..., Awaitable[object]],
    envelope: Envelope | None,
    *,
    unknown_fields: UnknownFields = "refuse",
) -> Invoker:
    """`await invoker(message)` decodes the body as the handler asks and calls it."""
    return call_with(handler, arguments_for(handler, envelope, unknown_fields=unknown_fields))


def call_with(handler: Callable[..., Awaitable[object]], arguments: Arguments | None) -> Invoker:
    """`await call(message)` makes the async handler's arguments and calls it."""
    if arguments is None:
        return handler
    build = arguments

    async def invoke(message: Message) -> object:
        return await handler(*build(message))

    return invoke
