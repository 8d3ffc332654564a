"""Memory brokers by name: what a ``memory://<name>`` Brokers value reaches.

``zeroqueue._kafka.backends`` imports this module the first time it meets such
a value and asks :func:`broker_named`; a name nobody registered gets a fresh
broker, so ``Brokers: [memory://]`` in a config file works without a fixture.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zeroqueue.testing._broker import MemoryBroker

__all__ = ["broker_named", "register", "unregister"]

_lock = threading.RLock()
_brokers: dict[str, MemoryBroker] = {}


def register(broker: MemoryBroker) -> None:
    """Make ``memory://<broker.name>`` reach ``broker`` (replacing an earlier one)."""
    with _lock:
        _brokers[broker.name] = broker


def unregister(broker: MemoryBroker) -> None:
    """Forget ``broker`` (if its name still reaches it)."""
    with _lock:
        if _brokers.get(broker.name) is broker:
            del _brokers[broker.name]


def broker_named(name: str) -> MemoryBroker:
    """The broker ``memory://<name>`` names, created empty the first time."""
    # Here, not at the top: the broker's module imports this one.
    from zeroqueue.testing._broker import MemoryBroker  # noqa: PLC0415

    with _lock:
        found = _brokers.get(name)
        if found is None:
            found = MemoryBroker(name)  # registers itself (the lock is re-entrant)
        return found
