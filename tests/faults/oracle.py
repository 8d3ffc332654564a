"""The one oracle every fault scenario is checked by.

A scenario pushes messages with a per-key sequence number, runs consumer
processes that log each message they handled (``tests.faults.consumer_process``),
reads the group's committed offsets now and then (after each kill, at each
membership change, at the end), and hands all of it to :func:`check`, which
holds the run to zeroqueue's promises (README, *What is guaranteed*):

1. **Nothing lost**: every acknowledged message was handled at least once (a
   message whose push raised may be missing; if present it is held to the rest).
2. **No gap**: a committed offset never passes an unhandled message: every offset
   below one the group had committed when it was read was handled before then.
3. **Duplicates only in the uncommitted window**: once the group committed past
   an offset, nobody handles it again (so a restarted run begins exactly at the
   committed offset).
4. **Per-key order**: per key, first deliveries come in push order (no message
   here goes through a retry topic, the one place where order may change).
5. **Settled** (when asked): after a clean stop with everything handled, the
   committed offset of every partition is just past its last message.

Times are ``time.monotonic_ns()``, which on Linux is one clock for every
process, so records of concurrent processes and the test's own readings of
committed offsets can be put in one order.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "CommitSample",
    "Handled",
    "Pushed",
    "check",
    "read_log",
    "summary",
    "violations",
]

# Violations listed in full in a failure message; the rest are counted.
_SHOWN = 15


# Tuples, not dataclasses: a scenario builds a million of each, and a tuple is
# several times quicker to make.
class Pushed(NamedTuple):
    """A pushed message: ``value`` is unique; ``seq`` counts the pushes of its key."""

    key: str
    seq: int
    value: str
    #: False when its push raised (or its delivery failed): it may or may not be stored.
    acknowledged: bool = True


class Handled(NamedTuple):
    """One line of a consumer process's log: a message its handler finished."""

    run: str
    partition: int
    offset: int
    key: str
    value: str
    #: ``time.monotonic_ns()`` in the handler, before it returned.
    at: int


class CommitSample(NamedTuple):
    """The group's committed offsets, read at ``at`` (monotonic ns, after the read returned)."""

    at: int
    offsets: Mapping[int, int]
    label: str = ""


def read_log(path: Path, run: str) -> list[Handled]:
    """The records of one consumer process's log; a torn last line (SIGKILL) is ignored."""
    records: list[Handled] = []
    with path.open(encoding="utf-8") as log:
        for line in log:
            if not line.endswith("\n"):
                break  # the process died while writing it: the message was not handled
            partition, offset, key, value, at = line.split()
            records.append(Handled(run, int(partition), int(offset), key, value, int(at)))
    return records


def summary(
    pushed: Sequence[Pushed], handled: Sequence[Handled], samples: Sequence[CommitSample]
) -> str:
    """One line on what a scenario did, printed beside its seed."""
    acknowledged = sum(message.acknowledged for message in pushed)
    distinct = len({record.value for record in handled})
    runs = len({record.run for record in handled})
    return (
        f"{len(pushed):,} pushed ({len(pushed) - acknowledged:,} raised), {len(handled):,}"
        f" handled by {runs} runs ({len(handled) - distinct:,} again),"
        f" {len(samples):,} readings of committed offsets"
    )


def check(
    pushed: Sequence[Pushed],
    handled: Iterable[Handled],
    samples: Sequence[CommitSample],
    *,
    seed: int,
    settled: bool = True,
) -> None:
    """Raise AssertionError naming every broken promise (and the seed) if any is."""
    __tracebackhide__ = True  # pytest: the failure shows at the scenario's call
    handled = list(handled)
    print(summary(pushed, handled, samples))
    found = violations(pushed, handled, samples, settled=settled)
    if found:
        shown = "\n  ".join(found[:_SHOWN])
        more = f"\n  ... and {len(found) - _SHOWN} more" if len(found) > _SHOWN else ""
        raise AssertionError(
            f"fault oracle: {len(found)} violation(s) (rerun with ZEROQUEUE_FAULT_SEED={seed}):"
            f"\n  {shown}{more}"
        )


def violations(
    pushed: Sequence[Pushed],
    handled: Iterable[Handled],
    samples: Sequence[CommitSample],
    *,
    settled: bool = True,
) -> list[str]:
    """Every broken promise, one line each, in the order of the module docstring."""
    records = sorted(handled, key=itemgetter(5))  # by when they were handled
    by_value = {message.value: message for message in pushed}
    strays, order = _deliveries(records, by_value)
    first_at = _first_handled(records)
    found = strays + _lost(records, pushed)
    found += _gaps(first_at, samples)
    found += _after_commit(records, samples)
    found += order
    if settled:
        found += _not_settled(first_at, samples)
    return found


