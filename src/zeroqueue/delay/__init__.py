"""Delayed delivery on Kafka: ``pusher.push(value, delay=30)`` reaches handlers once due.

A delayed message waits outside its topic, in the topic's delay tiers (topics
where every message waits the same time: ``orders.delay-1s``, ``orders.delay-4s``,
... up to about 18 hours, each 4 times the last), hopping from tier to tier,
largest first, and into its topic when due. A consumer holds a tier partition at
its first message not due, so nothing polls in a loop and messages already due
never wait behind later ones. Every zeroqueue :class:`~zeroqueue.Queue` of a
topic releases its delayed messages (once, in a consumer group shared by all
of them), so Go and other consumers of the topic see a message only when due.
The first delayed push to a topic creates its tiers; :func:`create_tiers` makes
them ahead of time.
"""

from zeroqueue.delay._headers import DUE
from zeroqueue.delay._releaser import releaser_group
from zeroqueue.delay._tiers import MAX_DELAY, QUANTUM, tier_topics
from zeroqueue.delay._topics import ensure_tier_topics as create_tiers

__all__ = ["DUE", "MAX_DELAY", "QUANTUM", "create_tiers", "releaser_group", "tier_topics"]
