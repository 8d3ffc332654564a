"""A handler that records when each job came, and lets a test await them."""

from __future__ import annotations

import threading
import time
from collections import Counter

from zeroqueue.dq import Job


class Recorder:
    """Call it as a dq handler ``(body, job)``; ``wait_for`` awaits jobs by count."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[bytes, float, Job]] = []
        self._changed = threading.Condition()

    def __call__(self, body: bytes, job: Job) -> None:
        with self._changed:
            self.calls.append((body, time.time(), job))
            self._changed.notify_all()
        if self.fail:
            raise RuntimeError(f"cannot handle {body!r}")

    def wait_for(self, count: int, timeout: float = 30.0) -> bool:
        """Whether ``count`` calls came within ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.calls) >= count, timeout)

    @property
    def counts(self) -> Counter[bytes]:
        """How many times each body was handled."""
        with self._changed:
            return Counter(body for body, _, _ in self.calls)
