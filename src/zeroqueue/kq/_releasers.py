"""The releasers a Queue runs: one per topic it consumes, moving delayed messages on.

Each is a Queue of its own on the topic's delay tiers, in the topic's releaser
group (shared by every zeroqueue Queue of that topic, whatever its group), so
a delayed message is released once however many services consume the topic.
A topic nobody pushed a delayed message to has no tiers yet: its releaser
looks for them every few seconds (one metadata request) and starts once they
appear.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from zeroqueue._kafka.settings import clipped_client_id
from zeroqueue.delay._releaser import Releaser, releaser_group, tier_gate
from zeroqueue.delay._tiers import tier_topics
from zeroqueue.delay._topics import hop_overhead, tiers_exist, topic_limit
from zeroqueue.engine.holding import HoldBack
from zeroqueue.errors import ZeroQueueError
from zeroqueue.kq.config import KqConf
from zeroqueue.producer.options import PushOptions

__all__ = ["DelayReleasers"]

_log = logging.getLogger("zeroqueue.delay")

# Seconds between looks for a topic's tiers, and before a failed releaser starts again.
_LOOK_EVERY = 2.0
# Concurrent releases per releaser: each only waits for a broker's acknowledgement.
_RELEASERS_PROCESSORS = 256
# The Pusher's default size limit, and the largest librdkafka accepts.
_DEFAULT_MAX_MESSAGE_BYTES = PushOptions.max_message_bytes
_MAX_MESSAGE_BYTES = 1_000_000_000


class _Runnable(Protocol):
    def start(self) -> None: ...
    def stop(self, *, wait: bool = True) -> None: ...
    def assignment(self) -> list[tuple[str, int]]: ...


#: Builds a Queue: ``(conf, handler, hold_back=..., **options)``.
QueueFactory = Callable[..., _Runnable]


class DelayReleasers:
    """Runs a releaser for each of ``conf``'s named topics, on threads, until :meth:`stop`."""

    def __init__(
        self,
        conf: KqConf,
        make_queue: QueueFactory,
        *,
        security: Mapping[str, Any],
        session_timeout: float,
    ) -> None:
        self._conf = conf
        self._make_queue = make_queue
        self._security = dict(security)
        self._session_timeout = session_timeout
        self._topics = [topic for topic in conf.topics if not topic.startswith("^")]
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[str, _Runnable] = {}
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start looking for (and releasing) each topic's delayed messages."""
        for topic in self._topics:
            thread = threading.Thread(
                target=self._release, args=(topic,), name=f"delay-{topic}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout: float) -> None:
        """Stop every releaser (each drains and commits) and wait up to ``timeout``.

        A thread still looking for its topic's tiers (a metadata request that may
        hang on a cluster that went away) is not waited for: it ends on its own.
        """
        self._stopping.set()
        with self._lock:
            running = dict(self._running)
        for queue in running.values():
            queue.stop(wait=False)
        deadline = time.monotonic() + timeout
        for topic, thread in zip(self._topics, self._threads, strict=True):
            if topic in running:
                thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def releasing(self) -> list[str]:
        """Topics whose delayed messages this process releases now (it holds tier partitions)."""
        with self._lock:
            running = dict(self._running)
        return sorted(topic for topic, queue in running.items() if queue.assignment())

    def _release(self, topic: str) -> None:
        while not self._stopping.is_set():
            try:
                if not tiers_exist(self._conf.brokers, topic, self._security):
                    self._stopping.wait(_LOOK_EVERY)
                    continue
                queue = self._queue_for(topic)
                with self._lock:
                    if self._stopping.is_set():
                        return
                    self._running[topic] = queue
                queue.start()
                with self._lock:
                    self._running.pop(topic, None)
            except Exception as exc:  # a bug too: the topic's delays must not stop for good
                _log.error(
                    "releasing delayed messages of %r stopped: %s; again soon",
                    topic,
                    exc,
                    exc_info=not isinstance(exc, ZeroQueueError),
                )
                with self._lock:
                    self._running.pop(topic, None)
                self._stopping.wait(_LOOK_EVERY)

    def _queue_for(self, topic: str) -> _Runnable:
        conf = self._conf.model_copy(
            update={
                "name": f"{self._conf.name or 'zeroqueue'}-delay",
                "group": releaser_group(topic),
                "topic": tier_topics(topic),
                "offset": "first",
                "conns": 1,
                "processors": _RELEASERS_PROCESSORS,
                "force_commit": False,
                "retry": None,
            }
        )
        limit = topic_limit(self._conf.brokers, topic, self._security)
        releaser = Releaser(
            self._conf.brokers,
            PushOptions(
                **self._conf.security_options(),
                # Every message a tier took must pass the client's own size check: one
                # it refused would be retried for ever, holding up the rest.
                max_message_bytes=max(
                    _DEFAULT_MAX_MESSAGE_BYTES,
                    min(limit + hop_overhead(topic), _MAX_MESSAGE_BYTES)
                    if limit is not None
                    else 0,
                ),
                client_id=clipped_client_id(f"{self._conf.name or 'zeroqueue'}-delay"),
                # Each release awaits its own acknowledgement (and so needs its report).
                sync_push=True,
                flush_interval=0.001,
                kafka_config=self._security,
            ),
        )
        releaser.warm_up([topic, *tier_topics(topic)])
        hold_back: HoldBack = tier_gate(topic)
        return _Closing(
            self._make_queue(
                conf,
                releaser,
                hold_back=hold_back,
                delayed_delivery=False,
                handle_signals=False,
                session_timeout=self._session_timeout,
                max_wait=0.1,
                commit_interval=0.5,
                kafka_config=self._security,
            ),
            releaser,
        )


class _Closing:
    """A releaser's Queue that closes the releaser's clients once it stopped."""

    def __init__(self, queue: _Runnable, releaser: Releaser) -> None:
        self._queue = queue
        self._releaser = releaser

    def start(self) -> None:
        try:
            self._queue.start()
        finally:
            self._releaser.close()

    def stop(self, *, wait: bool = True) -> None:
        self._queue.stop(wait=wait)

    def assignment(self) -> list[tuple[str, int]]:
        return self._queue.assignment()
