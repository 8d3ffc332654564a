"""zeroqueue: go-zero's go-queue for Python services on Kafka."""

from zeroqueue.errors import (
    AuthenticationError,
    BrokerUnavailableError,
    ConfigError,
    ConsumeError,
    DecodeError,
    DelayQueueError,
    DeliveryError,
    EmbeddedBrokerError,
    InvalidDelayError,
    InvalidMessageError,
    JobWriteError,
    MessageTooLargeError,
    PusherClosedError,
    PushError,
    PushTimeoutError,
    ServerUnavailableError,
    ServiceError,
    ZeroQueueError,
)
from zeroqueue.kq import AsyncPusher, KqConf, Pusher, PusherConf, Queue
from zeroqueue.message import Message
from zeroqueue.server import Broker, Server

__version__ = "0.1.0"

__all__ = [
    "AsyncPusher",
    "AuthenticationError",
    "Broker",
    "BrokerUnavailableError",
    "ConfigError",
    "ConsumeError",
    "DecodeError",
    "DelayQueueError",
    "DeliveryError",
    "EmbeddedBrokerError",
    "InvalidDelayError",
    "InvalidMessageError",
    "JobWriteError",
    "KqConf",
    "Message",
    "MessageTooLargeError",
    "PushError",
    "PushTimeoutError",
    "Pusher",
    "PusherClosedError",
    "PusherConf",
    "Queue",
    "Server",
    "ServerUnavailableError",
    "ServiceError",
    "ZeroQueueError",
    "__version__",
]
