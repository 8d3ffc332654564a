"""The delay queue on beanstalkd, as go-queue's ``dq``: schedule jobs, handle each once.

A :class:`Producer` writes each job to two or three beanstalkd nodes (so one
node down loses nothing) in go-queue's format, so Go and Python share tubes; a
:class:`Consumer` reads every node and, through Redis, handles each job once,
no earlier than due::

    conf = zeroqueue.conf.load("etc/config.yaml", DqConf, key="DqConf")
    producer = Producer.from_conf(conf)
    job_id = producer.delay(b"remind alice", 30)   # or at(body, datetime)
    producer.revoke(job_id)

    Consumer(conf, lambda body: print(body)).start()
"""

from zeroqueue.dq._buried import BuriedJob, buried, kick
from zeroqueue.dq._conf import Beanstalk, DqConf, RedisConf
from zeroqueue.dq._consumer import Consumer, DqErrorHandler
from zeroqueue.dq._job import DqHandler, Job
from zeroqueue.dq._producer import Producer

__all__ = [
    "Beanstalk",
    "BuriedJob",
    "Consumer",
    "DqConf",
    "DqErrorHandler",
    "DqHandler",
    "Job",
    "Producer",
    "RedisConf",
    "buried",
    "kick",
]
