"""PusherConf: a Pusher's config section, as go-zero services write ``KqPusherConf``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from zeroqueue._checks import client_id_name
from zeroqueue._kafka.settings import Brokers, SaslMechanism
from zeroqueue.conf import Conf, Duration

__all__ = ["PusherConf"]

#: The balancers a config file can name (a callable is given in code).
BalancerName = Literal["hash", "murmur2", "round_robin", "least_bytes"]


class PusherConf(Conf):
    """Where and how a Pusher pushes: ``Pusher.from_conf(conf.kq_pusher_conf)``.

    go-zero's tutorial reuses ``kq.KqConf`` for its ``KqPusherConf`` section and
    reads only ``Brokers`` and ``Topic``; such a section loads unchanged (its
    ``Group`` and other consumer keys are ignored). The Pusher's own options may
    be set here too, in go-zero's spelling (``ChunkSize``, ``FlushInterval:
    5ms``, ``SyncPush``, ``AllowAutoTopicCreation``, ``Balancer``).
    """

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    name: str = Field("", description="the Kafka client id")
    brokers: Brokers = Field(description="a list of Kafka brokers as host:port")
    topic: str = Field(description="the topic to push to")
    ca_file: str = Field("", description="PEM CA bundle; enables TLS with verification")
    username: str = Field("", description="SASL user name")
    password: str = Field("", repr=False, description="SASL password")
    sasl_mechanism: SaslMechanism = Field("PLAIN", description="PLAIN, SCRAM-SHA-256/512")
    chunk_size: int = Field(1024 * 1024, ge=1, description="bytes per batch (WithChunkSize)")
    flush_interval: Duration | None = Field(
        None, description="how long a batch may wait to fill (WithFlushInterval)"
    )
    sync_push: bool = Field(False, description="each push waits for the broker (WithSyncPush)")
    allow_auto_topic_creation: bool = Field(False, description="let the broker create the topic")
    balancer: BalancerName = Field("hash", description="which partition a key goes to")

    _check_name = field_validator("name")(client_id_name)

    @field_validator("topic")
    @classmethod
    def _check_topic(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a non-empty topic name")
        return value

    def pusher_options(self) -> dict[str, Any]:
        """The Pusher keyword options this section sets."""
        options: dict[str, Any] = {
            "chunk_size": self.chunk_size,
            "sync_push": self.sync_push,
            "allow_auto_topic_creation": self.allow_auto_topic_creation,
            "balancer": self.balancer,
            "username": self.username,
            "password": self.password,
            "sasl_mechanism": self.sasl_mechanism,
            "ca_file": self.ca_file,
            "client_id": self.name,
        }
        if self.flush_interval is not None:
            options["flush_interval"] = self.flush_interval
        return options
