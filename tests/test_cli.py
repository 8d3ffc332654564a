"""``zeroqueue dev`` runs a broker (Tansu, or Apache Kafka with --kafka) until Ctrl-C."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

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
