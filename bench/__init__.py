"""Benchmarks of zeroqueue against the raw confluent-kafka client it wraps.

Run them all with ``python -m bench`` (``--quick`` for a smoke run), or one with
``python -m bench.push`` / ``python -m bench.consume``. Each starts its own
embedded Tansu broker; none needs a Kafka cluster.
"""
