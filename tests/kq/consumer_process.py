"""A consumer process for the crash tests: prints ``partition offset key value`` per message.

Usage: python -m tests.kq.consumer_process BROKER TOPIC GROUP HANDLE_SECONDS
"""

from __future__ import annotations

import sys
import threading
import time

from tests.kafka_helpers import SHORT_SESSION_TIMEOUT
from zeroqueue import KqConf, Message, Queue


def main() -> None:
    broker, topic, group, handle_seconds = sys.argv[1:5]
    pause = float(handle_seconds)
    lock = threading.Lock()
    out = sys.stdout

    def handle(message: Message) -> None:
        time.sleep(pause)
        line = f"{message.partition} {message.offset} {message.key_str} {message.value_str}\n"
        with lock:
            out.write(line)
            out.flush()

    conf = KqConf(Brokers=[broker], Group=group, Topic=topic, Offset="first", Processors=8)
    Queue(
        conf,
        handle,
        session_timeout=SHORT_SESSION_TIMEOUT,
        max_wait=0.1,
        commit_interval=0.2,
        queue_capacity=200,
    ).start()


if __name__ == "__main__":
    main()
