"""DqConf loads go-queue's keys; bad values name the key and what is expected."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from zeroqueue.conf import load
from zeroqueue.dq import Consumer, DqConf, Producer, RedisConf
from zeroqueue.dq._wire import CopyId, dedup_key, join_ids, split_ids, unwrap, wrap
from zeroqueue.errors import ConfigError


def test_a_go_zero_file_loads_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "Name: reminders\n"
        "DqConf:\n"
        "  Beanstalks:\n"
        "    - Endpoint: 127.0.0.1:7771\n"
        "      Tube: tube\n"
        "    - Endpoint: 127.0.0.1:7772\n"
        "      Tube: tube\n"
        "  Redis:\n"
        "    Host: 127.0.0.1:6379\n"
        "    Type: node\n"
        "    Pass: s3cret\n"
    )
    conf = load(path, DqConf, key="DqConf")
    assert [(b.endpoint, b.tube) for b in conf.beanstalks] == [
        ("127.0.0.1:7771", "tube"),
        ("127.0.0.1:7772", "tube"),
    ]
    assert conf.redis is not None
    assert (conf.redis.host, conf.redis.type, conf.redis.pass_) == (
        "127.0.0.1:6379",
        "node",
        "s3cret",
    )
    assert "s3cret" not in repr(conf)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"Beanstalks": [{"Endpoint": "localhost", "Tube": "t"}]}, "Endpoint"),
        ({"Beanstalks": [{"Endpoint": "h:1", "Tube": "bad tube"}]}, "Tube"),
        ({"Beanstalks": []}, "Beanstalks"),
        (
            {
                "Beanstalks": [{"Endpoint": "h:1", "Tube": "t"}],
                "Redis": {"Host": "h:1", "Type": "x"},
            },
            "Type",
        ),
        (
            {"Beanstalks": [{"Endpoint": "h:1", "Tube": "t"}, {"Endpoint": "h:1", "Tube": "t"}]},
            "listed twice",
        ),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, section: dict[str, object], expected: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"DqConf": section}))
    with pytest.raises(ConfigError, match=expected):
        load(path, DqConf, key="DqConf")


def test_a_producer_needs_two_nodes_and_a_consumer_needs_redis() -> None:
    one = DqConf.model_validate({"Beanstalks": [{"Endpoint": "127.0.0.1:1", "Tube": "t"}]})
    with pytest.raises(ConfigError, match="Beanstalks: got 1 node"):
        Producer.from_conf(one)
    with pytest.raises(ConfigError, match="Redis: missing"):
        Consumer(one, lambda body: None)
    with_redis = one.model_copy(update={"redis": RedisConf(host="127.0.0.1:6379")})
    with pytest.raises(ConfigError, match=r"expected a callable \(body\) or \(body, job\)"):
        Consumer(with_redis, "not a handler")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"takes 3 positional parameters"):
        Consumer(with_redis, lambda a, b, c: None)  # type: ignore[arg-type]


def test_the_wire_format_is_go_queues() -> None:
    body = wrap(b"payload/with/slashes", 1_700_000_000_123_456_789)
    assert body == b"1700000000123456789/payload/with/slashes"
    assert unwrap(body) == (1_700_000_000_123_456_789, b"payload/with/slashes")
    assert unwrap(b"no time here") is None
    assert unwrap(b"12ab/x") is None
    # go-queue: hash.Md5Hex(body), the whole body, time included.
    assert dedup_key(body) == "0a2f3b432e707a254f85a12032756048"
    copies = [CopyId("127.0.0.1:11300", "a/tube", 7), CopyId("127.0.0.1:11301", "a/tube", 9)]
    ids = join_ids(copies)
    assert ids == "127.0.0.1:11300/a/tube/7,127.0.0.1:11301/a/tube/9"
    assert split_ids(ids) == copies
    assert split_ids("garbage,127.0.0.1:1/t/x") == []
