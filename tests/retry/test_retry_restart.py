"""A message waiting in a retry topic survives a restart of a group that starts at "latest"."""

from __future__ import annotations

from collections.abc import Callable

from tests.kafka_helpers import eventually, fast_queue_options, running
from zeroqueue import KqConf, Message, Pusher, Queue
from zeroqueue.retry import RetryConf


def test_a_moved_message_is_handled_after_a_restart_with_offset_last(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    # given a queue starting at "latest" (go-queue's default) whose first try of "m" fails
    topic = new_topic(1)
    calls: list[int] = []
    probes: list[str] = []

    def handle(message: Message) -> None:
        if message.value_str == "probe":
            probes.append(message.value_str)
            return
        calls.append(message.attempt)
        if message.attempt == 1:
            raise ValueError("the first try fails")

    conf = KqConf(
        Brokers=brokers, Group=group, Topic=topic, Retry=RetryConf(Attempts=1, Delays=["3s"])
    )
    first = Queue(conf, handle, **fast_queue_options())
    with running(first):
        with Pusher(brokers, topic) as pusher:
            # A queue at "latest" starts where the end is once it looked (after its
            # assignment): until a probe arrives, "m" could land before that, unseen.
            def a_probe_arrived() -> bool:
                pusher.push("probe")
                pusher.flush()
                return bool(probes)

            assert eventually(a_probe_arrived)
            pusher.push("m")
        # when "m" moved to the retry topic, the queue stops before it is due
        assert eventually(lambda: calls == [1])
    # then the next queue of the group, with no commit on the retry topic, still gets it
    second = Queue(conf, handle, **fast_queue_options())
    with running(second):
        assert eventually(lambda: calls == [1, 2], timeout=30)
