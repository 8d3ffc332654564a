"""The fixtures that start real redis-server and beanstalkd processes work."""

from __future__ import annotations

import socket


def _exchange(port: int, request: bytes, until: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        reply = b""
        while until not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        return reply


def test_redis_fixture_serves_commands(redis_port: int) -> None:
    reply = _exchange(redis_port, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n", b"\r\n")
    assert reply == b"+OK\r\n"
    assert _exchange(redis_port, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", b"v1\r\n") == b"$2\r\nv1\r\n"


def test_beanstalkd_fixture_serves_jobs(beanstalkd_port: int) -> None:
    with socket.create_connection(("127.0.0.1", beanstalkd_port), timeout=5) as sock:
        stream = sock.makefile("rwb")
        stream.write(b"put 0 0 60 5\r\nhello\r\n")
        stream.flush()
        assert stream.readline().startswith(b"INSERTED ")
        stream.write(b"reserve-with-timeout 5\r\n")
        stream.flush()
        header = stream.readline()
        assert header.startswith(b"RESERVED ")
        assert stream.readline() == b"hello\r\n"
