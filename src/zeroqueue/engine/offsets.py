"""Per-partition offset tracking: commit only what every earlier message has earned.

Messages of a partition are fetched in offset order but finish out of order (key
lanes run in parallel). Each fetched run of one partition is a :class:`Chunk`; it
is done when every lane segment cut from it is done. The offset that may be
committed is the end of the longest prefix of done chunks, so a committed offset
never passes a message that has not been handled.

Plain Python, no Kafka: the consumer loop and the unit tests drive it alike. The
caller serialises access (the engine's lock), because workers finish segments
while the fetch thread reads progress.
"""

from __future__ import annotations

from collections import deque

__all__ = ["Chunk", "PartitionProgress"]


class Chunk:
    """A run of consecutive fetched messages of one partition."""

    __slots__ = ("last_offset", "progress", "remaining", "size")

    def __init__(self, progress: PartitionProgress, last_offset: int, size: int) -> None:
        self.progress = progress
        self.last_offset = last_offset
        self.size = size
        #: Lane segments cut from this chunk that are not finished yet.
        self.remaining = 0


class PartitionProgress:
    """What has been fetched, handled and committed on one assigned partition."""

    __slots__ = ("_chunks", "committed", "done_until", "partition", "revoked", "topic")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self._chunks: deque[Chunk] = deque()
        #: Offset after the last message of the done prefix (what a commit would store).
        self.done_until: int | None = None
        #: The last offset committed to Kafka by this member.
        self.committed: int | None = None
        #: Set when the partition left this member: workers skip its messages.
        self.revoked = False

    def add_chunk(self, last_offset: int, size: int) -> Chunk:
        """Register the next fetched run, ending at ``last_offset``."""
        chunk = Chunk(self, last_offset, size)
        self._chunks.append(chunk)
        return chunk

    def handled_through(self, last_offset: int) -> None:
        """Record that the fetched messages up to ``last_offset`` were all handled.

        For messages handled as soon as they were fetched, without a chunk: it
        adds a finished chunk if earlier ones are still pending, to keep their turn.
        """
        if self._chunks:
            self._chunks.append(Chunk(self, last_offset, 0))
        else:
            self.done_until = last_offset + 1

    def advance(self) -> int | None:
        """Drop finished chunks from the front; return the committable offset, if any."""
        chunks = self._chunks
        while chunks and chunks[0].remaining == 0:
            self.done_until = chunks.popleft().last_offset + 1
        return self.done_until

    def commit_due(self) -> int | None:
        """The offset to commit now, or None when nothing new is done."""
        offset = self.advance()
        if offset is None or offset == self.committed:
            return None
        return offset

    @property
    def in_flight(self) -> bool:
        """Whether fetched messages of this partition are still being handled."""
        return bool(self._chunks)

    @property
    def in_flight_messages(self) -> int:
        """How many fetched messages sit in chunks that are not finished."""
        return sum(chunk.size for chunk in self._chunks)

    def unhandled(self) -> tuple[int | None, int]:
        """Where handling stands, for a reader that must not change anything (metrics).

        Returns the offset after the done prefix (the first message not known to be
        handled; None before any was) and how many fetched messages sit in chunks
        not finished yet. Unlike :meth:`advance` it drops no chunk.
        """
        until, unfinished, prefix = self.done_until, 0, True
        for chunk in self._chunks:
            if chunk.remaining:
                prefix = False
                unfinished += chunk.size
            elif prefix:
                until = chunk.last_offset + 1
        return until, unfinished

    def __repr__(self) -> str:
        return (
            f"<PartitionProgress {self.topic}[{self.partition}] done_until={self.done_until} "
            f"committed={self.committed} chunks={len(self._chunks)}>"
        )
