"""Validating decoded data into the type a handler asks for, through pydantic."""

from __future__ import annotations

import threading
from typing import Any

from pydantic import TypeAdapter

__all__ = ["adapter", "plain"]

_adapters: dict[Any, TypeAdapter[Any]] = {}
_lock = threading.Lock()


def adapter(into: Any) -> TypeAdapter[Any]:
    """A pydantic adapter for ``into``, built once per type (building compiles a validator)."""
    found = _adapters.get(into)
    if found is None:
        with _lock:
            found = _adapters.get(into)
            if found is None:
                found = _adapters[into] = TypeAdapter(into)
    return found


def plain(value: Any) -> Any:
    """``value`` as JSON-like Python data (models and dataclasses as dicts)."""
    if isinstance(value, (bytes, str, int, float, bool, type(None))):
        return value
    return adapter(type(value)).dump_python(value, mode="json")
