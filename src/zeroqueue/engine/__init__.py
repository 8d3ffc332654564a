"""The consumer engine: fetch -> bounded buffer -> key lanes -> processors -> ordered commit.

Written once and shared by every consumer face (the go-queue style ``kq.Queue``
today). Kafka I/O lives in :mod:`~zeroqueue.engine.source`; ordering
(:mod:`~zeroqueue.engine.lanes`) and offset tracking
(:mod:`~zeroqueue.engine.offsets`) are plain Python.
"""
