"""The ``zeroqueue`` command line: ``run``, ``dev``, ``demo``, ``kafka-libs``, ``dlq``."""

from zeroqueue.cli._dlq import dlq
from zeroqueue.cli._main import main

main.add_command(dlq)

__all__ = ["main"]
