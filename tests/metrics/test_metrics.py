"""zeroqueue.metrics: turned on, scraped over HTTP, counting what happened; lag rises and falls."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from tests.kafka_helpers import eventually, fast_queue_options, running
from zeroqueue import ConfigError, KqConf, Message, Pusher, Queue, metrics
from zeroqueue.conf import PrometheusConf, ServiceConf
from zeroqueue.engine.handlers import FailurePolicy
from zeroqueue.metrics._collector import ZeroQueueCollector
from zeroqueue.metrics._hub import Hub
from zeroqueue.retry import RetryConf
from zeroqueue.service import ServiceGroup

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def served() -> Iterator[metrics.MetricsServer]:
    """Metrics on, in a registry of this test's own, served on a free port."""
    registry = CollectorRegistry()
    metrics.enable(registry=registry, statistics_interval=0.2, offsets_cache=0.1)
    try:
        yield metrics.serve(host="127.0.0.1", port=0, registry=registry)
    finally:
        metrics.disable()


def scrape(url: str) -> Samples:
    """Every sample the endpoint shows, by name and labels."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(url: str, name: str, **labels: str) -> float | None:
    """One sample's value, or None when the endpoint does not show it."""
    return scrape(url).get((name, frozenset(labels.items())))


def kq(brokers: list[str], topic: str, group: str, **fields: object) -> KqConf:
    return KqConf(Brokers=brokers, Group=group, Topic=topic, Offset="first", **fields)


# -- turning them on and off -----------------------------------------------------------


def test_zeroqueue_imports_without_prometheus_client_and_says_how_to_get_it() -> None:
    # given a Python where prometheus_client cannot be imported
    script = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "import zeroqueue\n"
        "from zeroqueue import metrics\n"
        "try:\n"
        "    metrics.serve(host='127.0.0.1', port=0)\n"
        "except zeroqueue.ConfigError as exc:\n"
        "    print(exc)\n"
    )
    # when metrics are turned on there
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    # then zeroqueue imported fine, and the error says what to install
    assert "pip install 'zeroqueue[metrics]'" in result.stdout


def test_while_off_a_queue_and_a_pusher_get_nothing_per_message() -> None:
    # given metrics off
    assert not metrics.enabled()
    # when a Queue and a Pusher are built
    queue = Queue(kq(["127.0.0.1:1"], "t", "g"), lambda key, value: None)
    with Pusher(["127.0.0.1:1"], "t") as pusher:
        # then the Queue has no metrics hook (its handler keeps the fast path) and its
        # failure policy is the plain one; the producer asks for no statistics
        assert queue._metrics is None
        assert type(queue._policy) is FailurePolicy
        assert pusher._core._stats is None


def test_serve_refuses_a_missing_host_and_a_path_without_slash() -> None:
    with pytest.raises(ConfigError, match=r"Prometheus\.Host"):
        metrics.serve(PrometheusConf())
    with pytest.raises(ConfigError, match=r"Prometheus\.Path: got 'metrics'"):
        metrics.serve(host="127.0.0.1", port=0, path="metrics")
    assert not metrics.enabled()


def test_metrics_are_served_at_their_path_only(served: metrics.MetricsServer) -> None:
    # when another path is asked for
    other = served.url.replace("/metrics", "/other")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(other, timeout=10)
    # then it is not found, and the metrics path answers with zeroqueue's families
    assert refused.value.code == 404
    refused.value.close()
    with urllib.request.urlopen(served.url, timeout=10) as response:
        assert b"# TYPE zeroqueue_consumer_lag_messages gauge" in response.read()


def test_a_service_group_given_a_service_conf_serves_metrics_while_it_runs() -> None:
    # given a ServiceConf whose Prometheus section has a Host (port 0: a free one)
    conf = ServiceConf(Prometheus=PrometheusConf(Host="127.0.0.1", Port=0, Path="/m"))
    try:
        group = ServiceGroup(conf=conf, handle_signals=False)
        assert metrics.enabled()
        server = group.metrics_server
        assert server is not None
        assert server.url.endswith("/m")

        class Idle:
            def __init__(self) -> None:
                self.stopped = threading.Event()

            def start(self) -> None:
                self.stopped.wait()

            def stop(self) -> None:
                self.stopped.set()

        group.add(Idle())
        runner = threading.Thread(target=group.start)
        runner.start()
        # then it is scraped while the group runs
        with urllib.request.urlopen(server.url, timeout=10) as response:
            assert b"zeroqueue_consumer_buffer_fill_ratio" in response.read()
        # and stops serving once the group stopped
        group.stop()
        runner.join(30)
        assert not runner.is_alive()
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(server.url, timeout=5)
    finally:
        metrics.disable()


# -- on a broker -------------------------------------------------------------------


