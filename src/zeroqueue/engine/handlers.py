"""What a user's handler is, and what happens when it fails.

A handler is any of:

* a callable ``(key: str, value: str)``, like go-queue's ``Consume(key, value)``;
* a callable ``(message: Message)`` taking the whole record (bytes, headers, ...);
* an object with such a ``consume`` method (go-queue's ``ConsumeHandler``);
* any of these as ``async def``.

It signals failure by raising; its return value is ignored.
"""

from __future__ import annotations

import abc
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, runtime_checkable

from confluent_kafka import Message as KafkaMessage

from zeroqueue.errors import ConfigError, ConsumeError, DecodeError
from zeroqueue.message import Message, decode_text

__all__ = [
    "ConsumeErrorHandler",
    "ConsumeHandler",
    "FailurePolicy",
    "FailurePolicyLike",
    "Handler",
    "HandlerSpec",
    "MetricsHook",
    "ObserveHook",
    "as_consume_error",
    "is_async_callable",
    "positional_count",
    "refuse_awaitable",
    "resolve_handler",
]

_log = logging.getLogger("zeroqueue.engine")


@runtime_checkable
class ConsumeHandler(Protocol):
    """go-queue's ``ConsumeHandler``: an object with ``consume(key, value)``."""

    def consume(self, key: str, value: str) -> object:
        """Handle one message; raise to report failure."""


#: Every accepted handler shape (see the module docstring).
Handler: TypeAlias = (
    Callable[[str, str], object]
    | Callable[[Message], object]
    | Callable[[str, str], Awaitable[object]]
    | Callable[[Message], Awaitable[object]]
    | ConsumeHandler
    | Any
)
#: ``error_handler(message, error)``: called for every failed handling attempt; with a
#: third parameter, also told what became of it (``"retrying"``, ``"dead-lettered"``, ...).
ConsumeErrorHandler: TypeAlias = (
    Callable[[Message, BaseException], object] | Callable[[Message, BaseException, str], object]
)
#: ``metrics(topic, partition, seconds, error)``: called after each message is handled;
#: with a fifth parameter, also told its outcome (``"handled"``, ``"dead-lettered"``, ...).
MetricsHook: TypeAlias = (
    Callable[[str, int, float, "BaseException | None"], object]
    | Callable[[str, int, float, "BaseException | None", str], object]
)
#: What the engine calls after each message: the four-parameter form.
ObserveHook: TypeAlias = Callable[[str, int, float, "BaseException | None"], object]


def positional_count(hook: Callable[..., Any]) -> int:
    """How many positional arguments ``hook`` takes (many for ``*args``; 0 if unknown)."""
    try:
        parameters = inspect.signature(hook).parameters.values()
    except (TypeError, ValueError):
        return 0
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return 99
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters)


#: ``async (messages) -> index | None``: handles a lane's run of messages at once, in
#: order; returns the index of the first it did not handle (None: all handled).
RunHandler = Callable[[list[Message]], Awaitable["int | None"]]


class RunHandling(abc.ABC):
    """Internal: an async handler whose runs the engine may hand over at once.

    Nominal on purpose (subclass it, zeroqueue's delay releasers do): a user's
    handler with a method that happens to be called ``handle_run``, or an
    ``AsyncMock``, must never be taken for one; the engine would count a run
    handled that the handler never saw.
    """

    @abc.abstractmethod
    async def handle_run(self, messages: list[Message]) -> int | None:
        """Handle ``messages`` in order; the index of the first not handled, or None."""


