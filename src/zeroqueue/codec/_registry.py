"""The codecs known by name and by content type."""

from __future__ import annotations

import threading
from collections.abc import Callable

from zeroqueue.codec._base import Codec
from zeroqueue.codec._json import JsonCodec
from zeroqueue.codec._msgpack import MsgpackCodec
from zeroqueue.codec._protobuf import ProtobufCodec
from zeroqueue.codec._raw import RawCodec
from zeroqueue.errors import ConfigError

__all__ = ["codec_for_content_type", "get_codec", "register_codec"]

_lock = threading.Lock()
# Built on first use: msgpack's codec needs its optional package.
_factories: dict[str, Callable[[], Codec]] = {
    "json": JsonCodec,
    "msgpack": MsgpackCodec,
    "protobuf": ProtobufCodec,
    "raw": RawCodec,
}
_by_name: dict[str, Codec] = {}
_aliases = {"proto": "protobuf", "bytes": "raw"}  # kratos-transport calls it "proto"
_content_types = {
    "application/json": "json",
    "application/msgpack": "msgpack",
    "application/x-msgpack": "msgpack",
    "application/x-protobuf": "protobuf",
    "application/protobuf": "protobuf",
    "application/octet-stream": "raw",
}


def register_codec(codec: Codec) -> Codec:
    """Make ``codec`` known by its ``name`` and ``content_type``; return it.

    Registering a name again replaces the codec (to swap the JSON library, say).
    """
    if not isinstance(codec, Codec):
        raise ConfigError(
            f"codec: got {codec!r}; expected an object with name, content_type,"
            " encode(value) and decode(data, into)"
        )
    with _lock:
        _by_name[codec.name] = codec
        _factories[codec.name] = lambda: codec
        _content_types[codec.content_type.lower()] = codec.name
    return codec


def get_codec(codec: str | Codec) -> Codec:
    """The codec called ``codec`` (``"json"``, ``"msgpack"``, ``"protobuf"``, ``"raw"``, ...).

    Raises:
        ConfigError: no codec has that name.
    """
    if not isinstance(codec, str):
        if isinstance(codec, Codec):
            return codec
        raise ConfigError(f"codec: got {codec!r}; expected a codec name or a Codec")
    name = _aliases.get(codec, codec)
    with _lock:
        found = _by_name.get(name)
        if found is None:
            factory = _factories.get(name)
            if factory is None:
                raise ConfigError(
                    f"codec: got {codec!r}; expected one of {', '.join(sorted(_factories))}"
                    " (or register_codec() your own)"
                )
            found = _by_name[name] = factory()
    return found


def codec_for_content_type(content_type: str) -> Codec | None:
    """The codec a content-type header names (parameters such as charset ignored)."""
    name = _content_types.get(content_type.split(";", 1)[0].strip().lower())
    return get_codec(name) if name is not None else None
