"""A consumer process for the fault scenarios: logs each message it handled to a file.

Usage: python -m tests.faults.consumer_process BROKERS TOPIC GROUP LOG [options]

Each handled message appends one line ``partition offset key value monotonic_ns``
to LOG with a single ``write(2)`` on an ``O_APPEND`` descriptor, after the
handler's work and before it returns (so before its offset can be committed). A
file, not a pipe: what a SIGKILLed process wrote survives it, and the test reads
it without ever blocking. Just before the Queue starts, the process writes its
resident memory (``VmRSS``, KiB) to ``LOG.ready``: from then on SIGTERM stops it
cleanly (exit status 0), even before the Queue installs its own signal handlers.

``--fail-every N`` makes the handler raise on the first attempt, in this process,
at about one message in N (chosen by ``--fail-seed``), with ``ForceCommit: false``:
a correct build retries it in place and logs it once it succeeds.

``ZEROQUEUE_FAULT_BREAK`` breaks zeroqueue on purpose, to show the suite catches it:
``commit-early`` commits what was fetched before it is handled; ``skip-failed``
counts a failed message as handled instead of retrying it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from tests.kafka_helpers import SHORT_SESSION_TIMEOUT
from zeroqueue import KqConf, Message, Queue
from zeroqueue.engine import handlers, offsets

BREAKS = ("commit-early", "skip-failed")


def rss_kib(pid: int | str = "self", field: str = "VmRSS") -> int:
    """A memory figure of process ``pid`` from /proc (KiB): VmRSS, or VmHWM for the peak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(f"/proc/{pid}/status has no {field}")


def break_zeroqueue(how: str) -> None:
    """Patch zeroqueue's internals so that it breaks a promise (``ZEROQUEUE_FAULT_BREAK``)."""
    if how == "commit-early":
        # Commit past every fetched message, handled or not.
        def commit_due(self: offsets.PartitionProgress) -> int | None:
            chunks = self._chunks
            offset = chunks[-1].last_offset + 1 if chunks else self.advance()
            return None if offset is None or offset == self.committed else offset

        offsets.PartitionProgress.commit_due = commit_due  # type: ignore[method-assign]
    elif how == "skip-failed":
        # Report the failure, then count the message as handled: no retry.
        failed = handlers.FailurePolicy.failed

        def skip(self: handlers.FailurePolicy, message: Message, error: Any, attempt: int) -> None:
            failed(self, message, error, attempt)

        handlers.FailurePolicy.failed = skip  # type: ignore[method-assign]
    elif how:
        raise SystemExit(f"ZEROQUEUE_FAULT_BREAK: got {how!r}; expected one of {BREAKS}")


def main() -> None:
    queue: Queue | None = None
    stop_asked = False

    def on_sigterm(signum: int, frame: object) -> None:
        # Before start() installs the Queue's handlers (which then run this one after
        # theirs): stop() before start() makes start() return at once.
        nonlocal stop_asked
        stop_asked = True
        if queue is not None:
            queue.stop(wait=False)

    signal.signal(signal.SIGTERM, on_sigterm)
    parser = argparse.ArgumentParser()
    parser.add_argument("brokers")
    parser.add_argument("topic")
    parser.add_argument("group")
    parser.add_argument("log", type=Path)
    parser.add_argument("--handle-seconds", type=float, default=0.0, help="sleep per message")
    parser.add_argument("--slow-first", type=int, default=-1, help="sleep only this many times")
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument("--fail-seed", type=int, default=0)
    parser.add_argument("--queue-capacity", type=int, default=200)
    args = parser.parse_args()
    break_zeroqueue(os.environ.get("ZEROQUEUE_FAULT_BREAK", ""))
    # To stderr, which the scenario keeps in a file beside the log: assignments,
    # revokes and commits, for a post-mortem.
    # ZEROQUEUE_FAULT_DEBUG=cgrp,fetch adds librdkafka's debug lines of those contexts.
    debug = os.environ.get("ZEROQUEUE_FAULT_DEBUG", "")
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s",
    )

    log = os.open(args.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    pause, slow_left, fail_every = args.handle_seconds, args.slow_first, args.fail_every
    failed_once: set[int] = set()
    lock = threading.Lock()

    def handle(message: Message) -> None:
        nonlocal slow_left
        value = message.value_str
        if fail_every:
            number = int(value)
            if (number * 2654435761 + args.fail_seed) % fail_every == 0:
                with lock:
                    first = number not in failed_once
                    failed_once.add(number)
                if first:
                    raise RuntimeError(f"failing {value} once, on purpose")
        if pause:
            if slow_left < 0:
                time.sleep(pause)
            elif slow_left > 0:
                slow_left -= 1  # racy across threads: "about" this many is enough
                time.sleep(pause)
        line = (
            f"{message.partition} {message.offset} {message.key_str} {value}"
            f" {time.monotonic_ns()}\n"
        )
        os.write(log, line.encode())

    conf = KqConf(
        Brokers=args.brokers.split(","),
        Group=args.group,
        Topic=args.topic,
        Offset="first",
        Processors=8,
        ForceCommit=False,
    )
    queue = Queue(
        conf,
        handle,
        session_timeout=SHORT_SESSION_TIMEOUT,
        max_wait=0.1,
        commit_interval=0.2,
        queue_capacity=args.queue_capacity,
        retry_backoff=0.01,
        max_retry_backoff=0.05,
        # Failures are expected here: keep them off stderr.
        error_handler=lambda message, error: None,
        kafka_config={"debug": debug} if debug else None,
    )
    if stop_asked:
        queue.stop(wait=False)
    Path(f"{args.log}.ready").write_text(f"{rss_kib()}\n")
    queue.start()


if __name__ == "__main__":
    main()