def test_counts_match_what_happened(
    brokers: list[str],
    new_topic: Callable[[int], str],
    group: str,
    served: metrics.MetricsServer,
) -> None:
    # given 10 messages, two of which always fail: tried twice in place, then dead-lettered
    topic, dead_letters = new_topic(1), new_topic(1)
    with Pusher(brokers, topic) as pusher:
        for number in range(10):
            pusher.push_with_key(f"k{number}", str(number))

    def handle(message: Message) -> None:
        if message.value_str in ("3", "7"):
            raise ValueError(f"poison {message.value_str}")

    queue = Queue(
        kq(
            brokers,
            topic,
            group,
            Retry=RetryConf(Attempts=2, Backoff="10ms", DeadLetterTopic=dead_letters),
        ),
        handle,
        **fast_queue_options(),
    )
    url = served.url
    where = {"topic": topic, "partition": "0", "group": group}
    # when the queue handles them
    with running(queue):
        assert eventually(
            lambda: value(url, "zeroqueue_consumer_dead_lettered_total", **where) == 2
        )
        assert eventually(lambda: value(url, "zeroqueue_consumer_handled_total", **where) == 8)
        samples = scrape(url)
    # then each outcome was counted once per message, each failed attempt once
    assert samples[("zeroqueue_consumer_failed_total", frozenset(where.items()))] == 4
    retried = frozenset({**where, "via": "in_place"}.items())
    assert samples[("zeroqueue_consumer_retried_total", retried)] == 2
    assert ("zeroqueue_consumer_skipped_total", frozenset(where.items())) not in samples
    durations = frozenset({"topic": topic, "group": group}.items())
    assert samples[("zeroqueue_consumer_handle_seconds_count", durations)] == 10
    # and the pushes were counted: the test's to the topic, the queue's to the dead letters
    assert eventually(
        lambda: value(url, "zeroqueue_pusher_messages_total", topic=topic, partition="0") == 10
    )
    assert eventually(
        lambda: (
            value(url, "zeroqueue_pusher_messages_total", topic=dead_letters, partition="0") == 2
        )
    )


def test_force_commit_skips_are_counted_as_skipped(
    brokers: list[str],
    new_topic: Callable[[int], str],
    group: str,
    served: metrics.MetricsServer,
) -> None:
    # given 4 messages, one failing, under ForceCommit (go-queue's default)
    topic = new_topic(1)
    with Pusher(brokers, topic) as pusher:
        for number in range(4):
            pusher.push(str(number))

    def handle(key: str, value: str) -> None:
        if value == "2":
            raise ValueError("bad")

    where = {"topic": topic, "partition": "0", "group": group}
    with running(
        Queue(
            kq(brokers, topic, group),
            handle,
            error_handler=lambda m, e: None,
            **fast_queue_options(),
        )
    ):
        # then the failing one is skipped, the others handled, and the commit reaches 4
        assert eventually(
            lambda: value(served.url, "zeroqueue_consumer_skipped_total", **where) == 1
        )
        assert eventually(
            lambda: value(served.url, "zeroqueue_consumer_committed_offset", **where) == 4
        )
        assert value(served.url, "zeroqueue_consumer_handled_total", **where) == 3
        assert value(served.url, "zeroqueue_consumer_failed_total", **where) == 1


@pytest.mark.kafka_only
def test_lag_rises_while_the_handler_is_held_and_falls_to_zero_after(
    brokers: list[str],
    new_topic: Callable[[int], str],
    group: str,
    served: metrics.MetricsServer,
) -> None:
    # given a queue whose handler is held until released
    topic = new_topic(1)
    release = threading.Event()
    handled: list[str] = []

    def handle(key: str, value: str) -> None:
        release.wait(60)
        handled.append(value)

    url = served.url
    where = {"topic": topic, "partition": "0", "group": group}

    def lag() -> float | None:
        return value(url, "zeroqueue_consumer_lag_messages", **where)

    def lag_seconds() -> float | None:
        return value(url, "zeroqueue_consumer_lag_seconds", **where)

    with (
        Pusher(brokers, topic) as pusher,
        running(Queue(kq(brokers, topic, group), handle, **fast_queue_options())),
    ):
        # when 5 messages are pushed, and then 5 more, while it is held
        for number in range(5):
            pusher.push_with_key("k", str(number))
        pusher.flush()
        assert eventually(lambda: lag() == 5), lag()
        assert eventually(lambda: (lag_seconds() or 0.0) > 0.0), lag_seconds()
        first_age = lag_seconds()
        for number in range(5, 10):
            pusher.push_with_key("k", str(number))
        pusher.flush()
        # then the lag rises with them, and the oldest message grows older
        assert eventually(lambda: lag() == 10), lag()
        assert eventually(lambda: (lag_seconds() or 0.0) > (first_age or 0.0))
        # when the handler is released
        release.set()
        # then the lag falls to zero, in messages and in seconds, and the commit follows
        assert eventually(lambda: lag() == 0 and lag_seconds() == 0.0), (lag(), lag_seconds())
        assert eventually(lambda: value(url, "zeroqueue_consumer_committed_offset", **where) == 10)
        assert value(url, "zeroqueue_consumer_in_flight_messages", **where) == 0
    assert handled == [str(number) for number in range(10)]


# -- what is documented ------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def exposed_names() -> set[str]:
    """The sample names the collector exposes (counters with _total, histograms by parts)."""
    collector = ZeroQueueCollector(Hub(), offsets_timeout=1.0, offsets_cache=1.0)
    names = set()
    for family in collector.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {f"{family.name}_{part}" for part in ("bucket", "count", "sum")}
            names.add(family.name)
        else:
            names.add(family.name)
    return names


def test_the_dashboard_is_json_whose_panels_query_exposed_metrics() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "zeroqueue.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\bzeroqueue_\w+", expr)}
    exposed = exposed_names()
    assert used <= exposed
    # every metric has a panel (a histogram through its buckets)
    assert {name for name in exposed if not name.endswith(("_count", "_sum", "_seconds"))} <= used


def test_readme_lists_every_metric() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("\n## Metrics\n") : readme.index("\n## Errors\n")]
    listed = set(re.findall(r"^\| `(zeroqueue_\w+)`", section, flags=re.MULTILINE))
    exposed = {name for name in exposed_names() if not name.endswith(("_bucket", "_count", "_sum"))}
    assert listed == exposed
