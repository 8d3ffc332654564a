"""The oracle itself, on small hand-made histories: it passes a good one, names each broken rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.oracle import CommitSample, Handled, Pushed, check, read_log, violations

# Key a: seq 0, 1, 2 at offsets 0, 1, 2 of partition 0; key b: seq 0 at offset 0 of partition 1.
PUSHED = [Pushed("a", 0, "1"), Pushed("a", 1, "2"), Pushed("a", 2, "3"), Pushed("b", 0, "4")]
PLACE = {"1": (0, 0), "2": (0, 1), "3": (0, 2), "4": (1, 0)}


def handled(run: str, value: str, at: int) -> Handled:
    partition, offset = PLACE[value]
    key = next(m.key for m in PUSHED if m.value == value)
    return Handled(run, partition, offset, key, value, at)


def commit(at: int, p0: int, p1: int, label: str = "") -> CommitSample:
    return CommitSample(at, {0: p0, 1: p1}, label)


# A first run handles 1, 2 and 4, commits 1 on partition 0 and 1 on partition 1, and
# is killed; the next run begins at offset 1 of partition 0 and handles 2 again (the
# uncommitted window), then 3, and commits everything.
GOOD_RUNS = [
    handled("run-1", "1", 10),
    handled("run-1", "4", 11),
    handled("run-1", "2", 20),
    handled("run-2", "2", 40),
    handled("run-2", "3", 41),
]
GOOD_SAMPLES = [commit(30, 1, 1, "after kill 1"), commit(50, 3, 1, "the end")]


def test_a_good_history_passes() -> None:
    check(PUSHED, GOOD_RUNS, GOOD_SAMPLES, seed=7)


def test_an_acknowledged_message_never_handled_is_lost() -> None:
    runs = [r for r in GOOD_RUNS if r.value != "3"]
    found = violations(PUSHED, runs, [commit(30, 1, 1), commit(50, 2, 1)])
    assert found == ["lost: '3' (key a, seq 2) was acknowledged but never handled"]


def test_a_message_whose_push_raised_may_be_missing() -> None:
    pushed = [*PUSHED[:2], Pushed("a", 2, "3", acknowledged=False), PUSHED[3]]
    runs = [r for r in GOOD_RUNS if r.value != "3"]
    assert violations(pushed, runs, [commit(30, 1, 1), commit(50, 2, 1)]) == []


def test_a_commit_past_an_unhandled_message_is_a_gap() -> None:
    # given a reading of partition 0 at 3 while offset 2 was not handled yet
    samples = [commit(30, 3, 1, "after kill 1"), commit(50, 3, 1, "the end")]
    runs = [*GOOD_RUNS[:3], handled("run-2", "3", 41)]
    found = violations(PUSHED, runs, samples)
    assert (
        "gap: partition 0 committed 3 at after kill 1, but offset 2 was only after that handled"
        in found
    )


def test_a_commit_past_a_message_never_handled_is_a_gap() -> None:
    pushed = [*PUSHED[:2], Pushed("a", 2, "3", acknowledged=False), PUSHED[3]]
    runs = [r for r in GOOD_RUNS if r.value != "3"]
    found = violations(pushed, runs, [commit(50, 3, 1, "the end")], settled=False)
    assert found == ["gap: partition 0 committed 3 at the end, but offset 2 was never handled"]


def test_handling_again_below_the_committed_offset_is_outside_the_window() -> None:
    # given run-2 re-handles offset 0 though the group had committed 1 before
    runs = [*GOOD_RUNS, handled("run-2", "1", 39)]
    found = violations(PUSHED, runs, GOOD_SAMPLES)
    assert found == [
        "handled after commit: run-2 handled partition 0 offset 0 (key a) after the group"
        " had committed 1 at after kill 1 (outside the uncommitted window)"
    ]


def test_a_commit_that_goes_back_does_not_open_the_window_again() -> None:
    samples = [commit(30, 2, 1, "after kill 1"), commit(35, 1, 1), commit(50, 3, 1)]
    found = violations(PUSHED, GOOD_RUNS, samples)
    assert found == [
        "handled after commit: run-2 handled partition 0 offset 1 (key a) after the group"
        " had committed 2 at after kill 1 (outside the uncommitted window)"
    ]


def test_a_first_delivery_out_of_key_order_is_named() -> None:
    # given seq 2 of key a handled (first) before seq 1
    runs = [
        handled("run-1", "1", 10),
        handled("run-1", "3", 11),
        handled("run-1", "2", 12),
        handled("run-1", "4", 13),
    ]
    found = violations(PUSHED, runs, [commit(50, 3, 1)])
    assert found == [
        "order: key a seq 1 (partition 0 offset 1 (key a), run-1) was first handled after"
        " seq 2 (partition 0 offset 2 (key a), run-1)"
    ]


def test_a_repeat_of_an_earlier_message_is_not_out_of_order() -> None:
    # run-2 handles seq 1 again after run-1 handled seq 2: a duplicate, not a first delivery
    runs = [*GOOD_RUNS[:3], handled("run-1", "3", 21), handled("run-2", "2", 40)]
    assert violations(PUSHED, runs, GOOD_SAMPLES) == []


def test_a_final_commit_short_of_the_end_is_not_settled() -> None:
    found = violations(PUSHED, GOOD_RUNS, [commit(30, 1, 1), commit(50, 2, 1, "the end")])
    assert found == [
        "settled: partition 0 committed 2 at the end; its last handled message is offset 2"
    ]


def test_a_value_nobody_pushed_or_stored_twice_is_named() -> None:
    stray = Handled("run-1", 1, 1, "b", "99", 12)
    moved = Handled("run-2", 1, 1, "a", "3", 42)
    found = violations(PUSHED, [*GOOD_RUNS, stray, moved], [*GOOD_SAMPLES, commit(60, 3, 2)])
    assert "run-1 handled '99' at partition 1 offset 1 (key b): never pushed" in found
    assert (
        "value '3' (key a) is stored twice: partition 0 offset 2 and partition 1 offset 1" in found
    )


def test_check_names_the_seed_and_every_violation() -> None:
    runs = [r for r in GOOD_RUNS if r.value != "3"]
    with pytest.raises(AssertionError) as failure:
        check(PUSHED, runs, [commit(50, 2, 1)], seed=1234)
    text = str(failure.value)
    assert text.startswith("fault oracle: 1 violation(s) (rerun with ZEROQUEUE_FAULT_SEED=1234)")
    assert "lost: '3'" in text


def test_a_torn_last_line_of_a_killed_process_is_not_a_handled_message(tmp_path: Path) -> None:
    log = tmp_path / "run-1.log"
    log.write_text("0 0 a 1 10\n1 0 b 4 11\n0 1 a 2")
    assert read_log(log, "run-1") == [handled("run-1", "1", 10), handled("run-1", "4", 11)]
