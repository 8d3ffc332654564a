"""Protocol Buffers: generated message classes, as kratos-transport's ``proto`` codec."""

from __future__ import annotations

from typing import Any

__all__ = ["ProtobufCodec"]


class ProtobufCodec:
    """Protobuf wire format (``pip install 'zeroqueue[protobuf]'``).

    The bytes say nothing of their type: a handler's parameter must be the
    generated message class (``def handle(order: order_pb2.Order)``).
    """

    name = "protobuf"
    content_type = "application/x-protobuf"

    def encode(self, value: Any) -> bytes:
        """A generated message's wire bytes."""
        serialize = getattr(value, "SerializeToString", None)
        if serialize is None:
            raise TypeError(f"got {type(value).__name__}; expected a protobuf message")
        data: bytes = serialize()
        return data

    def decode(self, data: bytes, into: Any) -> Any:
        """``data`` parsed as ``into``, a generated message class."""
        parse = getattr(into, "FromString", None)
        if parse is None:
            raise TypeError(
                f"the protobuf codec needs the handler's parameter to be a generated message"
                f" class; got {getattr(into, '__name__', into)!r}"
            )
        return parse(data)
