"""Retries, retry topics and a dead-letter topic, for a Queue (and every consumer face).

* :class:`RetryConf` (KqConf's ``Retry:`` section, or ``Queue(retry=...)``): tries
  in place with backoff and jitter, then one retry topic per delay, then the
  dead-letter topic.
* :class:`RetryLater` and :class:`DeadLetter`: what a handler raises to ask for a
  retry after a delay, or to dead-letter its message now.
* :mod:`zeroqueue.retry.headers`: the headers a moved message carries (Spring
  Kafka's names and encodings).
* :func:`summarize` and :func:`redrive`: what ``zeroqueue dlq list`` and
  ``zeroqueue dlq redrive`` do.
"""

from zeroqueue.retry import _headers as headers
from zeroqueue.retry._conf import RetryConf, retry_topic_name
from zeroqueue.retry._dlq import DeadLetterSummary, RedriveReport, redrive, summarize
from zeroqueue.retry._signals import DeadLetter, RetryLater

__all__ = [
    "DeadLetter",
    "DeadLetterSummary",
    "RedriveReport",
    "RetryConf",
    "RetryLater",
    "headers",
    "redrive",
    "retry_topic_name",
    "summarize",
]
