"""Drain a backlog in a fresh process and print its RSS figures as one JSON line.

Run by ``bench.consume`` (memory part), one process per run so RSS starts clean::

    python -m bench._drain BROKERS TOPIC COUNT {zeroqueue,raw}
"""

from __future__ import annotations

import json
import sys
import threading

from bench._common import Clock
from bench.consume import PROCESSORS, consume_queue, consume_raw, make_queue, raw_settings

SAMPLE_EVERY = 0.01


def status_mb(field: str) -> float:
    """A ``/proc/self/status`` memory field in MiB: VmRSS now, VmHWM the peak."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_mb() -> float:
    """Resident set size of this process now, in MiB."""
    return status_mb("VmRSS")


class Sampler(threading.Thread):
    """Samples RSS until stopped; notes the peak and the RSS at the first message."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.clock = clock
        self.peak = rss_mb()
        self.first = 0.0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(SAMPLE_EVERY):
            now = rss_mb()
            self.peak = max(self.peak, now)
            if not self.first and self.clock.first:
                self.first = now


def main() -> None:
    brokers, topic, count, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    clock = Clock(count)
    # Both modes build the Queue (the raw loop takes its settings); no consumer exists yet.
    queue = make_queue(brokers, topic, PROCESSORS, clock.noop())
    settings = raw_settings(brokers, topic)
    start = rss_mb()
    sampler = Sampler(clock)
    sampler.start()
    rate = consume_raw(settings, topic, clock) if mode == "raw" else consume_queue(queue, clock)
    sampler.stopped.set()
    sampler.join()
    # VmHWM is this process image's own peak (ru_maxrss would carry the parent's
    # peak over fork + exec); the samples cover the same ground every 10 ms.
    peak = max(sampler.peak, status_mb("VmHWM"))
    figures = {
        "start_mb": start,
        "first_mb": sampler.first,
        "peak_mb": peak,
        "rate": rate,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
