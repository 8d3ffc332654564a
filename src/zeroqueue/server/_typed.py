"""Typed handlers: the parameter's type decides how a message's value is decoded."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

from zeroqueue.codec import CONTENT_TYPE_HEADER, Codec, codec_for_content_type
from zeroqueue.codec._typed import adapter
from zeroqueue.engine.handlers import is_async_callable
from zeroqueue.errors import ConfigError, DecodeError
from zeroqueue.message import Message

__all__ = ["MessageHandler", "typed_handler"]

MessageHandler = Callable[[Message], Any]


class _Decoder:
    """Decodes one message's value into ``into`` with the codec its header or subscriber names."""

    def __init__(self, into: Any, codec: Codec) -> None:
        self.into = None if into is inspect.Parameter.empty else into
        self.codec = codec

    def _tombstone(self, message: Message) -> Any:
        """A message with no value (a tombstone): None where the type takes None."""
        into = self.into
        if into is None or into is Any:
            return None
        try:
            return adapter(into).validate_python(None)
        except Exception as error:
            wanted = getattr(into, "__name__", None) or repr(into)
            raise DecodeError(
                f"{message.topic}[{message.partition}]@{message.offset}: the message has no"
                f" value (a tombstone) and {wanted} takes no None; annotate the payload"
                f" Optional[{wanted}] to get None"
            ) from error

    def __call__(self, message: Message) -> Any:
        into = self.into
        if into is Message:
            return message
        value = message.value if message.value is not None else b""
        if into is bytes:
            return value
        if message.value is None and into is not str:
            return self._tombstone(message)
        codec = self.codec
        for name, header in message.headers:
            if name.lower() == CONTENT_TYPE_HEADER and header:
                codec = codec_for_content_type(header.decode(errors="replace")) or codec
        try:
            if into is str:
                return value.decode()
            return codec.decode(value, into)
        except Exception as error:
            wanted = getattr(into, "__name__", None) or repr(into)
            used = "as UTF-8 text" if into is str else f"with codec {codec.name!r}"
            raise DecodeError(
                f"{message.topic}[{message.partition}]@{message.offset}: the value does not"
                f" decode as {wanted} {used}: {_one_line(error)}"
            ) from error


def _annotated(func: Callable[..., Any]) -> Any:
    """Where ``func``'s annotations are: itself, a partial's function, an object's __call__."""
    while isinstance(func, functools.partial):
        func = func.func
    if inspect.isfunction(func) or inspect.ismethod(func) or inspect.isclass(func):
        return func
    return type(func).__call__  # a callable object's own annotations


def _mentions_message(annotation: Any) -> bool:
    """Whether ``annotation`` is Message, or a union holding it (``Message | None``)."""
    return annotation is Message or Message in typing.get_args(annotation)


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    # pydantic's ValidationError spells each problem over several lines: keep it whole
    # but on one line, for a log line or a dead-letter header.
    return " ".join(part.strip() for part in text.splitlines()) or type(error).__name__


def typed_handler(func: Callable[..., Any], codec: Codec) -> MessageHandler:
    """A Queue handler ``(message)`` that calls ``func`` with its value decoded.

    ``func`` takes the payload, annotated with what it wants: a pydantic model, a
    dataclass, ``dict``, ``list[...]`` (decoded by the codec), ``str`` or
    ``bytes`` (the value as it is), or :class:`Message` for the message itself;
    and optionally a second parameter for the :class:`Message` (its key,
    headers, partition, offset). Sync or ``async def``. A value that does not
    decode or validate raises :class:`~zeroqueue.errors.DecodeError`: a poison
    message, dead-lettered at once when the Queue has a dead-letter topic.

    Raises:
        ConfigError: ``func`` is not callable or takes neither shape.
    """
    if not callable(func):
        raise ConfigError(f"handler: got {func!r}; expected a callable (payload[, message])")
    name = getattr(func, "__qualname__", None) or repr(func)
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"handler: {func!r} has no signature to read its types from") from error
    try:
        hints = typing.get_type_hints(_annotated(func))
    except Exception as error:  # a forward reference that does not resolve
        raise ConfigError(f"handler: {name}: cannot resolve its annotations: {error}") from error
    parameters = signature.parameters.values()
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    # A keyword-only parameter without a default would fail every call: refuse it now.
    keyword_only = [p for p in parameters if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    if not positional or len(required) > 2 or keyword_only:
        raise ConfigError(
            f"handler: {name}{signature}; expected (payload) or (payload, message), the"
            " payload annotated with the type to decode into"
        )
    decode = _Decoder(hints.get(positional[0].name, inspect.Parameter.empty), codec)
    # The Message goes to a second parameter that needs it, or that asks for it by its
    # annotation though it has a default (``message: Message | None = None``).
    with_message = len(required) == 2 or (
        len(positional) >= 2 and _mentions_message(hints.get(positional[1].name))
    )
    # Not functools.wraps: the Queue reads the wrapper's own (message) signature,
    # which __wrapped__ would hide behind the user's.
    if is_async_callable(func):

        async def handle_async(message: Message) -> Any:
            payload = decode(message)
            if with_message:
                return await func(payload, message)
            return await func(payload)

        handle_async.__qualname__ = name
        return handle_async

    def handle(message: Message) -> Any:
        payload = decode(message)
        if with_message:
            return func(payload, message)
        return func(payload)

    handle.__qualname__ = name
    return handle
