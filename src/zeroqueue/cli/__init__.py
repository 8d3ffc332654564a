"""The ``zeroqueue`` command line.

``run``, ``dev``, ``demo`` and ``kafka-libs`` (``_main``); the delay queues
(``dq``) and dead letters (``dlq``); and the day-to-day cluster tools: ``push``,
``tail``, ``topics``, ``groups`` and ``bench``.
"""

from zeroqueue.cli._bench import bench
from zeroqueue.cli._dlq import dlq
from zeroqueue.cli._dq import dq
from zeroqueue.cli._groups import groups
from zeroqueue.cli._main import main
from zeroqueue.cli._push import push
from zeroqueue.cli._tail import tail
from zeroqueue.cli._topics import topics

for _command in (push, tail, topics, groups, bench, dlq, dq):
    main.add_command(_command)

__all__ = ["main"]
