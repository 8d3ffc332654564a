"""MessagePack: compact binary, for the ``msgpack`` extra."""

from __future__ import annotations

from typing import Any

from zeroqueue.codec._typed import adapter, plain

__all__ = ["MsgpackCodec"]


class MsgpackCodec:
    """MessagePack via the ``msgpack`` package (``pip install 'zeroqueue[msgpack]'``)."""

    name = "msgpack"
    content_type = "application/msgpack"

    def __init__(self) -> None:
        try:
            import msgpack  # noqa: PLC0415 - an optional extra, loaded when used
        except ImportError as error:  # pragma: no cover - the dev extra installs it
            raise ImportError(
                "the msgpack codec needs the msgpack package: pip install 'zeroqueue[msgpack]'"
            ) from error
        self._msgpack = msgpack

    def encode(self, value: Any) -> bytes:
        """``value`` (models and dataclasses as maps) packed."""
        packed: bytes = self._msgpack.packb(plain(value), use_bin_type=True)
        return packed

    def decode(self, data: bytes, into: Any) -> Any:
        """``data`` unpacked, then validated into ``into`` unless it is None or Any."""
        value = self._msgpack.unpackb(data, raw=False)
        if into is None or into is Any:
            return value
        return adapter(into).validate_python(value)
