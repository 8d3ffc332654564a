"""What each processor has in hand, and a report of messages held too long.

Every processor (a worker thread, an asyncio task, the fetch thread while it
handles) owns a :class:`Hand` and writes the record it is about to handle into
it: one attribute store per message, the only per-message cost. Nothing reads
it on the hot path. :class:`StuckReport` reads all hands now and then (the
fetch loop calls :meth:`StuckReport.scan` about once a second) and reports a
record that stayed in one hand for ``after`` seconds or longer: a handler that
hangs on it, or a retry series that does not end. The report names the topic,
partition, offset and key and how long, logs it at WARNING on
``zeroqueue.engine`` again at each doubling of that time, and says so at INFO
when the record is finally let go; :meth:`StuckReport.stuck` gives the same to
the metrics collector.

The precision is the scan interval: a record is timed from the first scan that
saw it in hand, which costs nothing per message, unlike a timestamp per call.

The same scan counts the hands held by one call for :data:`LONG_CALL` or more
(:attr:`HandRegistry.long_held`): the executor wakes that many more workers, as
it does for workers waiting out a retry pause, so a handler that hangs holds
its own lane and no one else's, even while the governor allows one processor.
"""

from __future__ import annotations

import logging
import threading
from typing import NamedTuple

from confluent_kafka import Message as KafkaMessage

__all__ = ["LONG_CALL", "Hand", "HandRegistry", "StuckMessage", "StuckReport"]

#: Seconds after which a processor held by one record no longer counts as working.
LONG_CALL = 1.0

_log = logging.getLogger("zeroqueue.engine")


class Hand:
    """The record one processor is handling now (None between work items).

    ``tripped`` is set by the watchdog when the fetch thread's stretch of
    handling runs long (see :mod:`zeroqueue.engine.watchdog`); a worker's hand
    never trips.
    """

    __slots__ = ("batch", "pausing", "record", "replaceable", "tripped")

    def __init__(self) -> None:
        self.record: KafkaMessage | None = None
        self.tripped = False
        #: The batch the fetch thread handles without lanes (see LaneRunner.run_direct).
        self.batch: list[KafkaMessage] | None = None
        #: Whether a new fetch thread may take over from this one, should it get stuck.
        self.replaceable = False
        #: Whether its processor waits out a retry pause (counted apart: LaneRunner.pausing).
        self.pausing = False


class _PerThread(threading.local):
    hand: Hand | None = None


class HandRegistry:
    """Every live hand of one engine: one per processor thread, and per async task."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hands: dict[int, Hand] = {}
        self._mine = _PerThread()
        #: Hands held by one record for LONG_CALL or more, at the last scan.
        self.long_held = 0

    def mine(self) -> Hand:
        """The calling thread's hand, made (and registered) on first use."""
        hand = self._mine.hand
        if hand is None:
            hand = self._mine.hand = self.add(Hand())
        return hand

    def add(self, hand: Hand) -> Hand:
        """Register a hand (an async task's) and return it."""
        with self._lock:
            self._hands[id(hand)] = hand
        return hand

    def remove(self, hand: Hand) -> None:
        """Forget a hand whose processor ended."""
        with self._lock:
            self._hands.pop(id(hand), None)

    def forget_mine(self) -> None:
        """Forget the calling thread's hand (a fetch thread that hands over and exits)."""
        hand = self._mine.hand
        if hand is not None:
            self._mine.hand = None
            self.remove(hand)

    def snapshot(self) -> list[Hand]:
        """The hands now, for a reader on another thread."""
        with self._lock:
            return list(self._hands.values())


class StuckMessage(NamedTuple):
    """A record held in one hand for at least the report's ``after`` seconds."""

    topic: str
    partition: int
    offset: int
    seconds: float


class _Seen:
    __slots__ = ("record", "reported", "since")

    def __init__(self, record: KafkaMessage, since: float) -> None:
        self.record = record
        self.since = since
        #: Seconds at which it was last reported (0: not yet).
        self.reported = 0.0


class StuckReport:
    """Reports records that stay in one hand ``after`` seconds or longer."""

    def __init__(self, hands: HandRegistry, after: float, name: str) -> None:
        self.hands = hands
        self.after = after
        self.name = name
        self._lock = threading.Lock()
        self._seen: dict[int, _Seen] = {}

    @property
    def interval(self) -> float:
        """How often :meth:`scan` should run: the report's precision."""
        return min(1.0, self.after / 4)

    def scan(self, now: float) -> bool:
        """Look at every hand; log records held ``after`` seconds, and their release.

        Returns whether more hands are held long than at the last scan (the
        executor may then wake more workers).
        """
        hands = self.hands.snapshot()
        long_held = 0
        with self._lock:
            seen, fresh = self._seen, {}
            for hand in hands:
                record = hand.record
                if record is None:
                    continue
                entry = seen.get(id(hand))
                if entry is None or entry.record is not record:
                    entry = _Seen(record, now)
                held = now - entry.since
                if held >= LONG_CALL and not hand.pausing:
                    # A worker in a retry pause is counted among the pausing already.
                    long_held += 1
                if held >= self.after and held >= 2 * entry.reported:
                    entry.reported = held
                    _log.warning(
                        "%s: a handler has held %s for %.0fs (key %r); that key and the keys"
                        " sharing its lane wait behind it, the others go on",
                        self.name,
                        _where(record),
                        held,
                        record.key(),
                    )
                fresh[id(hand)] = entry
            for key, entry in seen.items():
                if entry.reported and fresh.get(key) is not entry:
                    _log.info(
                        "%s: %s was let go after about %.0fs",
                        self.name,
                        _where(entry.record),
                        now - entry.since,
                    )
            self._seen = fresh
        more = long_held > self.hands.long_held
        self.hands.long_held = long_held
        return more

    def stuck(self, now: float) -> list[StuckMessage]:
        """Records held ``after`` seconds or longer at the last scan, and for how long now."""
        with self._lock:
            entries = list(self._seen.values())
        found = []
        for entry in entries:
            held = now - entry.since
            if held >= self.after:
                record = entry.record
                offset = record.offset()
                found.append(
                    StuckMessage(
                        record.topic() or "",
                        record.partition() or 0,
                        -1 if offset is None else offset,
                        held,
                    )
                )
        return found


def _where(record: KafkaMessage) -> str:
    return f"{record.topic()}[{record.partition()}]@{record.offset()}"
