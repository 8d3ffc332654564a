"""The delay queue's consumer service: go-queue's ``dq.Consumer``, handling each job once."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType

from zeroqueue._checks import check_number, check_seconds
from zeroqueue._signals import install_stop_signals
from zeroqueue.dq._beanstalk import BeanstalkConnection
from zeroqueue.dq._conf import Beanstalk, DqConf
from zeroqueue.dq._handling import HandlingOptions, JobHandling
from zeroqueue.dq._job import DqHandler, Job, JobRunner
from zeroqueue.dq._ledger import Ledger
from zeroqueue.errors import ConfigError, DelayQueueError, ServerUnavailableError

__all__ = ["Consumer", "DqErrorHandler"]

_log = logging.getLogger("zeroqueue.dq")

#: ``error_handler(job, error, outcome)``: called for each failed handling, with what
#: became of the job: ``"retrying"``, ``"buried"`` or ``"handled-elsewhere"``.
DqErrorHandler = Callable[[Job, BaseException, str], object]

# Seconds a reserve waits for a job: how soon an idle worker notices stop().
_RESERVE_TIMEOUT = 1
# How often the keeper renews the claims and time-to-run of jobs being handled.
_KEEP_EVERY = 1.0
_RECONNECT_AFTER = 1.0


class Consumer:
    """Reads delayed jobs from every node and handles each once, when it is due.

    A service: :meth:`start` blocks until :meth:`stop` (or SIGINT/SIGTERM on the
    main thread), so it joins a :class:`~zeroqueue.service.ServiceGroup`. Each
    node gets ``processors`` workers, each reserving jobs on a connection of its
    own; an ``async def`` handler runs on an event loop the consumer owns.

    A job counts as handled once its handler returned; then its record in Redis
    says so and every copy is deleted. A handler that raised has the job
    released, to try again after ``retry_delay`` (doubling up to
    ``max_retry_delay``), until it failed ``max_failures`` times: then one copy
    is buried and listed with the error (:func:`zeroqueue.dq.buried`), the
    others deleted. A consumer that crashed leaves its claims to expire after
    ``lease`` seconds, and its reserved jobs return to beanstalkd after their
    time-to-run: nothing is lost, and a job may run twice only then.

    Args:
        conf: The nodes and the Redis (required: it keeps copies from running twice).
        handler: ``(body)`` or ``(body, job)``, sync or ``async def``.
        processors: Workers per node. Default 4.
        max_failures: Failed handlings before a job is buried. Default 5.
        retry_delay: Seconds before the first retry of a failed job. Default 1.
        max_retry_delay: The longest wait between retries. Default 60.
        lease: Seconds a claim outlives a crashed consumer. Default 10.
        window: Seconds a handled job's record is kept: a copy that turns up
            later (a node that was down that long) runs again. Default 3600,
            go-queue's.
        shutdown_timeout: Seconds :meth:`stop` waits for running handlers. Default 10.
        error_handler: ``(job, error, outcome)``, called for each failed handling.
        name: Names the threads and log lines.
        handle_signals: On the main thread, SIGINT/SIGTERM stop the consumer.
    """

    def __init__(
        self,
        conf: DqConf,
        handler: DqHandler,
        *,
        processors: int = 4,
        max_failures: int = 5,
        retry_delay: float = 1.0,
        max_retry_delay: float = 60.0,
        lease: float = 10.0,
        window: float = 3600.0,
        shutdown_timeout: float = 10.0,
        error_handler: DqErrorHandler | None = None,
        name: str = "dq",
        handle_signals: bool = True,
    ) -> None:
        if not isinstance(conf, DqConf):
            raise ConfigError(f"conf: got {type(conf).__name__}; expected a DqConf")
        if conf.redis is None:
            raise ConfigError(
                "Redis: missing; expected Host (and Type, Pass) of the Redis that keeps a job"
                " from running once per node holding a copy"
            )
        check_number("processors", processors, minimum=1, maximum=256)
        check_number("max_failures", max_failures, minimum=1)
        check_seconds("retry_delay", retry_delay)
        check_seconds("max_retry_delay", max_retry_delay)
        check_number("lease", lease, minimum=2 * _KEEP_EVERY)
        check_number("window", window, minimum=1)
        check_seconds("shutdown_timeout", shutdown_timeout)
        if max_retry_delay < retry_delay:
            raise ConfigError(
                f"max_retry_delay: got {max_retry_delay}; expected >= retry_delay ({retry_delay})"
            )
        self.conf = conf
        self.name = name
        self.processors = int(processors)
        self.shutdown_timeout = shutdown_timeout
        self.handle_signals = handle_signals
        self._options = HandlingOptions(
            max_failures=int(max_failures),
            retry_delay=retry_delay,
            max_retry_delay=max_retry_delay,
            lease=lease,
            window=window,
        )
        self._runner = JobRunner(handler, name)
        self._error_handler = error_handler
        self._redis = conf.redis
        self._stopping = threading.Event()
        self._finished = threading.Event()
        self._lock = threading.Lock()
        self._state = "new"
        self._handlings: list[JobHandling] = []
        self._connections: list[BeanstalkConnection] = []
        self._ledger: Ledger | None = None
        self._runner_thread: threading.Thread | None = None
        self._workers: list[threading.Thread] = []

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Handle jobs until :meth:`stop`.

        Raises:
            ServerUnavailableError: Redis, or every node, did not answer at start.
        """
        with self._lock:
            if self._state == "stopped":
                return  # stop() came first
            if self._state != "new":
                raise RuntimeError(f"Consumer.start() called on a consumer that is {self._state}")
            self._state = "running"
            self._runner_thread = threading.current_thread()
        try:
            self._run()
        finally:
            with self._lock:
                self._state = "stopped"
            self._finished.set()

    def stop(self, *, wait: bool = True) -> None:
        """Take no new job, let running handlers finish, and close the connections.

        Jobs reserved but not handled go back to their nodes, ready for the next
        consumer. With ``wait``, returns once stopped (not from a handler).
        """
        with self._lock:
            if self._state == "new":
                self._state = "stopped"
                self._finished.set()
            here = threading.current_thread()
            # Not from start()'s thread or a handler: they would wait for themselves.
            own = here is self._runner_thread or here in self._workers
        self._stopping.set()
        if wait and not own:
            self._finished.wait(self.shutdown_timeout + 5.0)

    @contextlib.contextmanager
    def running(self) -> Iterator[Consumer]:
        """Run :meth:`start` on a background thread for the ``with`` block."""
        errors: list[BaseException] = []

        def run() -> None:
            try:
                self.start()
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=run, name=f"{self.name}-main")
        thread.start()
        try:
            yield self
        finally:
            self.stop()
            thread.join(self.shutdown_timeout + 5.0)
        if errors:
            raise errors[0]

    def __enter__(self) -> Consumer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        nodes = [node.endpoint for node in self.conf.beanstalks]
        return f"<dq.Consumer {self.name!r} {nodes} {self._state}>"

    # -- running --------------------------------------------------------------------

    def _run(self) -> None:
        assert self._redis is not None
        ledger = self._ledger = Ledger(self._redis)
        try:
            self._check_servers(ledger)
            self._runner.start()
            workers = [
                threading.Thread(
                    target=self._work,
                    args=(node, ledger),
                    name=f"{self.name}-{node.endpoint}-{index}",
                    daemon=True,
                )
                for node in self.conf.beanstalks
                for index in range(self.processors)
            ]
            with self._lock:
                self._workers = workers
            keeper = threading.Thread(
                target=self._keep, args=(ledger,), name=f"{self.name}-keeper", daemon=True
            )
            restore = install_stop_signals(lambda: self.stop(wait=False), "the consumer", _log)
            try:
                for thread in [*workers, keeper]:
                    thread.start()
                while not self._stopping.wait(0.2):
                    pass
            finally:
                restore()
            deadline = time.monotonic() + self.shutdown_timeout + _RESERVE_TIMEOUT
            for thread in workers:
                thread.join(max(0.0, deadline - time.monotonic()))
            busy = [thread.name for thread in workers if thread.is_alive()]
            if busy:
                _log.warning(
                    "%s: handlers still running %.0fs after stop(): %s; their jobs return to"
                    " beanstalkd when their time-to-run ends",
                    self.name,
                    self.shutdown_timeout,
                    busy,
                )
            keeper.join(_KEEP_EVERY * 2)
        finally:
            self._runner.stop()
            for connection in list(self._connections):
                connection.close()
            ledger.close()

    def _check_servers(self, ledger: Ledger) -> None:
        try:
            ledger.state("zeroqueue:dq:ping")
        except DelayQueueError as exc:
            raise ServerUnavailableError(
                f"Redis: {exc}; expected Redis.Host to name a reachable Redis",
                endpoint=self._redis.host if self._redis else "",
            ) from exc
        down = []
        for node in self.conf.beanstalks:
            probe = BeanstalkConnection(node)
            try:
                probe.buried_count()
            except DelayQueueError as exc:
                down.append(str(exc))
            finally:
                probe.close()
        if len(down) == len(self.conf.beanstalks):
            raise ServerUnavailableError(
                "no node of Beanstalks answered: " + "; ".join(down),
                endpoint=self.conf.beanstalks[0].endpoint,
            )
        for problem in down:
            _log.warning("%s: %s; its jobs wait until it is back", self.name, problem)

    def _work(self, node: Beanstalk, ledger: Ledger) -> None:
        connection = BeanstalkConnection(node)
        handling = JobHandling(
            connection,
            ledger,
            self._runner,
            self._options,
            stopping=self._stopping,
            on_failure=self._on_failure,
        )
        with self._lock:
            self._connections.append(connection)
            self._handlings.append(handling)
        down_since: float | None = None
        try:
            while not self._stopping.is_set():
                try:
                    reserved = connection.reserve(_RESERVE_TIMEOUT)
                    if reserved is not None:
                        handling(reserved)
                    if down_since is not None:
                        _log.info("%s: %s is back", self.name, connection.name)
                        down_since = None
                except ServerUnavailableError as exc:
                    if down_since is None:
                        down_since = time.monotonic()
                        _log.error("%s: %s; retrying", self.name, exc)
                    self._stopping.wait(_RECONNECT_AFTER)
                except DelayQueueError as exc:
                    _log.error("%s: %s", self.name, exc)
                    self._stopping.wait(_RECONNECT_AFTER)
        finally:
            # Reserved jobs not handled return to the node when the connection closes.
            connection.close()

    def _keep(self, ledger: Ledger) -> None:
        """Renew the claim and time-to-run of each job whose handler runs."""
        while not self._finished.wait(_KEEP_EVERY):
            for handling in list(self._handlings):
                for job in list(handling.in_flight.values()):
                    try:
                        job.connection.touch(job.job_id)
                        if not ledger.renew(job.key, job.token, job.failures, self._options.lease):
                            _log.warning(
                                "%s: the claim on job %s/%d ran out while it was handled",
                                self.name,
                                job.connection.name,
                                job.job_id,
                            )
                    except DelayQueueError as exc:
                        _log.warning("%s: could not renew job %d: %s", self.name, job.job_id, exc)
            if self._stopping.is_set() and not any(h.in_flight for h in self._handlings):
                return

    def _on_failure(self, job: Job, error: BaseException, outcome: str) -> None:
        if self._error_handler is None:
            return
        try:
            self._error_handler(job, error, outcome)
        except BaseException:
            # Not even SystemExit may end the worker thread that called it.
            _log.exception("%s: error_handler raised", self.name)
