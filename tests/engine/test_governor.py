"""The governor: fewer processors for GIL-bound handlers, all of them for I/O-bound ones."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from tests.engine.helpers import measured_fast, probe
from zeroqueue.engine.governor import PROBE_SECONDS, Governor


def test_io_bound_handler_gets_every_processor() -> None:
    governor = Governor(8)
    assert governor.limit == 1
    assert governor.probing
    # a handler on CPU 1% of the time
    probe(governor, governor._phase_started, cpu=0.001, wall=0.1)
    assert governor.limit == 8
    assert governor.phase == "run"
    assert not governor.probing


def test_gil_bound_handler_runs_on_one_processor() -> None:
    governor = Governor(8)
    now = probe(governor, governor._phase_started, cpu=0.1, wall=0.1)
    assert governor.phase == "pair"
    assert governor.limit == 2
    # two processors burn no more CPU per second than one did: they only took turns
    probe(governor, now, cpu=0.1, wall=0.4)
    assert governor.limit == 1


def test_half_cpu_handler_overlaps_with_one_other() -> None:
    governor = Governor(8)
    now = probe(governor, governor._phase_started, cpu=0.05, wall=0.1)
    probe(governor, now, cpu=0.05, wall=0.2)
    assert governor.limit == 2


def test_handler_computing_outside_the_gil_gets_every_processor() -> None:
    governor = Governor(8)
    now = probe(governor, governor._phase_started, cpu=0.2, wall=0.2)
    # both processors busy the whole step and twice the CPU per second: real parallelism
    probe(governor, now, cpu=0.8, wall=0.42)
    assert governor.limit == 8


def test_probe_waits_for_enough_measurements() -> None:
    governor = Governor(4)
    governor.record(0.001, 0.1)
    assert not governor.tick(governor._phase_started + PROBE_SECONDS + 0.01)
    assert governor.phase == "single"


def test_the_handler_is_probed_again_after_run_seconds() -> None:
    governor = Governor(4, run_seconds=10)
    now = probe(governor, governor._phase_started, cpu=0.001, wall=0.1)
    assert governor.limit == 4
    assert not governor.tick(now + 5)
    assert governor.tick(now + 10.5)
    assert governor.phase == "single"
    assert governor.limit == 1


def test_the_fetch_thread_runs_the_handler_only_once_measured_fast() -> None:
    # given a new governor: it probes on a worker, never on the fetch thread
    governor = Governor(1)
    assert governor.probing
    assert not governor.inline
    # when the probe measured a quick handler that only computes
    measured_fast(governor)
    # then the fetch thread may run it
    assert governor.phase == "run"
    assert governor.limit == 1
    assert governor.inline


def test_a_slow_handler_that_only_computes_stays_on_a_worker() -> None:
    # given a handler that computes 20 ms per message, on one processor
    governor = Governor(1)
    probe(governor, governor._phase_started, cpu=0.4, wall=0.4)
    # then one processor runs it, but not the fetch thread: it would hold polls and stop()
    assert governor.phase == "run"
    assert governor.limit == 1
    assert not governor.inline


def test_a_handler_that_turned_slow_goes_back_to_a_worker_and_is_measured_again() -> None:
    governor = measured_fast(Governor(8))
    governor.slowed()
    assert not governor.inline
    assert governor.phase == "single"
    assert governor.probing


def test_a_retry_keeps_the_handler_off_the_fetch_thread_for_run_seconds() -> None:
    governor = measured_fast(Governor(8, run_seconds=10))
    governor.need_workers()
    assert not governor.inline


def test_the_probe_is_timed_from_its_first_measurement_not_from_start_up() -> None:
    # given a governor built before a group join that took over a second
    governor = Governor(8)
    governor._phase_started -= 1.15
    # when the first batch of a slow handler is timed (enough wall time to decide on)
    governor.record(cpu=0.001, wall=0.03, messages=20)
    # then it has not been probed for PROBE_SECONDS yet: the join does not count
    assert not governor.tick()
    assert governor.phase == "single"


def test_a_probe_needs_enough_timed_wall_time() -> None:
    governor = Governor(8)
    probe(governor, governor._phase_started, cpu=0.0002, wall=0.0026)
    assert governor.phase == "single"
    probe(governor, governor._phase_started, cpu=0.02, wall=0.02)
    assert governor.phase == "pair"
    assert governor.limit == 2


def test_a_handler_of_a_few_microseconds_skips_the_pair_step() -> None:
    # given a no-op handler: 5,000 messages on CPU all the time, 2 us each
    governor = Governor(8)
    governor.record(cpu=0.01, wall=0.01, messages=5000)
    governor.record(cpu=0.01, wall=0.01, messages=5000)
    # when the probe step ends
    assert not governor.tick(governor._phase_started + PROBE_SECONDS + 0.5)
    # then it runs on one processor straight away, without trying two
    assert governor.phase == "run"
    assert governor.limit == 1


def test_waiting_for_a_cpu_is_not_mistaken_for_io() -> None:
    # given a no-op handler that was runnable but not running half of its wall time
    governor = Governor(8)
    governor.record(cpu=0.01, wall=0.02, messages=5000, waited=0.01)
    governor.record(cpu=0.01, wall=0.02, messages=5000, waited=0.01)
    # when the probe step ends
    governor.tick(governor._phase_started + PROBE_SECONDS + 0.5)
    # then it still counts as computing all the time: one processor
    assert governor.phase == "run"
    assert governor.limit == 1


@pytest.mark.skipif(
    not os.path.exists("/proc/thread-self/schedstat") or not hasattr(os, "sched_setaffinity"),
    reason="needs Linux schedstat and CPU affinity",
)
def test_marks_measure_the_time_a_thread_waited_for_a_cpu() -> None:
    # given a busy process and a thread pinned to the same CPU
    cpu = min(os.sched_getaffinity(0))
    busy_loop = f"import os; os.sched_setaffinity(0, {{{cpu}}}); print(flush=True)\nwhile 1: pass"
    hog = subprocess.Popen([sys.executable, "-c", busy_loop], stdout=subprocess.PIPE)
    assert hog.stdout is not None
    hog.stdout.readline()  # pinned, and spinning from now on
    measured: list[float] = []

    def spin() -> None:
        os.sched_setaffinity(0, {cpu})  # the calling thread only
        before = Governor.mark()
        deadline = time.perf_counter() + 0.3
        while time.perf_counter() < deadline:
            pass
        after = Governor.mark()
        measured.extend(b - a for a, b in zip(before, after, strict=True))

    try:
        thread = threading.Thread(target=spin)
        thread.start()
        thread.join()
    finally:
        hog.kill()
        hog.communicate()
    # then the thread ran only part of the time and its mark counted the rest as waiting
    cpu_seconds, wall, waited = measured
    assert wall >= 0.3
    assert waited > 0.05
    assert cpu_seconds + waited == pytest.approx(wall, abs=0.05)
