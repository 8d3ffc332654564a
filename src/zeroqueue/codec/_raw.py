"""Raw bytes: the value as it is on the topic."""

from __future__ import annotations

from typing import Any

__all__ = ["RawCodec"]


class RawCodec:
    """Bytes as they are (text as UTF-8): for payloads another layer encodes."""

    name = "raw"
    content_type = "application/octet-stream"

    def encode(self, value: Any) -> bytes:
        """``bytes`` as they are, ``str`` as UTF-8."""
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return value.encode()
        raise TypeError(f"got {type(value).__name__}; expected bytes or str")

    def decode(self, data: bytes, into: Any) -> Any:
        """The bytes, or text for a ``str`` parameter."""
        if into is str:
            return data.decode()
        if into is None or into is Any or into is bytes:
            return data
        raise TypeError(f"the raw codec gives bytes or str; the handler asks for {into!r}")
