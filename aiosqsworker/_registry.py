"""@consumer: handlers and their settings, checked when they are decorated."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ._config import ConsumerConfig, ConsumerSettings
from ._dispatcher import Handler
from ._errors import ConfigurationError, HandlerSignatureError

__all__ = ["ConsumerSpec", "Registry", "check_handler", "consumer", "default_registry"]

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


def check_handler(handler: object) -> None:
    """Refuse a handler the framework cannot call as ``await handler(message)``."""
    name = _describe(handler)
    if not callable(handler):
        raise HandlerSignatureError(f"handler {name} is not callable")
    if not _is_async(handler):
        raise HandlerSignatureError(
            f"handler {name} is not async: define it as "
            "`async def handler(message: Message) -> None` (a blocking handler would stall "
            "every other message of the worker)"
        )
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):  # some builtins have no signature: let them be
        return
    try:
        signature.bind(object())
    except TypeError as exc:
        raise HandlerSignatureError(
            f"handler {name}{signature} cannot be called with one message ({exc}): it must "
            "take exactly one positional parameter, the Message, and give every other "
            "parameter a default"
        ) from None


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    """A handler and the settings it consumes its queue with."""

    handler: Handler
    config: ConsumerConfig

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
            allowed = ", ".join(sorted(ConsumerConfig.__dataclass_fields__))
            raise ConfigurationError(f"{exc}; the settings of a consumer are: {allowed}") from None

        def register(handler: H) -> H:
            check_handler(handler)
            self.add(ConsumerSpec(handler=handler, config=config))
            return handler

        return register


#: Where the module-level `consumer` decorator registers; the CLI reads it.
default_registry = Registry()


def consumer(queue: str, **settings: Unpack[ConsumerSettings]) -> Callable[[H], H]:
    """Register an async handler for `queue` (a name or URL) in the default registry.

    ```python
    @consumer("orders", concurrency=50, visibility_timeout=30)
    async def handle(message: Message) -> None:
        order = message.json()
    ```

    The settings are those of `ConsumerConfig`; wrong ones raise `ConfigurationError` here,
    and a handler the framework cannot call raises `HandlerSignatureError`. The handler is
    returned unchanged, so it can still be called directly in tests.
    """
    return default_registry.decorator(queue, **settings)
