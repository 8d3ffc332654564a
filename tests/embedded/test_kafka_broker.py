"""KafkaBroker runs Apache Kafka itself, says what is missing, and cleans up after itself."""

from __future__ import annotations

import concurrent.futures
import shutil
import stat
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.kafka_helpers import process_exists, read_topic
from zeroqueue import EmbeddedBrokerError
from zeroqueue.embedded import KafkaBroker, fetch_kafka_libs, find_java, find_kafka_libs
from zeroqueue.embedded._kafka_libs import kafka_libs_cache


def _fake_java(tmp_path: Path, version_line: str) -> Path:
    java = tmp_path / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IXUSR)
    return java


def test_no_java_says_how_to_install_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EmbeddedBrokerError, match=r"Java 17 or later .* install a JDK"):
        find_java()
    with pytest.raises(EmbeddedBrokerError, match=r"Java 17 or later"):
        KafkaBroker(libs="/nonexistent").start()


def test_an_old_java_is_named_with_its_version(tmp_path: Path) -> None:
    java = _fake_java(tmp_path, 'openjdk version "11.0.22" 2024-01-16')
    with pytest.raises(EmbeddedBrokerError, match=r"is Java 11; Apache Kafka 4 needs Java 17"):
        find_java(java)
    java8 = _fake_java(tmp_path, 'java version "1.8.0_402"')
    with pytest.raises(EmbeddedBrokerError, match=r"is Java 8;"):
        find_java(java8)


def test_a_recent_java_is_accepted(tmp_path: Path) -> None:
    java = _fake_java(tmp_path, 'openjdk version "21.0.5" 2024-10-15')
    assert find_java(java) == str(java)


def test_missing_jars_say_how_to_get_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # given no jars anywhere: no KAFKA_HOME, no override, an empty cache
    monkeypatch.delenv("KAFKA_HOME", raising=False)
    monkeypatch.delenv("ZEROQUEUE_KAFKA_LIBS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(EmbeddedBrokerError, match=r"No Apache Kafka jars found") as found:
        find_kafka_libs()
    message = str(found.value)
    assert "KAFKA_HOME" in message
    assert "zeroqueue kafka-libs" in message
    assert str(tmp_path / "cache") in message
    # and a KAFKA_HOME or override that holds no jars is named as such
    monkeypatch.setenv("KAFKA_HOME", str(tmp_path))
    with pytest.raises(EmbeddedBrokerError, match=r"KAFKA_HOME=.* has no libs/kafka_2.13"):
        find_kafka_libs()
    monkeypatch.setenv("ZEROQUEUE_KAFKA_LIBS", str(tmp_path))
    with pytest.raises(EmbeddedBrokerError, match=r"ZEROQUEUE_KAFKA_LIBS=.* holds no Apache"):
        find_kafka_libs()


def test_a_filled_cache_is_used_without_maven(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # given a cache that holds the jars, and no Maven on PATH
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = kafka_libs_cache()
    cache.mkdir(parents=True)
    (cache / "kafka_2.13-4.4.0.jar").write_bytes(b"")
    monkeypatch.setenv("PATH", "/nonexistent")
    # then fetching downloads nothing (it would fail without mvn) and finding finds it
    assert fetch_kafka_libs() == cache
    monkeypatch.delenv("KAFKA_HOME", raising=False)
    monkeypatch.delenv("ZEROQUEUE_KAFKA_LIBS", raising=False)
    assert find_kafka_libs() == cache


def test_two_processes_fetching_at_once_both_get_the_jars(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # given a Maven that downloads the jars while another process fills the cache first
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cache = kafka_libs_cache()
    jar = "kafka_2.13-4.4.0.jar"
    mvn = tmp_path / "bin" / "mvn"
    mvn.parent.mkdir()
    mvn.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do case $a in -DoutputDirectory=*) out=${a#*=};; esac; done\n'
        f'mkdir -p "$out" "{cache}" && touch "$out/{jar}" "{cache}/{jar}" "{cache}/theirs"\n'
    )
    mvn.chmod(0o755)
    monkeypatch.setenv("PATH", f"{mvn.parent}:/usr/bin:/bin")
    # then the loser of the race takes the winner's cache instead of failing
    assert fetch_kafka_libs() == cache
    assert (cache / "theirs").exists()
    assert sorted(path.name for path in cache.parent.iterdir()) == [".lock", "libs"]  # no staging


def _counting_maven(bin_dir: Path, runs: Path) -> None:
    """A mvn that logs each run and takes a moment to put a Kafka jar where it is asked."""
    mvn = bin_dir / "mvn"
    bin_dir.mkdir()
    mvn.write_text(
        "#!/bin/sh\n"
        f'echo run >> "{runs}"\n'
        "sleep 0.5\n"
        'for a in "$@"; do case $a in -DoutputDirectory=*) out=${a#*=};; esac; done\n'
        'mkdir -p "$out" && touch "$out/kafka_2.13-4.4.0.jar"\n'
    )
    mvn.chmod(0o755)


def test_fetches_at_once_run_maven_once_and_all_get_the_jars(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # given an empty cache, and a Maven that is slow enough for the fetches to meet
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    runs = tmp_path / "runs"
    _counting_maven(tmp_path / "bin", runs)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    # when three fetch at once (each opens the lock on its own, as processes do)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        found = list(pool.map(lambda _: fetch_kafka_libs(), range(3)))
    # then Maven ran once, and every one of them got the filled cache
    assert found == [kafka_libs_cache()] * 3
    assert runs.read_text().splitlines() == ["run"]


def test_a_cache_left_without_jars_is_fetched_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _counting_maven(tmp_path / "bin", tmp_path / "runs")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    cache = kafka_libs_cache()
    cache.mkdir(parents=True)
    (cache / "half-copied.jar").write_bytes(b"")
    assert fetch_kafka_libs() == cache
    assert sorted(path.name for path in cache.iterdir()) == ["kafka_2.13-4.4.0.jar"]
    # and a file where the cache belongs is replaced as well
    shutil.rmtree(cache)
    cache.write_text("not a directory")
    assert fetch_kafka_libs() == cache
    assert cache.is_dir()


def test_fetching_without_maven_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EmbeddedBrokerError, match=r"Maven \(mvn\) is not installed"):
        fetch_kafka_libs()


def test_tls_needs_both_files() -> None:
    with pytest.raises(EmbeddedBrokerError, match="tls_certificate and tls_key: got only one"):
        KafkaBroker(tls_certificate="server.pem")


@pytest.mark.kafka_only
def test_a_traditional_key_is_refused_naming_pkcs8(broker_kind: str, tmp_path: Path) -> None:
    key = tmp_path / "server.key"
    key.write_text("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")
    certificate = tmp_path / "server.pem"
    certificate.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    broker = KafkaBroker(tls_certificate=certificate, tls_key=key)
    with pytest.raises(EmbeddedBrokerError, match=r"not an unencrypted PKCS#8 PEM key"):
        broker.start()
    assert not broker.is_running()


@pytest.mark.kafka_only
def test_it_runs_apache_kafka_and_leaves_nothing_behind(broker_kind: str, tmp_path: Path) -> None:
    # given a broker started with its defaults
    with KafkaBroker(log_path=tmp_path / "kafka.log") as broker:
        pid, data = broker.pid, broker.data_dir
        assert pid is not None
        assert data is not None
        assert (data / "meta.properties").exists()
        # when a raw client produces to it and a group commits
        broker.create_topic("plain", 2)
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
        for i in range(10):
            producer.produce("plain", f"v{i}".encode(), key=f"k{i}".encode())
        assert producer.flush(10) == 0
        assert len(read_topic([broker.bootstrap_servers], "plain", 10)) == 10
        # then the high watermarks are real (Tansu answers 1)
        consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "w"})
        try:
            highs = [consumer.get_watermark_offsets(TopicPartition("plain", p))[1] for p in (0, 1)]
        finally:
            consumer.close()
        assert sum(highs) == 10
    # and stopping it leaves no process and no data directory; its log stays
    assert not process_exists(pid)
    assert not data.exists()
    assert "Kafka Server started" in (tmp_path / "kafka.log").read_text()


