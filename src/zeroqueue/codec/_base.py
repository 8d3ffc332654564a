"""The Codec protocol: how a typed message becomes bytes on a topic, and back."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["CONTENT_TYPE_HEADER", "Codec"]

#: The header a publish writes the codec's content type to, and a subscriber reads
#: first (kratos-transport writes none: its subscribers go by their own codec).
CONTENT_TYPE_HEADER = "content-type"


@runtime_checkable
class Codec(Protocol):
    """Turns values into bytes and back; add one with :func:`register_codec`.

    ``decode`` gets the type the handler asked for (a pydantic model, a
    dataclass, ``dict``, ... or ``None`` for whatever the bytes hold) and raises
    any exception when the bytes do not fit it: the subscriber turns it into a
    :class:`~zeroqueue.errors.DecodeError` (a poison message).
    """

    #: The short name subscribers and publishers pick it by: ``"json"``.
    name: str
    #: What the content-type header says: ``"application/json"``.
    content_type: str

    def encode(self, value: Any) -> bytes:
        """``value`` as bytes; raises TypeError or ValueError when it cannot be."""
        ...

    def decode(self, data: bytes, into: Any) -> Any:
        """``data`` as an instance of ``into`` (``None``: as the codec reads it)."""
        ...
