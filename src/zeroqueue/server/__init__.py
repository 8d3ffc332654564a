"""The Broker/Server face: typed messages through codecs, kratos-transport's shape.

``Broker.publish(topic, value)`` encodes and pushes; a :class:`Server`'s
subscribers decode each message into their handler's parameter type. Both
stand on the Pusher and Queue: same batching, ordering, commits and retries.
"""

from zeroqueue.server._broker import Broker
from zeroqueue.server._server import Server, Subscription
from zeroqueue.server._typed import typed_handler

__all__ = ["Broker", "Server", "Subscription", "typed_handler"]
