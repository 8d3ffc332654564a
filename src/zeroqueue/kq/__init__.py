"""kq: the Kafka queue — a batching Pusher and a consumer Queue configured by KqConf."""

from zeroqueue.kq.config import KqConf
from zeroqueue.kq.pusher import AsyncPusher, Pusher
from zeroqueue.kq.pusher_conf import PusherConf
from zeroqueue.kq.queue import Queue
from zeroqueue.producer.balancer import Balancer, BalancerFunc

__all__ = ["AsyncPusher", "Balancer", "BalancerFunc", "KqConf", "Pusher", "PusherConf", "Queue"]
