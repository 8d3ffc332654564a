"""A handler that hangs: reported, its key held, every other key flowing, stop() bounded.

The hang is tried where it is hardest: on the fetch thread (a quick handler runs
there, see the governor), where the call cannot be moved and a new fetch thread
must take over; and on a worker, while the governor allows one processor.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from tests.kafka_helpers import eventually, fast_queue_options
from zeroqueue import KqConf, Message, Pusher, Queue, metrics
from zeroqueue.embedded import BrokerProcess

KEYS = 40
STUCK_AFTER = 2.0
SHUTDOWN_TIMEOUT = 2.0
# Queue.stop() returns within shutdown_timeout plus this grace (README, "Lifecycle").
STOP_GRACE = 2.0


@dataclass(frozen=True)
class Case:
    """Where the hang happens, and the registry metrics go to (None: metrics off)."""

    where: str
    registry: CollectorRegistry | None


@pytest.fixture(
    params=[("fetch-thread", False), ("fetch-thread", True), ("worker", True)],
    ids=["fetch-thread", "fetch-thread-metrics", "worker-metrics"],
)
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    where, with_metrics = request.param
    if not with_metrics:
        yield Case(where, None)
        return
    registry = CollectorRegistry()
    metrics.enable(registry=registry, offsets_cache=0.1)
    try:
        yield Case(where, registry)
    finally:
        metrics.disable()


def busy(seconds: float) -> None:
    """Compute for ``seconds``: a quick CPU-bound handler the governor runs inline."""
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


class Recorder:
    """Records ``key value`` messages; the one with key ``stuck`` hangs until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.values: dict[str, list[int]] = defaultdict(list)
        self.stuck_on: str | None = None
        self.stuck_seen = threading.Event()

    def handle(self, key: str, value: str) -> None:
        if key == "stuck":
            self.stuck_on = threading.current_thread().name
            self.stuck_seen.set()
            self.release.wait()
        else:
            busy(0.00002)
        with self.lock:
            self.values[key].append(int(value))

    def handle_message(self, message: Message) -> None:
        self.handle(message.key_str, message.value_str)

    def handled(self) -> set[int]:
        with self.lock:
            return {value for values in self.values.values() for value in values}


def push(brokers: list[str], topic: str, start: int, count: int) -> None:
    with Pusher(brokers, topic) as pusher:
        for i in range(start, start + count):
            pusher.push_with_key(f"k{i % KEYS}", str(i))


def test_a_hanging_handler_holds_its_lane_only_and_is_reported(
    kafka: BrokerProcess,
    new_topic: Callable[[int], str],
    group: str,
    caplog: pytest.LogCaptureFixture,
    case: Case,
) -> None:
    where, registry = case.where, case.registry
    brokers = [kafka.bootstrap_servers]
    topic = new_topic(4)
    recorder = Recorder()
    caplog.set_level(logging.INFO, logger="zeroqueue.engine")
    conf = KqConf(Brokers=brokers, Group=group, Topic=topic, Offset="first", Processors=4)
    # With metrics on, a Queue leaves its (key, value) hot path: both are tried.
    queue = Queue(
        conf,
        recorder.handle_message if registry is not None else recorder.handle,
        stuck_after=STUCK_AFTER,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        adaptive=where == "fetch-thread",
        **fast_queue_options(),
    )
    warm_up, behind = 3000, 2000
    push(brokers, topic, 0, warm_up)
    stopped_in = 0.0
    with queue.running():
        assert eventually(lambda: len(recorder.handled()) == warm_up)
        engine = queue.engines[0]
        if where == "fetch-thread":
            # given the governor has measured the handler quick: the fetch thread runs it
            governor = engine.governor
            assert governor is not None
            assert eventually(lambda: governor.inline)
            # ...and probes it no more: the run window it is in might otherwise end
            # before the stuck message arrives (a slow moment on a loaded machine), and
            # the next probe would hand that message to a worker
            governor.run_seconds = 3600.0
            assert eventually(lambda: governor.inline)
        # when one message hangs, with 2,000 messages of 40 other keys behind it
        with Pusher(brokers, topic) as pusher:
            pusher.push_with_key("stuck", "-1")
        assert recorder.stuck_seen.wait(30)
        push(brokers, topic, warm_up, behind)
        # then it hangs where this case means it to
        assert recorder.stuck_on is not None
        assert ("-fetch-" in recorder.stuck_on) == (where == "fetch-thread")
        # ...every key outside its lane flows, and the keys sharing it wait
        router = engine._router
        stuck_lane = router.lane_of_key(b"stuck")
        held = {
            i
            for i in range(warm_up, warm_up + behind)
            if router.lane_of_key(f"k{i % KEYS}".encode()) == stuck_lane
        }
        flowing = set(range(warm_up + behind)) - held
        assert eventually(lambda: recorder.handled() >= flowing)
        assert not recorder.handled() & held

        # ...and the stuck message is reported by topic, partition, offset and time
        def reports() -> list[str]:
            messages = (record.getMessage() for record in caplog.records)
            return [message for message in messages if "a handler has held" in message]

        assert eventually(lambda: bool(reports()))
        report = reports()[0]
        assert f"{topic}[" in report
        assert "b'stuck'" in report
        if registry is not None:
            labels = {"group": group, "topic": topic}
            seconds = [
                sample
                for family in registry.collect()
                if family.name == "zeroqueue_consumer_stuck_seconds"
                for sample in family.samples
                if {k: sample.labels[k] for k in labels} == labels
            ]
            assert len(seconds) == 1
            assert seconds[0].value >= STUCK_AFTER
            partition = seconds[0].labels["partition"]
            offset = registry.get_sample_value(
                "zeroqueue_consumer_stuck_offset", labels | {"partition": partition}
            )
            assert offset is not None
            assert f"{topic}[{partition}]@{int(offset)}" in report
        # when the queue stops while the call still hangs
        started = time.monotonic()
        queue.stop()
        stopped_in = time.monotonic() - started
    # then stop() kept its bound and start() returned (running() raises otherwise)
    assert stopped_in <= SHUTDOWN_TIMEOUT + STOP_GRACE + 1.0
    handled_before = {key: list(values) for key, values in recorder.values.items()}
    recorder.release.set()

    # and nothing is lost: the stuck message was not committed past, so a new member
    # of the group gets it and the messages its lane held, each key in order
    second = Recorder()
    second.release.set()
    with Queue(conf, second.handle, **fast_queue_options()).running():
        assert eventually(lambda: -1 in second.handled())
        assert eventually(lambda: second.handled() >= held)
    for values in (*handled_before.values(), *second.values.values()):
        assert values == sorted(values)