@dataclass(frozen=True)
class HandlerSpec:
    """A user handler, classified once at start-up.

    ``handle_run``: an async handler object's ``handle_run`` method (see
    :data:`RunHandler`), which the engine calls with each lane's run of messages
    instead of one call per message; what it did not handle goes through
    ``func`` one by one. For handlers that only wait on I/O per message (the
    delay releasers): a run then costs one wait, not one per message.
    """

    func: Callable[..., Any]
    is_async: bool
    takes_message: bool
    name: str
    handle_run: RunHandler | None = None

    def call(self, record: KafkaMessage, attempt: int = 1) -> Any:
        """Call the handler on one record (returns an awaitable for async handlers).

        ``attempt`` counts the tries of this delivery (a Message handler sees the
        total in ``message.attempt``, earlier deliveries from a retry topic included).
        """
        if self.takes_message:
            return self.func(Message.from_kafka(record, attempt))
        topic, partition, offset = record.topic() or "", record.partition() or 0, record.offset()
        where = (topic, partition, -1 if offset is None else offset)
        return self.func(
            decode_text(record.key(), "key", *where), decode_text(record.value(), "value", *where)
        )


def resolve_handler(handler: Handler) -> HandlerSpec:
    """Classify ``handler``: sync or async, (key, value) or (message).

    Raises:
        ConfigError: it is not callable, or its parameters fit neither shape.
    """
    target: Any = handler
    if not callable(handler) or (
        not inspect.isroutine(handler) and callable(getattr(handler, "consume", None))
    ):
        target = getattr(handler, "consume", None)
        if not callable(target):
            raise ConfigError(
                f"handler: got {handler!r}; expected a callable (key, value) or (message), "
                "or an object with a consume(key, value) method"
            )
    name = getattr(target, "__qualname__", None) or repr(target)
    is_async = is_async_callable(target)
    handle_run = handler.handle_run if is_async and isinstance(handler, RunHandling) else None
    return HandlerSpec(target, is_async, _takes_message(target, name), name, handle_run)


def is_async_callable(target: Callable[..., Any]) -> bool:
    """Whether calling ``target`` gives a coroutine to await.

    A decorator made with ``functools.wraps`` around an ``async def`` hides it
    from ``iscoroutinefunction``; its ``__wrapped__`` chain still tells. (A
    wrapper that runs the coroutine itself and returns a plain value is fine too:
    the async runner awaits only what is awaitable.)
    """
    candidates = [target, getattr(target, "__call__", None)]  # noqa: B004 - async __call__
    for candidate in candidates:
        if candidate is None:
            continue
        if inspect.iscoroutinefunction(candidate):
            return True
        try:
            unwrapped = inspect.unwrap(candidate)
        except ValueError:  # a __wrapped__ cycle
            continue
        if unwrapped is not candidate and inspect.iscoroutinefunction(unwrapped):
            return True
    return False


def refuse_awaitable(result: object, spec: HandlerSpec) -> None:
    """Raise ConsumeError if a handler run as sync returned something to await.

    Dropping it would count the message handled while the handler's body never
    ran; counting it a failed message would let ForceCommit commit past every
    message just the same. It is a bug in how the handler is written, so the
    ConsumeError stops the queue, its message uncommitted. The coroutine is
    closed so Python does not warn about it either.
    """
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if callable(close):
            close()
        raise ConsumeError(
            f"handler {spec.name} returned {type(result).__name__} instead of running: it was"
            " taken for a sync handler. Make it `async def` (or wrap it with functools.wraps"
            " so its async nature shows), or have it run the coroutine itself"
        )


def _takes_message(target: Callable[..., Any], name: str) -> bool:
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return False  # a builtin without a signature: assume go-queue's (key, value)
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    required = [p for p in positional if p.default is p.empty]
    variadic = any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values())
    first_is_message = bool(positional) and _annotated_message(positional[0])
    if first_is_message and len(required) <= 1:
        return True
    if len(required) == 2:
        return False
    if len(required) == 1 and len(positional) == 1 and not variadic:
        return True
    if not required and (variadic or len(positional) >= 2):
        return False
    if not required and len(positional) == 1:
        return True
    if len(required) == 1:
        # (key, value=None) or (message, extra=None)? Guessing wrong would hand a
        # str where a Message is expected, or the reverse, on every message.
        raise ConfigError(
            f"handler: {name}{signature} takes one required argument and more optional ones;"
            " expected (key, value) with both required like go-queue's Consume, or"
            " (message: Message) annotated so zeroqueue can tell"
        )
    raise ConfigError(
        f"handler: {name}{signature} takes {len(required)} required arguments; expected "
        "(key, value) like go-queue's Consume, or (message) for the whole Message"
    )


