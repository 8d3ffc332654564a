"""Offset tracking: a commit never passes a message that has not been handled."""

from __future__ import annotations

from zeroqueue.engine.offsets import PartitionProgress


def test_nothing_is_committable_before_any_chunk_finishes() -> None:
    progress = PartitionProgress("t", 0)
    first = progress.add_chunk(last_offset=9, size=10)
    first.remaining = 2
    assert progress.commit_due() is None
    assert progress.in_flight


def test_commit_advances_only_over_the_done_prefix() -> None:
    # given three chunks fetched in order
    progress = PartitionProgress("t", 0)
    chunks = [progress.add_chunk(last_offset=end, size=10) for end in (9, 19, 29)]
    for chunk in chunks:
        chunk.remaining = 1
    # when the later chunks finish before the first
    chunks[2].remaining = 0
    chunks[1].remaining = 0
    # then nothing may be committed: offset 0..9 are not handled
    assert progress.commit_due() is None
    # when the first finishes too, the commit covers all three
    chunks[0].remaining = 0
    assert progress.commit_due() == 30
    assert not progress.in_flight


def test_offsets_with_gaps_commit_after_the_last_fetched_offset() -> None:
    # compacted topics and transaction markers leave gaps between offsets
    progress = PartitionProgress("t", 0)
    chunk = progress.add_chunk(last_offset=107, size=3)
    chunk.remaining = 0
    assert progress.commit_due() == 108


def test_an_offset_is_due_once() -> None:
    progress = PartitionProgress("t", 0)
    progress.add_chunk(last_offset=4, size=5).remaining = 0
    assert progress.commit_due() == 5
    progress.committed = 5
    assert progress.commit_due() is None
    # a failed commit forgets what was committed and the offset is due again
    progress.committed = None
    assert progress.commit_due() == 5


def test_in_flight_messages_counts_unfinished_chunks() -> None:
    progress = PartitionProgress("t", 1)
    progress.add_chunk(last_offset=4, size=5).remaining = 1
    progress.add_chunk(last_offset=6, size=2).remaining = 0
    assert progress.in_flight_messages == 7


def test_handled_through_moves_the_commit_once_earlier_chunks_are_done() -> None:
    progress = PartitionProgress("t", 0)
    progress.handled_through(9)
    assert progress.commit_due() == 10
    # with a chunk still pending, a direct record waits its turn
    pending = progress.add_chunk(19, 10)
    pending.remaining = 1
    progress.handled_through(29)
    assert progress.advance() == 10
    pending.remaining = 0
    assert progress.advance() == 30
