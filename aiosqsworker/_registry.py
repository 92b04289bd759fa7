"""@consumer: handlers and their settings, checked when they are decorated."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ._bodies import build_invoker
from ._config import ConsumerConfig, ConsumerSettings, unknown_setting
from ._errors import ConfigurationError, HandlerSignatureError
from ._message import Message
from ._text import public_text

__all__ = [
    "ConsumerSpec",
    "Registry",
    "check_handler",
    "consumer",
    "default_registry",
    "select_consumers",
]

if TYPE_CHECKING:
    from typing_extensions import Unpack

H = TypeVar("H", bound=Callable[..., Any])


def _describe(handler: object) -> str:
    name = getattr(handler, "__qualname__", None) or type(handler).__qualname__
    module = getattr(handler, "__module__", None)
    return f"{module}.{name}" if module else str(name)


def _is_async(handler: object) -> bool:
    while isinstance(handler, functools.partial):
        handler = handler.func
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(handler, "__call__", None)  # noqa: B004 - an async __call__ counts too
    return call is not None and inspect.iscoroutinefunction(call)


def _takes_message_too(signature: inspect.Signature, handler: object) -> bool:
    """Whether the second positional parameter asks for the Message (beside a typed body)."""
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(positional) < 2:
        return False
    try:
        hints = typing.get_type_hints(handler)
    except Exception:  # noqa: BLE001 - unresolvable annotations: not a typed handler
        return False
    return hints.get(positional[1].name) is Message


def check_handler(handler: object, *, batch: bool = False) -> None:
    """Refuse a handler the framework cannot call as ``await handler(message)``.

    A typed handler may take the Message as a second parameter; a batch handler takes one
    parameter, the list of messages.
    """
    name = _describe(handler)
    if not callable(handler):
        raise HandlerSignatureError(f"handler {name} is not callable")
    shape = "messages: list[Message]" if batch else "message: Message"
    if not _is_async(handler):
        raise HandlerSignatureError(
            f"handler {name} is not async: define it as `async def {_short_name(handler)}"
            f"({shape}) -> None` (a blocking handler would stall every other message of the "
            "worker)"
        )
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):  # some builtins have no signature: let them be
        return
    arguments = 2 if not batch and _takes_message_too(signature, handler) else 1
    try:
        signature.bind(*([object()] * arguments))
    except TypeError as exc:
        raise HandlerSignatureError(
            f"handler {name}{public_text(str(signature))} cannot be called as handler({shape}) "
            f"({exc}): it "
            "must take one positional parameter (a typed handler may take the Message as a "
            "second one), and give every other parameter a default"
        ) from None


def _short_name(handler: object) -> str:
    name = str(getattr(handler, "__name__", None) or "handle")
    return name if name.isidentifier() else "handle"  # a lambda's is "<lambda>"


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    """A handler and the settings it consumes its queue with.

    `invoke` is what the dispatcher awaits: the handler itself, or a wrapper that decodes a
    typed body first (built once, at decoration).
    """

    handler: Callable[..., Awaitable[object]]
    config: ConsumerConfig
    invoke: Callable[[Any], Awaitable[object]]

    @classmethod
    def build(
        cls, handler: Callable[..., Awaitable[object]], config: ConsumerConfig
    ) -> ConsumerSpec:
        """Check the handler against the settings and prepare how it is called."""
        check_handler(handler, batch=config.batch)
        if config.batch:
            if config.envelope is not None:
                raise ConfigurationError(
                    "envelope= applies to one-message handlers; a batch handler receives "
                    "Message objects and can decode each body itself"
                )
            invoke: Callable[[Any], Awaitable[object]] = handler
        else:
            invoke = build_invoker(handler, config.envelope, unknown_fields=config.unknown_fields)
        return cls(handler=handler, config=config, invoke=invoke)

    @property
    def name(self) -> str:
        """The configured name, else the handler's own (`handle_order`)."""
        return (
            self.config.name or getattr(self.handler, "__name__", None) or _describe(self.handler)
        )


class Registry:
    """An ordered set of consumers with unique names."""

    def __init__(self) -> None:
        self._specs: list[ConsumerSpec] = []

    def __iter__(self) -> Iterator[ConsumerSpec]:
        return iter(list(self._specs))

    def __len__(self) -> int:
        return len(self._specs)

    def add(self, spec: ConsumerSpec) -> None:
        if any(existing.name == spec.name for existing in self._specs):
            raise ConfigurationError(
                f"two consumers are named {spec.name!r}: give one of them name=..."
            )
        self._specs.append(spec)

    def decorator(self, queue: str, **settings: Unpack[ConsumerSettings]) -> Callable[[H], H]:
        try:
            config = ConsumerConfig(queue=queue, **settings)
        except TypeError as exc:
            known = sorted(set(ConsumerConfig.__dataclass_fields__) - {"queue"})
            unknown = [name for name in settings if name not in known]
            if not unknown:
                raise ConfigurationError(
                    f"{exc}; the settings of a consumer are: {', '.join(known)}"
                ) from None
            raise unknown_setting("consumer", unknown[0], known) from None

        def register(handler: H) -> H:
            self.add(ConsumerSpec.build(handler, config))
            return handler

        return register


def select_consumers(
    specs: Iterable[ConsumerSpec],
    *,
    only: Sequence[str] | None = None,
    concurrency: int | None = None,
) -> list[ConsumerSpec]:
    """The consumers a run starts: those named in `only` (all if None), at `concurrency`.

    A name in `only` that no consumer has is an error naming the ones there are.
    """
    chosen = list(specs)
    if only is not None:
        names = [spec.name for spec in chosen]
        for name in only:
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigurationError(
                    f"no consumer is named {name!r}{hint}; the consumers are: "
                    f"{', '.join(names) or 'none'}"
                )
        chosen = [spec for spec in chosen if spec.name in only]
    if concurrency is not None:
        chosen = [
            dataclasses.replace(
                spec, config=dataclasses.replace(spec.config, concurrency=concurrency)
            )
            for spec in chosen
        ]
    return chosen


#: Where the module-level `consumer` decorator registers; the CLI reads it.
default_registry = Registry()


def consumer(queue: str, **settings: Unpack[ConsumerSettings]) -> Callable[[H], H]:
    """Register an async handler for `queue` (a name or URL) in the default registry.

    ```python
    @consumer("orders", concurrency=50, visibility_timeout=30)
    async def handle(message: Message) -> None:
        order = message.json()
    ```

    The settings (`ConsumerSettings`) are those of `ConsumerConfig`, where each is described:
    ``name``, ``concurrency``, ``prefetch``, ``visibility_timeout``, ``wait_time``,
    ``max_messages``, ``retry_base_delay``, ``retry_max_delay``, ``ack_linger``, ``timeout``,
    ``batch``, ``batch_size``, ``batch_window``, ``envelope``, ``dead_letter_queue`` and
    ``middleware``. Wrong ones raise `ConfigurationError` here (a misspelled name gets "did
    you mean"), and a handler the framework cannot call raises `HandlerSignatureError`. The
    handler is returned unchanged, so it can still be called directly in tests.
    """
    return default_registry.decorator(queue, **settings)
