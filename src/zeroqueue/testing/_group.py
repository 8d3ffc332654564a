"""Consumer groups of the in-memory broker: members, committed offsets, assignment.

Partitions are shared the way a cooperative rebalance shares them: each
subscribed partition goes to one member (round robin over the members
subscribed to its topic, in the order they joined); a partition that moves is
first revoked by its owner (which drains and commits it, on its fetch thread),
and only then assigned to its next owner, which starts from the committed
offset. Nothing waits for a join: a member gets its partitions on its first
fetch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Group", "Member", "TopicPartitionKey"]

TopicPartitionKey = tuple[str, int]


class Member(Protocol):
    """What the group needs of a member (a MemorySource)."""

    subscription: tuple[str, ...]
    owned: dict[TopicPartitionKey, int]
    to_assign: set[TopicPartitionKey]
    to_revoke: set[TopicPartitionKey]


def subscribes(member: Member, topic: str) -> bool:
    """Whether ``member``'s subscription (names and ``^regex`` patterns) takes ``topic``."""
    for wanted in member.subscription:
        if wanted.startswith("^"):
            if re.match(wanted, topic):
                return True
        elif wanted == topic:
            return True
    return False


@dataclass
class Group:
    """One consumer group: its members in join order and its committed offsets."""

    name: str
    members: list[Member] = field(default_factory=list)
    committed: dict[TopicPartitionKey, int] = field(default_factory=dict)

    def owner(self, key: TopicPartitionKey) -> Member | None:
        """The member that owns or is about to own ``key``."""
        for member in self.members:
            if key in member.owned or key in member.to_assign:
                return member
        return None

    def rebalance(self, topics: dict[str, int]) -> None:
        """Recompute who owns what, given each topic's partition count; queue the moves."""
        target: dict[int, set[TopicPartitionKey]] = {id(m): set() for m in self.members}
        for topic in sorted(topics):
            takers = [m for m in self.members if subscribes(m, topic)]
            if not takers:
                continue
            for partition in range(topics[topic]):
                target[id(takers[partition % len(takers)])].add((topic, partition))
        for member in self.members:
            wanted = target[id(member)]
            # Not handed over yet: simply not given.
            member.to_assign &= wanted
            member.to_revoke |= {key for key in member.owned if key not in wanted}
        for member in self.members:
            for key in target[id(member)]:
                if key in member.owned or key in member.to_assign:
                    continue
                if self._held_elsewhere(key, member):
                    continue  # assigned once its owner revoked it
                member.to_assign.add(key)

    def _held_elsewhere(self, key: TopicPartitionKey, member: Member) -> bool:
        return any(
            key in other.owned or key in other.to_assign
            for other in self.members
            if other is not member
        )

    def leave(self, member: Member) -> None:
        """Drop ``member`` (its partitions are free for the others)."""
        if member in self.members:
            self.members.remove(member)

    def owned_keys(self) -> Iterable[TopicPartitionKey]:
        """Every partition a member owns now."""
        for member in self.members:
            yield from member.owned
