"""Client settings helpers: the remembered cause of connection trouble."""

from __future__ import annotations

from confluent_kafka import KafkaError

from zeroqueue._kafka.settings import ClientErrors


def test_the_specific_cause_outlives_all_brokers_down_and_says_its_age() -> None:
    errors = ClientErrors()
    assert errors.hint() == ""
    errors.record(KafkaError(KafkaError._TRANSPORT, "Connection refused"))
    errors.record(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    assert errors.hint() == " (last client error, 0s ago: Connection refused)"


def test_an_unverified_certificate_is_traced_to_the_ca_setting_in_either_wording() -> None:
    # librdkafka's short wording names no setting; its long one names only its own
    short = "ssl://127.0.0.1:9093/bootstrap: error:0A000086:SSL routines::certificate verify failed"
    long = f"{short}: broker certificate could not be verified, verify that ssl.ca.location is set"
    for wording in (short, long):
        errors = ClientErrors()
        errors.record(KafkaError(KafkaError._SSL, wording))
        hint = errors.hint()
        assert wording in hint
        assert "CaFile/ca_file (ssl.ca.location)" in hint


def test_other_client_errors_get_no_certificate_advice() -> None:
    errors = ClientErrors()
    errors.record(KafkaError(KafkaError._TRANSPORT, "Connection refused"))
    assert "CaFile" not in errors.hint()
