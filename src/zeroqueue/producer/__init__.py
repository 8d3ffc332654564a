"""The producer engine: one librdkafka producer, delivery bookkeeping, and its options.

Written once and shared by every face that pushes: the go-queue style
``kq.Pusher``/``AsyncPusher``, and the retry and dead-letter moves of a Queue.
The core takes the topic with every message. Kafka I/O is confluent-kafka's;
balancers that choose a partition in Python and partition counts are plain
Python.
"""
