"""``zeroqueue dev`` runs a broker (Tansu, or Apache Kafka with --kafka) until Ctrl-C;
``zeroqueue run`` starts a service module with its config file."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kafka_helpers import kafka_libs
from zeroqueue import BrokerUnavailableError, admin


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_dev_prints_the_address_and_stops_cleanly(
    stop_signal: signal.Signals, broker_kind: str
) -> None:
    # given `zeroqueue dev` running on a free port
    flags = ["--kafka"] if broker_kind == "kafka" else []
    if flags:
        kafka_libs()  # fetched once if missing
    process = subprocess.Popen(
        [sys.executable, "-m", "zeroqueue", "dev", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()  # printed once the broker answers
        match = re.search(r"listening on (127\.0\.0\.1:\d+)", first_line)
        assert match, first_line
        address = match.group(1)
        # then a Kafka client can reach it
        admin.wait_for_metadata([address], timeout=10)

        # when it gets Ctrl-C (or SIGTERM)
        process.send_signal(stop_signal)
        out, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()

    # then it stops cleanly and the broker no longer answers
    assert process.returncode == 0
    assert "broker stopped" in out
    with pytest.raises(BrokerUnavailableError, match="answered"):
        admin.wait_for_metadata([address], timeout=1)


# A service that runs once and stops its group: `zeroqueue run` exits 0.
ONCE = """\
from zeroqueue.conf import Conf


class Config(Conf):
    name: str = ""


class Once:
    name = "once"

    def __init__(self, group):
        self.group = group

    def start(self):
        print("ran", __file__, flush=True)
        self.group.stop()

    def stop(self):
        pass


def setup(conf, group):
    group.add(Once(group))
"""


def zeroqueue_run(tmp_path: Path, module: str, text: str) -> subprocess.CompletedProcess[str]:
    """``zeroqueue run svc/<module> -f svc/c.yaml`` in ``tmp_path``, ``text`` the module's."""
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / module).write_text(text)
    (tmp_path / "svc" / "c.yaml").write_text("Name: svc\n")
    return subprocess.run(
        [sys.executable, "-m", "zeroqueue", "run", f"svc/{module}", "-f", "svc/c.yaml"],
        cwd=tmp_path,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )


def test_run_starts_a_file_named_like_a_standard_module(tmp_path: Path) -> None:
    # given queue.py: the standard library's queue is imported long before
    done = zeroqueue_run(tmp_path, "queue.py", ONCE)
    # then that file is the service run, not the standard library's queue
    assert done.returncode == 0, done.stderr
    assert f"ran {tmp_path / 'svc' / 'queue.py'}" in done.stdout


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("x = 1\ndef setup(conf, group:\n    pass\n", "line 2: SyntaxError: "),
        (
            "import os\nimport zq_no_such_dependency\n",
            "line 2: ModuleNotFoundError: No module named 'zq_no_such_dependency'",
        ),
    ],
    ids=["syntax error", "missing dependency"],
)
def test_run_names_a_module_that_cannot_be_imported_without_a_traceback(
    tmp_path: Path, text: str, problem: str
) -> None:
    done = zeroqueue_run(tmp_path, "broken.py", text)
    assert done.returncode == 1
    assert "Error: service module 'svc/broken.py' cannot be imported: " in done.stderr
    assert f"{tmp_path / 'svc' / 'broken.py'}, {problem}" in done.stderr
    assert "Traceback" not in done.stderr
