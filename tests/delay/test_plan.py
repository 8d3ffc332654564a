"""The delay tiers and the hops of a delayed message: pure logic, no broker."""

from __future__ import annotations

import pytest

from zeroqueue._kafka.headers import decode_int, last
from zeroqueue.delay import _headers as h
from zeroqueue.delay._plan import Route, first_hop, next_hop
from zeroqueue.delay._push import delay_seconds
from zeroqueue.delay._tiers import MAX_DELAY, QUANTUM, TIERS, next_tier, ticks_of, tier_topic
from zeroqueue.delay._topics import ensure_tier_topics
from zeroqueue.errors import ConsumeError, InvalidDelayError


def test_tiers_are_named_after_their_length() -> None:
    names = [tier_topic("orders", tier) for tier in TIERS]
    assert names[:4] == [
        "orders.delay-62.5ms",
        "orders.delay-250ms",
        "orders.delay-1s",
        "orders.delay-4s",
    ]
    assert names[-1] == "orders.delay-65536s"
    assert len(set(names)) == len(TIERS)


def test_a_delay_rounds_up_to_a_quantum_never_down() -> None:
    assert ticks_of(0) == 0
    assert ticks_of(0.001) == 1
    assert ticks_of(1.0) == 16
    assert ticks_of(1.01) == 17
    assert next_tier(17) == 16
    assert next_tier(3) == 1
    assert next_tier(10**9) == TIERS[-1]


def _walk(delay: float, now: float) -> tuple[list[str], float, list[tuple[str, bytes | None]]]:
    """Follow a message's hops, each released exactly when due; return where it went."""
    hop = first_hop("orders", delay, now, [("trace", b"t-1")], Route(None, "murmur2"))
    assert hop is not None
    topics = [hop.topic]
    released_at = now
    while not hop.final:
        released_at = decode_int(last(hop.headers, h.HOP_DUE)) / 1000  # type: ignore[operator]
        hop = next_hop(hop.topic, hop.headers)
        topics.append(hop.topic)
    return topics, released_at, hop.headers


@pytest.mark.parametrize("delay", [0.05, 1.0, 2.5, 37.3, 1800.0, 86400 * 3 + 0.7])
def test_the_hops_add_up_to_the_delay_rounded_up(delay: float) -> None:
    now = 1_800_000_000.0
    topics, released_at, headers = _walk(delay, now)
    assert topics[-1] == "orders"
    # Released within one quantum after due (rounded up), never before; ms rounding aside.
    assert now + delay - 0.002 <= released_at <= now + delay + QUANTUM + 0.002
    # At most three hops per tier below the top one.
    assert len(topics) - 1 <= 3 * (len(TIERS) - 1) + delay / (TIERS[-1] * QUANTUM) + 1
    names = [name for name, _ in headers]
    assert ("trace", b"t-1") in headers
    assert h.DUE in names
    assert not set(names) & h.ROUTING


def test_the_released_message_keeps_its_route() -> None:
    hop = first_hop("orders", 1.0, 1_800_000_000.0, [], Route(partition=3))
    assert hop is not None
    while not hop.final:
        hop = next_hop(hop.topic, hop.headers)
    assert hop.route == Route(partition=3)
    murmur = first_hop("orders", 1.0, 1_800_000_000.0, [], Route(None, "murmur2"))
    assert murmur is not None
    assert next_hop(murmur.topic, murmur.headers).route == Route(None, "murmur2")


def test_no_delay_means_no_hop_and_a_foreign_message_is_refused() -> None:
    assert first_hop("orders", 0, 1_800_000_000.0, [], Route()) is None
    with pytest.raises(ConsumeError, match="has no zeroqueue-delay-due header"):
        next_hop("orders.delay-1s", [("x", b"1")])


def test_delays_are_checked_naming_what_is_wrong() -> None:
    assert delay_seconds(1.5, None) == 1.5
    with pytest.raises(InvalidDelayError, match="delay: got -1; expected seconds >= 0"):
        delay_seconds(-1, None)
    with pytest.raises(InvalidDelayError, match="expected one of them"):
        delay_seconds(1, 2.0)
    with pytest.raises(InvalidDelayError, match="in the past"):
        delay_seconds(None, 1.0)
    with pytest.raises(InvalidDelayError, match="expected at most"):
        delay_seconds(MAX_DELAY + 1, None)
    # NaN passes every comparison; inf is no time either.
    with pytest.raises(InvalidDelayError, match="delay: got nan; expected a finite time"):
        delay_seconds(float("nan"), None)
    with pytest.raises(InvalidDelayError, match="at: got nan; expected a finite time"):
        delay_seconds(None, float("nan"))
    with pytest.raises(InvalidDelayError, match="at: got inf; expected a finite time"):
        delay_seconds(None, float("inf"))


def test_a_topic_too_long_for_its_tier_names_is_refused_before_the_cluster_is_asked() -> None:
    # no broker listens on port 1: the name is refused before any connection
    with pytest.raises(InvalidDelayError, match=r"expected a topic of at most 236 characters"):
        ensure_tier_topics(["127.0.0.1:1"], "t" * 237)
