"""SIGINT/SIGTERM handling shared by Queue and ServiceGroup.

The first signal asks for a graceful stop; the application's own handler for
that signal (if it had one) still runs after ours. A second signal gives up
waiting: KeyboardInterrupt is raised in the main thread. A signal the
application ignores (SIG_IGN) stays ignored.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["install_stop_signals"]

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def install_stop_signals(
    stop: Callable[[], None], what: str, log: logging.Logger
) -> Callable[[], None]:
    """On the main thread, make SIGINT/SIGTERM call ``stop()``; return the undo.

    Elsewhere it does nothing (Python delivers signals to the main thread only).
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[int, Any] = {}
    received = 0

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal received
        received += 1
        name = signal.Signals(signum).name
        if received > 1:
            restore()
            log.warning("received %s again: exiting without waiting", name)
            raise KeyboardInterrupt
        log.info("received %s, stopping %s", name, what)
        stop()
        chained = previous.get(signum)
        if callable(chained) and chained is not signal.default_int_handler:
            chained(signum, frame)

    for sig in _STOP_SIGNALS:
        current = signal.getsignal(sig)
        if current is signal.SIG_IGN:
            continue  # the application chose to ignore it
        previous[sig] = signal.signal(sig, on_signal)

    def restore() -> None:
        for sig, handler in previous.items():
            # None: a handler installed from C, which Python cannot put back.
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        previous.clear()

    return restore
