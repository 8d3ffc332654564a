"""The zeroqueue exception tree.

Every error zeroqueue raises derives from :class:`ZeroQueueError`, so one
``except ZeroQueueError`` catches them all. Errors from confluent-kafka are
translated into this tree where they cross into zeroqueue, with the original
chained as ``__cause__``::

    ZeroQueueError
    ├── ConfigError                 a setting is invalid (also a ValueError)
    ├── BrokerUnavailableError      no broker of Brokers answered in time
    │   └── AuthenticationError     the cluster refused the SASL login or the TLS handshake
    ├── EmbeddedBrokerError         the embedded Tansu broker cannot start or run
    ├── PushError                   a message was not (or may not have been) delivered
    │   ├── PusherClosedError       push after close()
    │   ├── InvalidMessageError     key, value or headers of the wrong type (also a TypeError)
    │   ├── MessageTooLargeError    bigger than the client or broker limit
    │   ├── PushTimeoutError        local buffer full, or flush() ran out of time
    │   └── DeliveryError           the broker did not acknowledge; names how many and why
    ├── InvalidDelayError           a delay or due time that cannot be met (also a ValueError)
    ├── ConsumeError                a message could not be handled, or a processor crashed
    │   └── DecodeError             key or value is not valid UTF-8 for a str handler
    ├── DelayQueueError             a beanstalkd delay-queue operation failed
    │   ├── ServerUnavailableError  a beanstalkd node or Redis did not answer
    │   └── JobWriteError           fewer than two nodes took a job (the partial write revoked)
    └── ServiceError                a service of a ServiceGroup failed; the others were stopped
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "AuthenticationError",
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
    "MessageTooLargeError",
    "PushError",
    "PushTimeoutError",
    "PusherClosedError",
    "ServerUnavailableError",
    "ServiceError",
    "ZeroQueueError",
]


class ZeroQueueError(Exception):
    """Root of every error raised by zeroqueue."""


class ConfigError(ZeroQueueError, ValueError):
    """A configuration value is invalid.

    The message names the field, the value given and what is allowed, e.g.
    ``KqConf.Offset: got 'middle'; expected one of 'first', 'last'``.
    """


class BrokerUnavailableError(ZeroQueueError):
    """No broker in ``Brokers`` answered within the allotted time."""


class AuthenticationError(BrokerUnavailableError):
    """The cluster answered but refused this client: retrying will not help.

    The broker refused the SASL login (Username/Password, SaslMechanism), or
    the TLS handshake failed (the broker's certificate did not verify against
    CaFile). Raised as soon as librdkafka reports it, instead of after the
    whole connect timeout. It is a :class:`BrokerUnavailableError`, so code
    that catches that still catches it; catch this one first to tell a
    configuration to fix from a cluster that is down.
    """


class EmbeddedBrokerError(ZeroQueueError):
    """The embedded Kafka-compatible broker is missing, failed to start or died."""


class PushError(ZeroQueueError):
    """A message could not be handed to Kafka or was not acknowledged by it."""


class PusherClosedError(PushError):
    """``push`` was called on a pusher that has been closed."""


class InvalidMessageError(PushError, TypeError):
    """A key, value or header has a type that cannot be sent."""


class MessageTooLargeError(PushError):
    """A message is larger than the client's or the broker's size limit."""

    def __init__(self, message: str, *, size: int, limit: int | None) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class PushTimeoutError(PushError):
    """The local buffer stayed full, or in-flight messages outlived a flush timeout."""


class DeliveryError(PushError):
    """Kafka did not acknowledge one or more messages.

    ``count`` is how many messages failed; ``reasons`` maps each distinct
    failure reason to how many messages failed for it; ``in_flight`` how many
    others were still unacknowledged when ``flush(timeout)`` ran out of time.
    """

    def __init__(
        self, message: str, *, count: int, reasons: Mapping[str, int], in_flight: int = 0
    ) -> None:
        super().__init__(message)
        self.count = count
        self.reasons = dict(reasons)
        #: Messages still unacknowledged when a flush(timeout) gave up (not failures:
        #: a later flush raises them if they fail).
        self.in_flight = in_flight


class ConsumeError(ZeroQueueError):
    """A consumed message could not be handled, or a processor failed outside the handler.

    In the second case ``Queue.start()`` raises it once the queue has stopped,
    with the failure chained as ``__cause__``.
    """


class DecodeError(ConsumeError):
    """A key or value could not be decoded for a handler that takes ``str``."""


class InvalidDelayError(ZeroQueueError, ValueError):
    """A delay below zero, a due time in the past, or a delay longer than supported."""


class DelayQueueError(ZeroQueueError):
    """A delay-queue (beanstalkd) operation failed."""


class ServerUnavailableError(DelayQueueError):
    """A beanstalkd node or the Redis a delay queue uses did not answer.

    ``endpoint`` is the ``host:port`` that did not answer.
    """

    def __init__(self, message: str, *, endpoint: str) -> None:
        super().__init__(message)
        self.endpoint = endpoint


class JobWriteError(DelayQueueError):
    """Fewer than two nodes took a job; the copies written were revoked.

    ``failures`` maps each node that failed (``endpoint/tube``) to why.
    """

    def __init__(self, message: str, *, failures: Mapping[str, str]) -> None:
        super().__init__(message)
        self.failures = dict(failures)


class ServiceError(ZeroQueueError):
    """A service of a :class:`~zeroqueue.service.ServiceGroup` failed; the others were stopped.

    ``__cause__`` is what the service raised (None when it ended by itself).
    """
