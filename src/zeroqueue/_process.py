"""Run a server binary as a child process: free ports, readiness, log file, clean stop.

Used by the embedded broker and by the test fixtures that start redis-server and
beanstalkd, so every server we start behaves the same way: it listens on a free
port of 127.0.0.1, writes its output to a log file instead of the terminal, dies
with the Python process that started it, and is stopped (it and nothing else)
with SIGTERM, then SIGKILL if it does not exit in time.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["ManagedProcess", "free_port", "wait_for_port"]

_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """Return whether a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str, port: int, timeout: float, *, alive: Callable[[], bool] = lambda: True
) -> bool:
    """Wait until ``host:port`` accepts connections; False on timeout or when ``alive()`` fails."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while time.monotonic() < deadline:
        if port_is_open(host, port):
            return True
        if not alive():
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    return False


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM us when the parent goes away (no orphans)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ManagedProcess:
    """One child server process with its output in ``log_path``."""

    def __init__(self, argv: Sequence[str], log_path: Path, *, env: dict[str, str] | None = None):
        self.argv = list(argv)
        self.log_path = log_path
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id, or None before start."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the child in its own session, its output appended to the log file."""
        # The death signal is tied to the *thread* that forks: only ask for it from the
        # main thread, or the server would die when a short-lived worker thread ends.
        on_linux_main_thread = (
            os.name == "posix"
            and threading.current_thread() is threading.main_thread()
            and os.uname().sysname == "Linux"
        )
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
                # Own session: Ctrl-C in the user's terminal reaches us, not the server;
                # we stop it ourselves, in order.
                start_new_session=True,
                preexec_fn=_die_with_parent if on_linux_main_thread else None,  # noqa: PLW1509
            )

    def is_running(self) -> bool:
        """Return whether the child has been started and has not exited."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once the child has exited, else None."""
        return self._proc.poll() if self._proc is not None else None

    def wait(self, timeout: float | None = None) -> int:
        """Block until the child exits and return its exit status."""
        if self._proc is None:
            raise RuntimeError("process was never started")
        return self._proc.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the child: SIGTERM, then SIGKILL after ``timeout`` seconds; reap it."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """SIGKILL the child (no chance to clean up) and reap it."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait()

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the child's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
