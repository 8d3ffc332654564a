"""Client settings helpers: the remembered cause of connection trouble."""

from __future__ import annotations

from confluent_kafka import KafkaError

from zeroqueue._kafka.settings import ClientErrors


def test_the_specific_cause_outlives_all_brokers_down_and_says_its_age() -> None:
    errors = ClientErrors()
    assert errors.hint() == ""
    errors.record(KafkaError(KafkaError._SSL, "certificate verify failed"))
    errors.record(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    assert errors.hint() == " (last client error, 0s ago: certificate verify failed)"
