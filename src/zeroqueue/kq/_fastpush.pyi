"""The Pusher's hot path in C (see _fastpush.c); absent when built without a compiler."""

from collections.abc import Callable
from typing import Any

class FastPush:
    """A push that calls ``produce(topic, value[, key])`` from C, else defers to ``fallback``."""

    produce: Callable[..., object]
    @property
    def fallback(self) -> Callable[..., None]: ...
    @property
    def keyed(self) -> bool: ...
    def __init__(
        self,
        produce: Callable[..., object],
        topic: str,
        fallback: Callable[..., None],
        retry: Callable[..., None],
        retry_on: tuple[type[BaseException], ...],
        keyed: bool,
    ) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> None: ...
