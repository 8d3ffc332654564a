"""Queue: go-queue's consumer service — parallel, per-key ordered, at-least-once."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any

from zeroqueue import admin
from zeroqueue._checks import check_flag, check_number, check_seconds, check_settings
from zeroqueue._kafka import backends
from zeroqueue._kafka.settings import client_settings, clipped_client_id
from zeroqueue._signals import install_stop_signals
from zeroqueue.delay._gate import DueGate
from zeroqueue.engine.conn import ConnEngine, EngineOptions
from zeroqueue.engine.handlers import (
    ConsumeErrorHandler,
    FailurePolicy,
    FailurePolicyLike,
    Handler,
    MetricsHook,
    resolve_handler,
)
from zeroqueue.engine.holding import HoldBack
from zeroqueue.engine.lanes import Ordering
from zeroqueue.engine.source import KafkaSource, RebalanceListener, Source, SourceFactory
from zeroqueue.errors import ConfigError, ZeroQueueError
from zeroqueue.kq._failures import FailureHooks
from zeroqueue.kq._releasers import DelayReleasers
from zeroqueue.kq.config import KqConf
from zeroqueue.metrics._hub import queue_stats
from zeroqueue.producer.options import PushOptions
from zeroqueue.retry._conf import RetryConf
from zeroqueue.retry._headers import BACKOFF_TIMESTAMP
from zeroqueue.retry._router import RetryRouter
from zeroqueue.tracing import traced_handler

__all__ = ["Queue"]

_log = logging.getLogger("zeroqueue.kq.queue")

# Extra time stop() waits beyond shutdown_timeout: for the abort grace of handlers
# still running, the last commit and leaving the group (see ConnEngine._shutdown).
_STOP_GRACE = 15.0


class Queue:
    """Consume a topic with a handler: go-queue's ``kq.MustNewQueue(conf, handler)``.

    Messages of one key are handled one at a time in offset order, different keys
    in parallel on ``conf.processors`` workers (threads, or tasks for ``async def``
    handlers). An offset is committed only once every message before it in its
    partition has been handled, so a crash never loses a message (at-least-once).

    Args:
        conf: Brokers, Group, Topic, Processors, ... (see :class:`KqConf`).
        handler: ``(key, value)``, ``(message)``, an object with ``consume``, sync or async.
        commit_interval: Seconds between offset commits. Default 1.
        queue_capacity: Messages in flight per conn (fetched, not yet handled);
            when full, fetching pauses. Default 1000 (go-queue's queueCapacity).
        max_wait: Seconds the broker may hold a fetch waiting for MinBytes. Default
            0.2 (go-queue's is 1): on an idle topic a consumer asks again this often,
            and a broker that does not answer a waiting fetch when data arrives
            (the embedded one) delivers that much later.
        session_timeout: Seconds without heartbeat before the group drops a member.
            Default 10.
        error_handler: ``(message, error)``, called for each failed attempt.
        metrics: ``(topic, partition, seconds, error)``, called after each message.
        ordering: ``"key"`` (default) or ``"partition"``.
        unordered_keyless: Handle keyless messages in parallel, without order.
        shutdown_timeout: Seconds :meth:`stop` (and a rebalance) lets in-flight
            messages finish. Default 10.
        stuck_after: Seconds one message may stay with its handler (one call that
            hangs, or retries that do not end) before it is reported: a WARNING on
            ``zeroqueue.engine`` naming topic, partition, offset, key and how long,
            repeated as the time doubles, and the ``zeroqueue_consumer_stuck_seconds``
            metric. Default 60.
        retry_backoff: First pause before retrying a failed message when
            ``ForceCommit`` is false; doubles each time. Default 0.5.
        max_retry_backoff: Longest pause between retries. Default 30.
        connect_timeout: Seconds :meth:`start` waits for a broker to answer, and
            how long a subscribed topic may be missing before it stops. Default 15.
        adaptive: Measure the handler and wake only as many processors as help
            (see README, "Processors and the GIL"). False keeps all Processors
            awake and never runs the handler on the fetch thread. Default True.
        handle_signals: When :meth:`start` runs on the main thread, SIGINT and
            SIGTERM stop the queue (a second one exits at once). False leaves
            signals to the application (a service group, a web server). Default True.
        kafka_config: Extra librdkafka consumer settings, applied last.
        source_factory: Builds each conn's group member from the librdkafka
            settings (:class:`~zeroqueue.engine.source.KafkaSource` by default);
            a seam for an in-memory stand-in in tests.
        failure_policy: Decides what a failed message becomes (retried after a
            pause, or counted handled); by default ForceCommit's, with
            ``error_handler`` and the retry backoff options, or, with a
            ``Retry`` section, retry topics and a dead-letter topic.
        retry: Tries in place, retry topics and a dead-letter topic
            (:class:`~zeroqueue.retry.RetryConf`); overrides ``conf.retry``.
        delayed_delivery: Release the messages pushed with a delay to each
            topic, once due (see README, "Delayed messages"). Default True;
            a topic nobody delays to costs one metadata request every few seconds.
        hold_back: Holds back messages not due yet (the engine's HoldBack): what
            delay tiers and retry topics use. Default: none (or the retry topics').
    """

    def __init__(
        self,
        conf: KqConf,
        handler: Handler,
        *,
        commit_interval: float = 1.0,
        queue_capacity: int = 1000,
        max_wait: float = 0.2,
        session_timeout: float = 10.0,
        error_handler: ConsumeErrorHandler | None = None,
        metrics: MetricsHook | None = None,
        ordering: Ordering = "key",
        unordered_keyless: bool = False,
        shutdown_timeout: float = 10.0,
        stuck_after: float = 60.0,
        retry_backoff: float = 0.5,
        max_retry_backoff: float = 30.0,
        connect_timeout: float = 15.0,
        adaptive: bool = True,
        handle_signals: bool = True,
        kafka_config: Mapping[str, Any] | None = None,
        source_factory: SourceFactory | None = None,
        failure_policy: FailurePolicyLike | None = None,
        retry: RetryConf | None = None,
        delayed_delivery: bool = True,
        hold_back: HoldBack | None = None,
    ) -> None:
        if not isinstance(conf, KqConf):
            raise ConfigError(f"conf: got {type(conf).__name__}; expected a KqConf")
        # The maxima are librdkafka's, or the longest wait Python's threading takes:
        # past them the error would come later, naming something else.
        check_seconds("commit_interval", commit_interval, inclusive=False)
        check_number("queue_capacity", queue_capacity, minimum=1)
        check_number("max_wait", max_wait, minimum=0, maximum=300, limit_of="fetch.wait.max.ms")
        check_number(
            "session_timeout",
            session_timeout,
            minimum=1,
            maximum=3600,
            limit_of="session.timeout.ms",
        )
        check_seconds("shutdown_timeout", shutdown_timeout)
        check_seconds("stuck_after", stuck_after, inclusive=False)
        for flag, value in (
            ("unordered_keyless", unordered_keyless),
            ("adaptive", adaptive),
            ("handle_signals", handle_signals),
            ("delayed_delivery", delayed_delivery),
        ):
            check_flag(flag, value)
        check_settings("kafka_config", kafka_config)
        check_seconds("retry_backoff", retry_backoff)
        check_seconds("max_retry_backoff", max_retry_backoff)
        check_seconds("connect_timeout", connect_timeout, inclusive=False)
        if ordering not in ("key", "partition"):
            raise ConfigError(f"ordering: got {ordering!r}; expected 'key' or 'partition'")
        for name, hook in (("error_handler", error_handler), ("metrics", metrics)):
            if hook is not None and not callable(hook):
                raise ConfigError(f"{name}: got {hook!r}; expected a callable or None")
        self.conf = conf
        self.handler = traced_handler(resolve_handler(handler), conf.group)
        self.connect_timeout = connect_timeout
        self.handle_signals = bool(handle_signals)
        # None while zeroqueue.metrics is off: then nothing is added per message.
        stats = queue_stats(self, conf.group)
        hooks = FailureHooks(error_handler, metrics, None if stats is None else stats.observe)
        self._metrics = hooks.metrics_hook()
        self.retry = retry if retry is not None else conf.retry
        self._router: RetryRouter | None = None
        self._topics = list(conf.topics)
        if self.retry is not None:
            if self.retry.moves_messages and any(t.startswith("^") for t in conf.topics):
                raise ConfigError(
                    f"Retry: got retry or dead-letter topics with Topic={conf.topic!r}; expected"
                    " named topics (a ^regex subscription has no fixed topics to retry from)"
                )
            self._router = RetryRouter(
                self.retry,
                brokers=conf.brokers,
                source_topics=conf.topics,
                group=conf.group,
                force_commit=conf.force_commit,
                report=hooks.report,
                push_options=PushOptions(
                    sync_push=True,
                    **conf.security_options(),
                    client_id=clipped_client_id(f"{conf.name or 'zeroqueue'}-retry"),
                    kafka_config=_security_of(kafka_config),
                ),
            )
            self._topics += self._router.retry_topics
        self._policy: FailurePolicyLike = (
            failure_policy
            or self._router
            or FailurePolicy(
                force_commit=conf.force_commit,
                error_handler=error_handler,
                retry_backoff=retry_backoff,
                max_retry_backoff=max(max_retry_backoff, retry_backoff),
            )
        )
        if stats is not None:
            self._policy = stats.counting(self._policy)
        self._hold_back = hold_back or (
            DueGate(self._router.retry_waits, BACKOFF_TIMESTAMP)
            if self._router is not None and self._router.retry_topics
            else None
        )
        # A memory:// Brokers value (zeroqueue.testing) brings its broker's group members.
        memory = backends.backend_for(conf.brokers) if source_factory is None else None
        self._source_factory: SourceFactory = source_factory or (
            KafkaSource if memory is None else memory.source
        )
        # The cluster's own clients (Kafka's, or a memory broker's): start() waits for
        # the cluster, creates retry topics and releases delayed messages. A source of
        # another kind (a test's stand-in) has no cluster behind it.
        self._own_source = source_factory is None or source_factory is KafkaSource
        self.delayed_delivery = bool(delayed_delivery)
        self._session_timeout = session_timeout
        self._releasers: DelayReleasers | None = None
        self._engine_options = EngineOptions(
            processors=conf.processors,
            capacity=int(queue_capacity),
            commit_interval=commit_interval,
            shutdown_timeout=shutdown_timeout,
            ordering=ordering,
            unordered_keyless=unordered_keyless,
            multi_topic=len(self._topics) > 1 or conf.topics[0].startswith("^"),
            adaptive=bool(adaptive),
            stuck_after=float(stuck_after),
        )
        session_ms = int(session_timeout * 1000)
        self._settings = client_settings(
            conf.brokers, conf.security(), client_id=conf.name or "zeroqueue"
        ) | {
            "group.id": conf.group,
            "auto.offset.reset": "earliest" if conf.offset == "first" else "latest",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": max(100, min(3000, session_ms // 3)),
            "fetch.min.bytes": conf.min_bytes,
            "fetch.max.bytes": conf.max_bytes,
            "fetch.wait.max.ms": int(max_wait * 1000),
            # librdkafka otherwise idles a partition for 1 s whenever its prefetch
            # queue passes its thresholds: measured, a backlog drains ~3x slower.
            "fetch.queue.backoff.ms": 10,
        }
        if kafka_config:
            self._settings |= dict(kafka_config)
        if stats is not None and self._source_factory is KafkaSource:
            # Where scrapes ask for watermarks (a stand-in source has no cluster).
            stats.connect(tuple(conf.brokers), _security_of(self._settings))
        self._engines: list[ConnEngine] = []
        self._lock = threading.Lock()
        self._state = "new"
        self._stopped_before_start = False
        self._finished = threading.Event()
        self._runner_thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Consume until :meth:`stop` (or SIGINT/SIGTERM when run on the main thread).

        Raises:
            BrokerUnavailableError: no broker answered within ``connect_timeout``.
            ConsumeError: a processor failed outside the handler (a bug); the queue
                stopped, leaving what that processor held uncommitted.
        """
        with self._lock:
            if self._stopped_before_start:
                # stop() came first (a `with queue.running(): pass` block, a signal):
                # there is nothing to run, now or later.
                self._state = "stopped"
                self._finished.set()
                return
            if self._state != "new":
                raise RuntimeError(f"Queue.start() called on a queue that is {self._state}")
            self._state = "starting"
            self._runner_thread = threading.current_thread()
        try:
            if self._own_source:
                # A stand-in source of a test has no cluster to wait for.
                admin.wait_for_metadata(
                    self.conf.brokers,
                    timeout=self.connect_timeout,
                    kafka_config=self._security_only(),
                    cancelled=self._stop_requested,
                )
                if self._stop_requested():
                    return  # stop() came while waiting for the cluster
                self._create_retry_topics()
                if self.delayed_delivery:
                    self._releasers = DelayReleasers(
                        self.conf,
                        Queue,
                        security=self._security_only(),
                        session_timeout=self._session_timeout,
                    )
                    self._releasers.start()
            self._run()
        finally:
            if self._releasers is not None:
                self._releasers.stop(self._engine_options.shutdown_timeout + _STOP_GRACE)
            if self._router is not None:
                self._router.close()
            with self._lock:
                self._state = "stopped"
            self._finished.set()

    def _run(self) -> None:
        name = self.conf.name or "zeroqueue"
        with self._lock:
            if self._state == "stopping":
                return
            self._engines = [
                ConnEngine(
                    self._make_source,
                    self.handler,
                    self._policy,
                    self._engine_options,
                    name=f"{name}-conn-{index}" if self.conf.conns > 1 else name,
                    metrics=self._metrics,
                    hold_back=self._hold_back,
                )
                for index in range(self.conf.conns)
            ]
            self._state = "running"
        errors: list[BaseException] = []
        # Daemon threads: a second SIGINT ends the process without waiting for them.
        threads = [
            threading.Thread(
                target=self._run_engine, args=(engine, errors), name=engine.name, daemon=True
            )
            for engine in self._engines
        ]
        restore = self._handle_signals()
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                # join() in slices so the main thread stays responsive to signals.
                while thread.is_alive():
                    thread.join(0.2)
        finally:
            restore()
        if errors:
            raise errors[0]

    def _run_engine(self, engine: ConnEngine, errors: list[BaseException]) -> None:
        try:
            engine.run()
        except BaseException as exc:
            if isinstance(exc, ZeroQueueError):
                # start() raises it, with its cause: no need for a traceback here.
                _log.error("%s stopped: %s", engine.name, exc)
            else:
                _log.exception("%s stopped on an error", engine.name)
            errors.append(exc)
            self.stop(wait=False)

    def _make_source(self, listener: RebalanceListener) -> Source:
        # Retry topics start at their beginning where the group committed nothing, and
        # so do delay tiers (a releaser's Topic): a message moved there is never skipped.
        from_start = set(self._router.retry_topics if self._router is not None else ())
        if isinstance(self._hold_back, DueGate):
            from_start |= self._hold_back.topics
        if not from_start:
            return self._source_factory(
                dict(self._settings),
                self._topics,
                listener,
                missing_topic_timeout=self.connect_timeout,
            )
        return self._source_factory(
            dict(self._settings),
            self._topics,
            listener,
            missing_topic_timeout=self.connect_timeout,
            from_start=from_start,
        )

    def _create_retry_topics(self) -> None:
        """Create the retry and dead-letter topics that do not exist yet."""
        router, retry = self._router, self.retry
        if router is None or retry is None or not retry.moves_messages:
            return
        security = self._security_only()
        wanted = [*router.retry_topics]
        if retry.dead_letter_topic:
            wanted.append(retry.dead_letter_topic)
        # Only the missing ones: a service allowed to read and write its topics, not to
        # create them, starts when they exist.
        existing = admin.existing_topics(self.conf.brokers, wanted, kafka_config=security)
        wanted = [topic for topic in wanted if topic not in existing]
        if not wanted:
            return
        partitions = retry.retry_topic_partitions or max(
            admin.partition_count(self.conf.brokers, topic, kafka_config=security)
            for topic in self.conf.topics
        )
        # As many replicas as the topic they come from: a retried message is as safe.
        replicas = max(
            admin.replication_factor(self.conf.brokers, topic, kafka_config=security)
            for topic in self.conf.topics
        )
        admin.create_topics(
            self.conf.brokers,
            wanted,
            partitions=partitions,
            replication_factor=replicas,
            # Room for the headers a move adds to the largest message the source takes.
            config=router.retry_topic_config(),
            kafka_config=security,
        )

    def _stop_requested(self) -> bool:
        return self._state == "stopping"

    def _security_only(self) -> dict[str, Any]:
        return _security_of(self._settings)

    def stop(self, *, wait: bool = True) -> None:
        """Stop fetching, let in-flight messages finish, commit and leave the group.

        Safe from any thread. With ``wait`` (the default) it returns once the queue
        has stopped, unless called from the thread running :meth:`start`.
        """
        with self._lock:
            if self._state == "new":
                self._stopped_before_start = True
                return
            if self._state == "stopped":
                return
            if self._state != "stopping":
                self._state = "stopping"
            engines = list(self._engines)
        for engine in engines:
            engine.stop()
        here = threading.current_thread()
        # Not from start()'s own thread, nor from a handler or hook the queue runs: the
        # queue would wait for the very call that waits for it.
        own = here is self._runner_thread or any(engine.owns(here) for engine in engines)
        if wait and not own:
            bound = self._engine_options.shutdown_timeout + _STOP_GRACE
            if not self._finished.wait(bound):
                _log.warning(
                    "%r: not stopped %.0fs after stop(): committing or leaving the group is"
                    " stuck (is the cluster reachable?); it goes on in the background",
                    self,
                    bound,
                )

    def _handle_signals(self) -> Callable[[], None]:
        """On the main thread, SIGINT/SIGTERM stop the queue (see zeroqueue._signals)."""
        if not self.handle_signals:
            return lambda: None
        return install_stop_signals(lambda: self.stop(wait=False), "the queue", _log)

    @contextlib.contextmanager
    def running(self) -> Iterator[Queue]:
        """Run :meth:`start` on a background thread for the ``with`` block.

        On exit the queue stops (drains, commits, leaves the group) and whatever
        :meth:`start` raised, such as BrokerUnavailableError, is raised here.
        """
        errors: list[BaseException] = []

        def run() -> None:
            try:
                self.start()
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=run, name=f"{self.conf.name or 'zeroqueue'}-queue")
        thread.start()
        try:
            yield self
        finally:
            self.stop()
            thread.join(self._engine_options.shutdown_timeout + _STOP_GRACE)
        if thread.is_alive():
            raise RuntimeError(f"{self!r} did not stop within its shutdown timeout")
        if errors:
            raise errors[0]

    def assignment(self) -> list[tuple[str, int]]:
        """The ``(topic, partition)`` pairs this queue's conns own right now."""
        return sorted(key for engine in self._engines for key in engine.assignment)

    @property
    def releasing(self) -> list[str]:
        """Topics whose delayed messages this queue releases now (it holds tier partitions)."""
        return self._releasers.releasing if self._releasers is not None else []

    @property
    def engines(self) -> list[ConnEngine]:
        """The conn engines (one per ``Conns``) while running."""
        return list(self._engines)

    def __enter__(self) -> Queue:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Queue group={self.conf.group!r} topic={self.conf.topic!r} {self._state}>"


def _security_of(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The librdkafka settings of ``settings`` that say how to reach the cluster securely."""
    keys = ("security.protocol", "sasl.", "ssl.", "enable.ssl", "oauth_cb")
    return {k: v for k, v in (settings or {}).items() if k.startswith(keys)}
