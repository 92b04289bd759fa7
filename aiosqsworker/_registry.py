"""@consumer: handlers and their settings, checked when they are decorated."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
import inspect
import sys
import typing
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ._bodies import Arguments, arguments_for, call_with
from ._config import ConsumerConfig, ConsumerSettings, RunIn, unknown_setting
from ._errors import ConfigurationError, HandlerSignatureError
from ._message import Message
from ._text import public_text

__all__ = [
    "ConsumerSpec",
    "Registry",
    "check_handler",
    "consumer",
    "default_registry",
    "resolve_run_in",
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
    """Refuse a handler the framework cannot call as ``handler(message)``.

    A typed handler may take the Message as a second parameter; a batch handler takes one
    parameter, the list of messages.
    """
    name = _describe(handler)
    if not callable(handler):
        raise HandlerSignatureError(f"handler {name} is not callable")
    shape = "messages: list[Message]" if batch else "message: Message"
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


def resolve_run_in(handler: object, requested: RunIn | None) -> RunIn:
    """Where the handler runs: as asked, else on the loop if async and in a thread if not."""
    name = _describe(handler)
    is_async = _is_async(handler)
    if requested is None:
        return "loop" if is_async else "thread"
    if requested == "loop" and not is_async:
        raise HandlerSignatureError(
            f"handler {name} is a plain def: run_in='loop' would run it on the event loop, "
            "where blocking code stalls every lease and poll of the worker. Leave run_in out "
            f"(a def runs in a thread) or define it as `async def {_short_name(handler)}`"
        )
    if requested != "loop" and is_async:
        raise HandlerSignatureError(
            f"handler {name} is async: run_in={requested!r} is for a plain def, which runs "
            "in a worker thread or a child process. Leave run_in out (an async handler runs "
            f"on the event loop) or define it as `def {_short_name(handler)}`"
        )
    if requested == "process":
        check_process_target(handler, name)
    return requested


_SCRIPT_MODULES = ("__main__", "__mp_main__")


def check_process_target(handler: object, name: str) -> None:
    """Refuse a ``run_in="process"`` handler a child process could not import by its name."""
    if not inspect.isfunction(handler):
        raise HandlerSignatureError(
            f"handler {name} cannot run in a process: run_in='process' takes a plain function "
            "defined with def at the top level of a module (not a partial, a method or a "
            "callable object)"
        )
    qualname = handler.__qualname__
    if "<lambda>" in qualname or "<locals>" in qualname:
        what = "a lambda" if "<lambda>" in qualname else "defined inside another function"
        raise HandlerSignatureError(
            f"handler {name} cannot run in a process: it is {what}, and a child process "
            "finds its handler by module and name. Define it with def at the top level of "
            "a module"
        )
    module = handler.__module__
    # A script's module is __main__ in the parent and __mp_main__ in its children (which run
    # it again under that name): both find the handler, through the module the child ran.
    if module not in _SCRIPT_MODULES and (module not in sys.modules or _find_spec(module) is None):
        raise HandlerSignatureError(
            f"handler {name} cannot run in a process: its module {module!r} cannot be "
            "imported by name in a child process. Define it in a module of your project"
        )


def _find_spec(module: str) -> object:
    try:
        return importlib.util.find_spec(module)
    except (ImportError, ValueError):  # a module with no spec (built by hand, exec'd)
        return None


def _short_name(handler: object) -> str:
    name = str(getattr(handler, "__name__", None) or "handle")
    return name if name.isidentifier() else "handle"  # a lambda's is "<lambda>"


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    """A handler and the settings it consumes its queue with.

    `run_in` is where the handler runs (``"loop"``, ``"thread"`` or ``"process"``);
    `arguments` makes a typed handler's arguments from a message (``None``: it takes the
    message itself). Both are settled at decoration; `_consumer.offload.invoker_for` builds
    what the slots await.
    """

    handler: Callable[..., object]
    config: ConsumerConfig
    run_in: RunIn = "loop"
    arguments: Arguments | None = None

    @classmethod
    def build(cls, handler: Callable[..., object], config: ConsumerConfig) -> ConsumerSpec:
        """Check the handler against the settings and prepare how it is called."""
        check_handler(handler, batch=config.batch)
        run_in = resolve_run_in(handler, config.run_in)
        if config.outbox and run_in == "process":
            raise ConfigurationError(
                f"handler {_describe(handler)}: outbox=True needs a handler that runs in this "
                "process (message.outbox cannot reach a child process): leave run_in out, "
                "or send from the handler's result instead"
            )
        if config.batch:
            if config.envelope is not None:
                raise ConfigurationError(
                    "envelope= applies to one-message handlers; a batch handler receives "
                    "Message objects and can decode each body itself"
                )
            arguments = None
        else:
            arguments = arguments_for(
                handler, config.envelope, unknown_fields=config.unknown_fields
            )
        return cls(handler=handler, config=config, run_in=run_in, arguments=arguments)

    @property
    def label(self) -> str:
        """How logs name the handler: ``handler orders.handle of consumer 'orders'``."""
        return f"handler {_describe(self.handler)} of consumer {self.name!r}"

    @property
    def slot_timeout(self) -> float | None:
        """The time limit the slots put on a call: none for a thread or process handler,
        which is timed where it runs (waiting for a free thread or child, or for one to
        start, is not the handler's time)."""
        return self.config.timeout if self.run_in == "loop" else None

    @property
    def invoke(self) -> Callable[[Any], Awaitable[object]]:
        """What the slots await for an ``async def``: the body decoded, the handler called.

        A ``def`` handler's call is built for each run, where it runs (`_consumer.offload`).
        """
        if self.run_in != "loop":
            raise AttributeError(f"{self.label} runs in a {self.run_in}: see invoker_for")
        return call_with(cast(Callable[..., Awaitable[object]], self.handler), self.arguments)

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
    """Register a handler for `queue` (a name or URL) in the default registry.

    ```python
    @consumer("orders", concurrency=50, visibility_timeout=30)
    async def handle(message: Message) -> None:
        order = message.json()
    ```

    The settings (`ConsumerSettings`) are those of `ConsumerConfig`, where each is described:
    ``name``, ``concurrency``, ``prefetch``, ``visibility_timeout``, ``wait_time``,
    ``max_messages``, ``retry_base_delay``, ``retry_max_delay``, ``ack_linger``, ``timeout``,
    ``batch``, ``batch_size``, ``batch_window``, ``envelope``, ``dead_letter_queue``,
    ``middleware``, ``on_decode_error``, ``unknown_fields``, ``run_in``, ``max_rate``,
    ``idempotency``, ``idempotency_key`` and ``outbox``. Wrong ones raise
    `ConfigurationError` here (a misspelled name gets "did you mean"), and a handler the
    framework cannot call raises `HandlerSignatureError`. The handler is returned unchanged,
    so it can still be called directly in tests.

    An ``async def`` runs on the event loop; a plain ``def`` runs in a worker thread (at
    most `concurrency` at once), and with ``run_in="process"`` in the app's process pool
    (for CPU-bound work).
    """
    return default_registry.decorator(queue, **settings)
