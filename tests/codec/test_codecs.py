"""The codecs: round trips into the types handlers ask for, and errors that say what is wrong."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any

import pytest
from google.protobuf import wrappers_pb2
from pydantic import BaseModel, ValidationError

from zeroqueue import ConfigError
from zeroqueue.codec import (
    Codec,
    codec_for_content_type,
    get_codec,
    register_codec,
)


class Order(BaseModel):
    id: int
    item: str
    at: datetime


@dataclasses.dataclass
class Point:
    x: int
    y: int


ORDER = Order(id=7, item="tea", at=datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc))


@pytest.mark.parametrize("name", ["json", "msgpack"])
def test_a_model_a_dataclass_and_a_dict_round_trip(name: str) -> None:
    codec = get_codec(name)
    assert codec.decode(codec.encode(ORDER), Order) == ORDER
    assert codec.decode(codec.encode(Point(1, 2)), Point) == Point(1, 2)
    assert codec.decode(codec.encode({"a": [1, 2]}), dict) == {"a": [1, 2]}
    assert codec.decode(codec.encode({"a": 1}), None) == {"a": 1}


def test_json_is_plain_json_a_go_service_reads() -> None:
    assert get_codec("json").encode(ORDER) == (b'{"id":7,"item":"tea","at":"2026-12-01T12:00:00Z"}')


@pytest.mark.parametrize("name", ["json", "msgpack"])
def test_data_that_does_not_fit_the_type_raises_naming_the_field(name: str) -> None:
    codec = get_codec(name)
    with pytest.raises(ValidationError, match="id"):
        codec.decode(codec.encode({"id": "seven", "item": "tea", "at": "2026-12-01"}), Order)


def test_protobuf_round_trips_a_generated_message() -> None:
    codec = get_codec("proto")  # kratos-transport's name for it
    data = codec.encode(wrappers_pb2.StringValue(value="hello"))
    assert codec.decode(data, wrappers_pb2.StringValue).value == "hello"
    with pytest.raises(TypeError, match="generated message class"):
        codec.decode(data, dict)
    with pytest.raises(TypeError, match="expected a protobuf message"):
        codec.encode({"value": "hello"})


def test_raw_keeps_bytes_as_they_are() -> None:
    codec = get_codec("raw")
    assert codec.encode(b"\xff\x00") == b"\xff\x00"
    assert codec.decode(b"\xff\x00", bytes) == b"\xff\x00"
    assert codec.decode("é".encode(), str) == "é"
    with pytest.raises(TypeError, match="bytes or str"):
        codec.encode(42)


def test_content_types_name_their_codecs() -> None:
    assert codec_for_content_type("application/json; charset=utf-8") is get_codec("json")
    assert codec_for_content_type("application/x-protobuf") is get_codec("protobuf")
    assert codec_for_content_type("text/csv") is None


def test_an_unknown_codec_is_a_config_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"codec: got 'yaml'; expected one of json, msgpack"):
        get_codec("yaml")


class Upper:
    """A codec of upper-case text, to show the protocol."""

    name = "upper"
    content_type = "text/x-upper"

    def encode(self, value: Any) -> bytes:
        return str(value).upper().encode()

    def decode(self, data: bytes, into: Any) -> Any:
        return data.decode()


def test_a_registered_codec_is_found_by_name_and_content_type() -> None:
    codec = register_codec(Upper())
    assert isinstance(codec, Codec)
    assert get_codec("upper") is codec
    assert codec_for_content_type("text/x-upper") is codec
    with pytest.raises(ConfigError, match="expected an object with name, content_type"):
        register_codec(object())  # type: ignore[arg-type]