def _annotated_message(parameter: inspect.Parameter) -> bool:
    annotation = parameter.annotation
    # A string under `from __future__ import annotations`.
    return annotation is Message or annotation in ("Message", "zeroqueue.Message")


class FailurePolicyLike(Protocol):
    """What decides a failed message's fate: :class:`FailurePolicy`, or a face's own."""

    def failed(self, message: Message, error: BaseException, attempt: int) -> float | None:
        """Report attempt number ``attempt``; return the pause before a retry, or None.

        None counts the message as handled (its offset may be committed). The
        message is zeroqueue's copy of the record, headers included: a policy
        may push it elsewhere (a retry or dead-letter topic).
        """


#: 2.0 ** 1000 is still a finite float, and a pause doubled that often is past
#: any max_retry_backoff (an infinite product just loses to the ceiling).
_MAX_DOUBLINGS = 1000


class FailurePolicy:
    """Report a failed handling and decide: count it as handled, or retry after a pause.

    ``force_commit=True`` keeps go-queue's meaning: the error is reported and the
    message counts as handled. ``force_commit=False`` never moves past it: it is
    retried, the pause doubling from ``retry_backoff`` up to ``max_retry_backoff``.
    """

    def __init__(
        self,
        *,
        force_commit: bool,
        error_handler: ConsumeErrorHandler | None,
        retry_backoff: float,
        max_retry_backoff: float,
    ) -> None:
        self.force_commit = force_commit
        self.error_handler = error_handler
        # An error_handler(message, error, outcome) also hears what became of it.
        self._with_outcome = error_handler is not None and positional_count(error_handler) >= 3
        self.retry_backoff = retry_backoff
        self.max_retry_backoff = max_retry_backoff

    def failed(self, message: Message, error: BaseException, attempt: int) -> float | None:
        """Report attempt number ``attempt``; return the pause before a retry, or None."""
        delay = None if self.force_commit else self.delay(attempt)
        if self.error_handler is None:
            outcome = "skipped (ForceCommit)" if delay is None else f"retrying in {delay:.3g}s"
            _log.error(
                "handling %s[%d]@%d (key %r) failed on attempt %d, %s: %s",
                message.topic,
                message.partition,
                message.offset,
                message.key,
                attempt,
                outcome,
                error,
                exc_info=error,
            )
        else:
            try:
                if self._with_outcome:
                    outcome = "skipped" if delay is None else "retrying"
                    self.error_handler(message, error, outcome)  # type: ignore[call-arg]
                else:
                    self.error_handler(message, error)  # type: ignore[call-arg]
            except Exception:
                _log.exception(
                    "error_handler raised while reporting %s[%d]@%d",
                    message.topic,
                    message.partition,
                    message.offset,
                )
        return delay

    def delay(self, attempt: int) -> float:
        """The pause before retry number ``attempt`` (1-based)."""
        # A message can fail thousands of times (for hours, or at once with no
        # backoff), and 2 ** 1024 no longer converts to a float.
        doublings = min(attempt - 1, _MAX_DOUBLINGS)
        return min(self.retry_backoff * 2.0**doublings, self.max_retry_backoff)


def as_consume_error(record: KafkaMessage, error: BaseException) -> BaseException:
    """Turn a decode failure of the (key, value) fast path into a DecodeError naming the record."""
    if not isinstance(error, UnicodeDecodeError):
        return error
    offset = record.offset()
    where = (record.topic() or "", record.partition() or 0, -1 if offset is None else offset)
    try:
        decode_text(record.key(), "key", *where)
        decode_text(record.value(), "value", *where)
    except DecodeError as decode_error:
        return decode_error
    return error  # raised by the handler's own code, not by our decoding
