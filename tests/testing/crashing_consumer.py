"""A consumer process that dies (os._exit, as SIGKILL would) after handling N messages.

Usage: python -m tests.testing.crashing_consumer BROKER TOPIC GROUP N

Prints ``partition offset value`` per message handled, then exits with status 3
before any commit after the first one it handled (commit_interval is a minute).
"""

from __future__ import annotations

import os
import sys
import threading

from tests.kafka_helpers import SHORT_SESSION_TIMEOUT
from zeroqueue import KqConf, Message, Queue


def main() -> None:
    broker, topic, group, count = sys.argv[1:5]
    lock = threading.Lock()
    handled = 0

    def handle(message: Message) -> None:
        nonlocal handled
        with lock:
            print(message.partition, message.offset, message.value_str, flush=True)
            handled += 1
            if handled == int(count):
                os._exit(3)  # no stop(), no commit: a crash

    conf = KqConf(Brokers=[broker], Group=group, Topic=topic, Offset="first", Processors=1)
    Queue(
        conf,
        handle,
        session_timeout=SHORT_SESSION_TIMEOUT,
        max_wait=0.1,
        commit_interval=60.0,
        ordering="partition",
    ).start()


if __name__ == "__main__":
    main()
