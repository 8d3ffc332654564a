"""The ``zeroqueue`` command line: ``run``, ``dev``, ``demo``, ``kafka-libs``, ``dlq``, ``dq``."""

from zeroqueue.cli._dlq import dlq
from zeroqueue.cli._dq import dq
from zeroqueue.cli._main import main

main.add_command(dlq)
main.add_command(dq)

__all__ = ["main"]
