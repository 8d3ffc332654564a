"""Codecs: json (the default), msgpack, protobuf and raw bytes, and a protocol to add one.

A publish encodes with its codec and writes the codec's content type to the
``content-type`` header; a subscriber decodes with the codec that header names,
else with its own (kratos-transport writes no header: set the subscriber's codec
to what its publisher uses).
"""

from zeroqueue.codec._base import CONTENT_TYPE_HEADER, Codec
from zeroqueue.codec._json import JsonCodec
from zeroqueue.codec._msgpack import MsgpackCodec
from zeroqueue.codec._protobuf import ProtobufCodec
from zeroqueue.codec._raw import RawCodec
from zeroqueue.codec._registry import codec_for_content_type, get_codec, register_codec

__all__ = [
    "CONTENT_TYPE_HEADER",
    "Codec",
    "JsonCodec",
    "MsgpackCodec",
    "ProtobufCodec",
    "RawCodec",
    "codec_for_content_type",
    "get_codec",
    "register_codec",
]
