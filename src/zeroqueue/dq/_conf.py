"""DqConf: go-queue's ``dq.DqConf``, key for key (``Beanstalks``, ``Redis``)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from zeroqueue.conf import Conf

__all__ = ["Beanstalk", "DqConf", "RedisConf"]


def _check_endpoint(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"got {value!r}; expected host:port, such as 127.0.0.1:11300")
    return value


class Beanstalk(Conf):
    """One beanstalkd node: where it listens and which tube the jobs go to."""

    model_config = ConfigDict(frozen=True)

    endpoint: str = Field(description="host:port of the beanstalkd server")
    tube: str = Field(description="the tube jobs are put into and reserved from")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return _check_endpoint(value)

    @field_validator("tube")
    @classmethod
    def _tube(cls, value: str) -> str:
        # beanstalkd's own rule for names (protocol.txt), so a bad one fails here, not
        # on the first put with a bare BAD_FORMAT.
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-+/;.$_()")
        if not value or len(value) > 200 or value[0] == "-" or set(value) - allowed:
            raise ValueError(
                f"got {value!r}; expected 1-200 of letters, digits and -+/;.$_() "
                "not starting with '-'"
            )
        return value

    @property
    def host_port(self) -> tuple[str, int]:
        """The endpoint as a ``(host, port)`` pair."""
        host, _, port = self.endpoint.rpartition(":")
        return host.strip("[]"), int(port)


class RedisConf(Conf):
    """go-zero's ``redis.RedisConf``: the Redis that de-duplicates jobs across nodes."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    host: str = Field(description="host:port of Redis (any node of a cluster)")
    type: Literal["node", "cluster"] = Field("node", description="a single node or a cluster")
    user: str = Field("", description="ACL user name (Redis 6+)")
    pass_: str = Field("", alias="Pass", repr=False, description="the password")
    tls: bool = Field(False, description="connect with TLS")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return _check_endpoint(value)

    @property
    def host_port(self) -> tuple[str, int]:
        """The host as a ``(host, port)`` pair."""
        host, _, port = self.host.rpartition(":")
        return host.strip("[]"), int(port)


class DqConf(Conf):
    """A delay queue's nodes and its Redis.

    As a go-zero file writes them::

        DqConf:
          Beanstalks:
            - Endpoint: 127.0.0.1:11300
              Tube: tube
            - Endpoint: 127.0.0.1:11301
              Tube: tube
          Redis:
            Host: 127.0.0.1:6379
            Type: node

    A producer writes each job to two or three of the nodes; a consumer reads from
    all of them and uses Redis to handle each job once.
    """

    model_config = ConfigDict(frozen=True)

    beanstalks: list[Beanstalk] = Field(min_length=1, description="the beanstalkd nodes")
    redis: RedisConf | None = Field(None, description="de-duplication across nodes")

    @model_validator(mode="after")
    def _distinct(self) -> DqConf:
        seen: set[tuple[str, str]] = set()
        for node in self.beanstalks:
            if (node.endpoint, node.tube) in seen:
                raise ValueError(
                    f"Beanstalks: {node.endpoint} tube {node.tube!r} is listed twice;"
                    " expected each node once"
                )
            seen.add((node.endpoint, node.tube))
        return self
