"""Run the ``zeroqueue`` command line in a subprocess, as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

# Long enough for Apache Kafka on a busy 2-CPU machine; a hang fails the test, not the run.
COMMAND_TIMEOUT = 60.0


def zeroqueue(*args: str, stdin: str | bytes | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m zeroqueue ARGS``, its output captured as text; ``stdin`` as given."""
    done = subprocess.run(
        [sys.executable, "-m", "zeroqueue", *args],
        input=stdin.encode() if isinstance(stdin, str) else stdin,
        capture_output=True,
        check=False,
        timeout=COMMAND_TIMEOUT,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def ok(*args: str, stdin: str | bytes | None = None) -> str:
    """The stdout of a command that must succeed."""
    done = zeroqueue(*args, stdin=stdin)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def json_lines(text: str) -> list[Any]:
    """One JSON value per line."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]