def _where(record: Handled) -> str:
    return f"partition {record.partition} offset {record.offset} (key {record.key})"


def _deliveries(
    records: list[Handled], by_value: Mapping[str, Pushed]
) -> tuple[list[str], list[str]]:
    """Values nobody pushed or stored twice; per key, first deliveries out of push order."""
    strays: list[str] = []
    order: list[str] = []
    place: dict[str, tuple[int, int]] = {}
    last: dict[str, tuple[int, Handled]] = {}
    for record in records:
        message = by_value.get(record.value)
        if message is None or message.key != record.key:
            strays.append(
                f"{record.run} handled {record.value!r} at {_where(record)}: never pushed"
            )
            continue
        at = place.get(record.value)
        if at is not None:
            if at != (record.partition, record.offset):
                strays.append(
                    f"value {record.value!r} (key {record.key}) is stored twice: partition"
                    f" {at[0]} offset {at[1]} and partition {record.partition} offset"
                    f" {record.offset}"
                )
            continue  # not a first delivery
        place[record.value] = (record.partition, record.offset)
        before = last.get(message.key)
        if before is None or before[0] < message.seq:
            last[message.key] = (message.seq, record)
        else:
            order.append(
                f"order: key {message.key} seq {message.seq} ({_where(record)}, {record.run})"
                f" was first handled after seq {before[0]} ({_where(before[1])},"
                f" {before[1].run})"
            )
    return strays, order


def _lost(records: list[Handled], pushed: Sequence[Pushed]) -> list[str]:
    seen = {record.value for record in records}
    return [
        f"lost: {message.value!r} (key {message.key}, seq {message.seq}) was acknowledged"
        " but never handled"
        for message in pushed
        if message.acknowledged and message.value not in seen
    ]


def _first_handled(records: list[Handled]) -> dict[int, dict[int, int]]:
    """Per partition, per offset: when it was first handled."""
    first: dict[int, dict[int, int]] = defaultdict(dict)
    for record in records:
        first[record.partition].setdefault(record.offset, record.at)
    return first


def _gaps(first_at: Mapping[int, Mapping[int, int]], samples: Sequence[CommitSample]) -> list[str]:
    # Per partition: the latest first-handling time among offsets 0..n (inf for a hole),
    # so each reading is checked in O(1).
    latest = {
        partition: list(
            itertools.accumulate((done.get(o, math.inf) for o in range(max(done) + 1)), max)
        )
        for partition, done in first_at.items()
    }
    found: list[str] = []
    reported: set[int] = set()  # one gap per partition says enough
    for sample in samples:
        for partition, committed in sorted(sample.offsets.items()):
            if committed <= 0 or partition in reported:
                continue
            prefix = latest.get(partition, [])
            if committed <= len(prefix) and prefix[committed - 1] <= sample.at:
                continue
            done = first_at.get(partition, {})
            offset = next(o for o in range(committed) if done.get(o, math.inf) > sample.at)
            when = "never" if offset not in done else "only after that"
            reported.add(partition)
            found.append(
                f"gap: partition {partition} committed {committed} at"
                f" {sample.label or 'a reading'}, but offset {offset} was {when} handled"
            )
    return found


def _after_commit(records: list[Handled], samples: Sequence[CommitSample]) -> list[str]:
    found: list[str] = []
    readings = sorted(samples, key=lambda s: s.at)
    reported: set[tuple[str, int]] = set()
    highest: dict[int, tuple[int, str]] = {}
    index = 0
    for record in records:
        while index < len(readings) and readings[index].at < record.at:
            reading = readings[index]
            for partition, committed in reading.offsets.items():
                if committed > highest.get(partition, (-1, ""))[0]:
                    highest[partition] = (committed, reading.label or "a reading")
            index += 1
        committed, label = highest.get(record.partition, (-1, ""))
        if record.offset < committed and (record.run, record.partition) not in reported:
            reported.add((record.run, record.partition))
            found.append(
                f"handled after commit: {record.run} handled {_where(record)} after the group"
                f" had committed {committed} at {label} (outside the uncommitted window)"
            )
    return found


def _not_settled(
    first_at: Mapping[int, Mapping[int, int]], samples: Sequence[CommitSample]
) -> list[str]:
    if not samples:
        return ["settled: no committed offsets were read at the end"]
    final = max(samples, key=lambda s: s.at)
    found: list[str] = []
    for partition, done in sorted(first_at.items()):
        end = max(done) + 1
        committed = final.offsets.get(partition, -1)
        if committed != end:
            found.append(
                f"settled: partition {partition} committed {committed} at"
                f" {final.label or 'the end'}; its last handled message is offset {end - 1}"
            )
    return found
