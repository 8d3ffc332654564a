"""The login-log example service, end to end on the broker under test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.kafka_helpers import eventually, unique_name
from zeroqueue import ConfigError, admin
from zeroqueue._process import free_port
from zeroqueue.conf import load
from zeroqueue.service import AsgiServer, ExitCode, ServiceGroup, import_service

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "login_log"


@pytest.fixture
def config(tmp_path: Path, request: pytest.FixtureRequest, brokers: list[str]) -> Path:
    """The example's config file, with a topic and group of this test's own."""
    text = (EXAMPLE / "etc" / "config.yaml").read_text()
    topic, group = unique_name(request, "login"), unique_name(request, "login")
    text = text.replace("Topic: login-log", f"Topic: {topic}")
    text = text.replace("Group: login-log-group", f"Group: {group}")
    path = tmp_path / "config.yaml"
    path.write_text(text)
    admin.create_topic(brokers, topic, partitions=4)
    return path


@pytest.fixture
def environment(
    monkeypatch: pytest.MonkeyPatch, brokers: list[str], tmp_path: Path
) -> dict[str, str]:
    values = {
        "KAFKA_BROKERS": ",".join(brokers),
        "LOGIN_LOG_PORT": str(free_port()),
        "LOGIN_LOG_DATABASE": str(tmp_path / "login_log.db"),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def service(config: Path, environment: dict[str, str]) -> Iterator[tuple[str, ServiceGroup]]:
    """The service running in this process; yields its base URL and its group."""
    module = import_service(str(EXAMPLE))
    group = ServiceGroup(handle_signals=False)
    module.setup(load(config, module.Config), group)
    thread = threading.Thread(target=group.run)
    thread.start()
    http = next(s for s in group.services if isinstance(s, AsgiServer))
    assert http.wait_started(30)
    try:
        yield f"http://127.0.0.1:{http.port}", group
    finally:
        group.stop()
        thread.join(60)


def test_a_login_pushed_over_http_is_stored_and_served_in_order(
    service: tuple[str, ServiceGroup],
) -> None:
    base, group = service
    with httpx.Client(base_url=base, timeout=10) as client:
        # when 3 users log in 20 times each, over HTTP
        for n in range(60):
            reply = client.post("/login", json={"user_id": n % 3, "ip": "10.0.0.1", "n": n})
            assert reply.status_code == 200
        # then the consumer stores every login log
        assert eventually(lambda: client.get("/stats").json()["stored"] == 60)
        # and each user's come back in the order they were posted
        for user in range(3):
            rows = client.get(f"/users/{user}/logins").json()
            assert [row["seq"] for row in rows] == list(range(20))
    group.stop()
    assert eventually(lambda: group.exit_code is not None)
    assert group.exit_code is ExitCode.OK


def test_sigterm_stops_the_http_server_first_and_commits_what_was_handled(
    config: Path, environment: dict[str, str], brokers: list[str]
) -> None:
    # given the service run as a go-zero service is: a command and a config file
    process = subprocess.Popen(
        [sys.executable, "-m", "zeroqueue", "run", str(EXAMPLE), "-f", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | environment,
    )
    base = f"http://127.0.0.1:{environment['LOGIN_LOG_PORT']}"
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            assert eventually(lambda: _answers(client), timeout=60)
            for n in range(100):
                client.post("/login", json={"user_id": n % 7, "ip": "10.0.0.2", "n": n})
            assert eventually(lambda: client.get("/stats").json()["stored"] == 100)
        # when it gets SIGTERM
        process.send_signal(signal.SIGTERM)
        _, log = process.communicate(timeout=60)
    finally:
        process.kill()
    # then it exits 0, having stopped the HTTP server before the consumer
    assert process.returncode == 0, log
    assert log.index("stopping http") < log.index("stopping consumer")
    # and every message handled was committed
    conf_text = config.read_text()
    topic = next(line.split(": ")[1] for line in conf_text.splitlines() if "Topic:" in line)
    group = next(line.split(": ")[1] for line in conf_text.splitlines() if "Group:" in line)
    committed = admin.committed_offsets(brokers, group.strip(), topic.strip())
    assert sum(offset or 0 for offset in committed.values()) == 100


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/stats").status_code == 200
    except httpx.TransportError:
        return False


def test_the_module_must_provide_config_and_setup(tmp_path: Path) -> None:
    (tmp_path / "bare.py").write_text("x = 1\n")
    with pytest.raises(ConfigError, match=r"has no Config and no setup; expected a Config"):
        import_service(str(tmp_path / "bare.py"))
