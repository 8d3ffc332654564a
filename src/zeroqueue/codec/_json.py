"""JSON: the default codec, as kratos-transport's ``json`` and go-zero's services write it."""

from __future__ import annotations

import json
from typing import Any

from pydantic_core import to_json

from zeroqueue.codec._typed import adapter

__all__ = ["JsonCodec"]


class JsonCodec:
    """JSON text in UTF-8; pydantic models, dataclasses, datetimes and the like included."""

    name = "json"
    content_type = "application/json"

    def encode(self, value: Any) -> bytes:
        """``value`` as JSON (pydantic's serializer: models by their own rules)."""
        if isinstance(value, bytes):
            return value  # already encoded
        return to_json(value)

    def decode(self, data: bytes, into: Any) -> Any:
        """``data`` parsed, then validated into ``into`` unless it is None or Any."""
        if into is None or into is Any:
            return json.loads(data)
        return adapter(into).validate_json(data)