@pytest.mark.kafka_only
def test_a_restart_with_a_kept_data_dir_keeps_port_and_messages(
    broker_kind: str, tmp_path: Path
) -> None:
    # given a broker keeping its data in a directory of ours, with a topic of 5 messages
    broker = KafkaBroker(data_dir=tmp_path / "data", log_path=tmp_path / "kafka.log")
    with broker:
        broker.create_topic("kept", 1)
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
        for i in range(5):
            producer.produce("kept", f"v{i}".encode())
        assert producer.flush(10) == 0
        port = broker.port
    # when it is started again
    with broker:
        # then it listens where it did, and the messages are still there
        assert broker.port == port
        values = [r.value() for r in read_topic([broker.bootstrap_servers], "kept", 5)]
        assert values == [f"v{i}".encode() for i in range(5)]
    assert (tmp_path / "data" / "meta.properties").exists()


def test_a_listener_it_does_not_have_is_named() -> None:
    broker = KafkaBroker()
    with pytest.raises(EmbeddedBrokerError, match=r"'SASL_SSL'; this broker listens with PLAIN"):
        broker.listener("SASL_SSL")


def test_a_failed_start_leaves_no_work_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a "java" that says it is 17 but fails to format Kafka's storage
    java = tmp_path / "java"
    java.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = -version ]; then echo \'openjdk version "17.0.9"\' >&2; exit 0; fi\n'
        "echo 'cannot format' >&2; exit 1\n"
    )
    java.chmod(java.stat().st_mode | stat.S_IXUSR)
    libs = tmp_path / "libs"
    libs.mkdir()
    (libs / "kafka_2.13-4.4.0.jar").write_bytes(b"")
    work = tmp_path / "tmp"
    work.mkdir()
    monkeypatch.setenv("TMPDIR", str(work))
    monkeypatch.setattr("tempfile.tempdir", None)
    # when the broker fails to start
    with pytest.raises(EmbeddedBrokerError, match=r"formatting Kafka's storage .* failed"):
        KafkaBroker(java=java, libs=libs, log_path=tmp_path / "kafka.log").start()
    # then its work directory (server.properties, data) is gone
    assert [p.name for p in work.iterdir()] == []
