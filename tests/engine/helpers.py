"""Helpers for the engine's unit tests."""

from __future__ import annotations

import time

from zeroqueue.engine.governor import PROBE_MESSAGES, PROBE_SECONDS, Governor


def probe(governor: Governor, start: float, cpu: float, wall: float) -> float:
    """Feed one probe step of timed messages and tick past its end; return the new time."""
    for _ in range(PROBE_MESSAGES):
        governor.record(cpu / PROBE_MESSAGES, wall / PROBE_MESSAGES)
    now = start + PROBE_SECONDS + 0.01
    governor.tick(now)
    return now


def measured_fast(governor: Governor) -> Governor:
    """Take ``governor`` through a probe of a quick handler that only computes.

    After it the fetch thread runs the handler itself (``governor.inline``), as a
    Queue does for such a handler once the probe, run on a worker, has measured it.
    """
    messages = 20_000  # 1 us each: quick, and enough wall time to decide on
    governor.record(cpu=0.02, wall=0.02, messages=messages)
    governor.tick(time.monotonic() + PROBE_SECONDS + 0.01)
    assert governor.inline, "a quick CPU-bound handler should run on the fetch thread"
    return governor
