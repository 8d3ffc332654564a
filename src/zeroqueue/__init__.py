"""zeroqueue: go-zero's go-queue for Python services on Kafka."""

from zeroqueue.errors import (
    AuthenticationError,
    BrokerUnavailableError,
    ConfigError,
    ConsumeError,
    DecodeError,
    DeliveryError,
    EmbeddedBrokerError,
    InvalidMessageError,
    MessageTooLargeError,
    PusherClosedError,
    PushError,
    PushTimeoutError,
    ZeroQueueError,
)
from zeroqueue.kq import AsyncPusher, KqConf, Pusher, Queue
from zeroqueue.message import Message

__version__ = "0.1.0"

__all__ = [
    "AsyncPusher",
    "AuthenticationError",
    "BrokerUnavailableError",
    "ConfigError",
    "ConsumeError",
    "DecodeError",
    "DeliveryError",
    "EmbeddedBrokerError",
    "InvalidMessageError",
    "KqConf",
    "Message",
    "MessageTooLargeError",
    "PushError",
    "PushTimeoutError",
    "Pusher",
    "PusherClosedError",
    "Queue",
    "ZeroQueueError",
    "__version__",
]
