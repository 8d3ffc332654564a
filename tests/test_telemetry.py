"""go-zero's Telemetry section sets up tracing: spans reach a file or an OTLP/HTTP collector."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from zeroqueue import ConfigError
from zeroqueue.conf import ServiceConf, from_mapping
from zeroqueue.tracing import setup_telemetry

# A service process: Telemetry from a go-zero style mapping, then a push and its handling.
SERVICE = """
import json, sys, threading
from zeroqueue import KqConf, Pusher, Queue
from zeroqueue.conf import ServiceConf, from_mapping
from zeroqueue.tracing import setup_telemetry

brokers, topic, group, telemetry = sys.argv[1].split(","), sys.argv[2], sys.argv[3], sys.argv[4]
provider = setup_telemetry(from_mapping({"Name": "billing", **json.loads(telemetry)}, ServiceConf))
assert provider is not None
with Pusher(brokers, topic) as pusher:
    pusher.push_with_key("k", "v")
handled = threading.Event()
queue = Queue(
    KqConf(Brokers=brokers, Group=group, Topic=topic, Offset="first"),
    lambda key, value: handled.set(),
    session_timeout=2.0,
    handle_signals=False,
)
with queue.running():
    assert handled.wait(30)
provider.shutdown()  # flushes the batch, as at exit
"""


def run_service(brokers: list[str], topic: str, group: str, telemetry: dict[str, object]) -> None:
    subprocess.run(
        [sys.executable, "-c", SERVICE, ",".join(brokers), topic, group, json.dumps(telemetry)],
        check=True,
        timeout=120,
    )


def test_the_file_batcher_writes_each_span_as_a_json_line(
    brokers: list[str], new_topic: Callable[[int], str], group: str, tmp_path: Path
) -> None:
    topic, spans = new_topic(1), tmp_path / "spans.jsonl"
    run_service(brokers, topic, group, {"Telemetry": {"Endpoint": str(spans), "Batcher": "file"}})
    written = [json.loads(line) for line in spans.read_text().splitlines()]
    by_name = {span["name"]: span for span in written}
    assert set(by_name) == {f"send {topic}", f"process {topic}"}
    send, process = by_name[f"send {topic}"], by_name[f"process {topic}"]
    assert process["parent_id"] == send["context"]["span_id"]
    assert process["context"]["trace_id"] == send["context"]["trace_id"]
    assert send["resource"]["attributes"]["service.name"] == "billing"


class Collector(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that keeps what it is sent."""

    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[int, list[tuple[str, str, bytes]]]]:
    received: list[tuple[str, str, bytes]] = []
    handler = type("Handler", (Collector,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()


def test_the_otlphttp_batcher_posts_spans_to_the_collector(
    brokers: list[str],
    new_topic: Callable[[int], str],
    group: str,
    collector: tuple[int, list[tuple[str, str, bytes]]],
) -> None:
    port, received = collector
    topic = new_topic(1)
    telemetry = {"Endpoint": f"127.0.0.1:{port}", "Batcher": "otlphttp", "Sampler": 1.0}
    run_service(brokers, topic, group, {"Telemetry": telemetry})
    assert received, "no span reached the collector"
    assert {(path, content_type) for path, content_type, _ in received} == {
        ("/v1/traces", "application/x-protobuf")
    }
    bodies = b"".join(body for _, _, body in received)
    assert f"send {topic}".encode() in bodies
    assert f"process {topic}".encode() in bodies


def test_no_endpoint_or_disabled_sets_nothing_up() -> None:
    assert setup_telemetry(from_mapping({"Name": "billing"}, ServiceConf)) is None
    disabled = {"Telemetry": {"Endpoint": "127.0.0.1:4318", "Disabled": True}}
    assert setup_telemetry(from_mapping(disabled, ServiceConf)) is None


def test_a_batcher_this_library_cannot_export_to_says_what_to_use() -> None:
    conf = from_mapping({"Telemetry": {"Endpoint": "http://jaeger:14268"}}, ServiceConf)
    with pytest.raises(ConfigError, match=r"Telemetry.Batcher: got 'jaeger'; expected otlphttp"):
        setup_telemetry(conf)
