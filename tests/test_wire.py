"""Property tests of the sans-io wire layer: frames, messages and their codec."""

from __future__ import annotations

import datetime as dt
import itertools
import struct
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import tether
from tether._wire import (
    CANCEL,
    CREDIT,
    DEFAULT_MAX_FRAME,
    ERROR,
    HEADER,
    LARGE_FRAME,
    RELEASE,
    REQUEST,
    RESPONSE,
    STREAM_END,
    STREAM_ITEM,
    Codec,
    FrameDecoder,
    ObjectRef,
    check_message,
)

ARITY = {
    REQUEST: 5,
    RESPONSE: 3,
    ERROR: 6,
    STREAM_ITEM: 3,
    STREAM_END: 2,
    CANCEL: 2,
    CREDIT: 3,
    RELEASE: 2,
}

# --- strategies --------------------------------------------------------------------------

ids = st.integers(min_value=0, max_value=2**64 - 1)
u64 = st.integers(min_value=0, max_value=2**64 - 1)
msgpack_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
aware_datetimes = st.datetimes(
    min_value=dt.datetime(1, 1, 2),
    max_value=dt.datetime(9999, 12, 30),
    timezones=st.just(dt.UTC),
)
scalars = (
    st.none()
    | st.booleans()
    | msgpack_ints
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.binary(max_size=60)
    | aware_datetimes
    | u64.map(ObjectRef)
)
payloads = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=10), children, max_size=6)
    ),
    max_leaves=30,
)


def _message(kind: int) -> st.SearchStrategy[list[Any]]:
    if kind == REQUEST:
        return st.tuples(ids, u64, st.text(max_size=20), st.lists(payloads, max_size=5)).map(
            lambda t: [REQUEST, *t]
        )
    if kind == ERROR:
        return st.tuples(
            ids, st.integers(0, 4), st.text(max_size=30), st.text(), st.text(max_size=200)
        ).map(lambda t: [ERROR, *t])
    if kind in (RESPONSE, STREAM_ITEM):
        return st.tuples(ids, payloads).map(lambda t: [kind, *t])
    if kind == CREDIT:
        return st.tuples(ids, st.integers(0, 2**31)).map(lambda t: [CREDIT, *t])
    return ids.map(lambda i: [kind, i])


messages = st.sampled_from(sorted(ARITY)).flatmap(_message)


def frames_of(msgs: list[list[Any]]) -> bytes:
    codec = Codec()
    return b"".join(bytes(codec.encode(m)) for m in msgs)


def decode_all(data: bytes, cuts: list[int], max_frame: int = DEFAULT_MAX_FRAME) -> list[Any]:
    """Feed `data` split at `cuts` and decode every frame that comes out."""
    codec = Codec(max_frame=max_frame)
    decoder = FrameDecoder(max_frame)
    out: list[Any] = []
    bounds = [0, *sorted(set(cuts)), len(data)]
    for start, end in itertools.pairwise(bounds):
        decoder.feed(data[start:end])
        while (payload := decoder.next_payload()) is not None:
            out.append(codec.decode(payload))
    assert decoder.buffered == 0
    assert decoder.needed() == 4
    return out


def raw_frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def encoded(value: Any) -> bytes:
    """A frame holding `value` as is, however wrong a message it is."""
    return bytes(Codec().encode(value))


def decode_one(frame: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> list[Any] | None:
    decoder = FrameDecoder(max_frame)
    decoder.feed(frame)
    payload = decoder.next_payload()
    if payload is None:
        return None
    return Codec(max_frame=max_frame).decode(payload)


# --- round trips -------------------------------------------------------------------------


@given(messages)
def test_single_message_round_trip(msg: list[Any]) -> None:
    frame = bytes(Codec().encode(msg))
    assert HEADER.unpack_from(frame)[0] == len(frame) - 4
    assert decode_all(frame, []) == [msg]


@settings(max_examples=60)
@given(st.lists(messages, max_size=8), st.data())
def test_many_frames_arbitrary_chunking(msgs: list[list[Any]], data: st.DataObject) -> None:
    stream = frames_of(msgs)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    assert decode_all(stream, cuts) == msgs


def split_all(data: bytes, cuts: list[int]) -> list[Any]:
    """decode_all() through FrameDecoder.split(), each chunk read into one reused buffer."""
    codec = Codec()
    decoder = FrameDecoder()
    out: list[Any] = []
    bounds = [0, *sorted(set(cuts)), len(data)]
    buf = bytearray(len(data) + 1)
    for start, end in itertools.pairwise(bounds):
        buf[: end - start] = data[start:end]
        for payload in decoder.split(memoryview(buf)[: end - start]):
            out.append(codec.decode(payload))
        # The next read overwrites the buffer: nothing split off may still point into it.
        buf[:] = b"\xff" * len(buf)
    assert decoder.buffered == 0
    return out


@settings(max_examples=60)
@given(st.lists(messages, max_size=8), st.data())
def test_split_gives_every_frame_whatever_the_chunking(
    msgs: list[list[Any]], data: st.DataObject
) -> None:
    stream = frames_of(msgs)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    assert split_all(stream, cuts) == msgs


def test_split_refuses_an_oversized_frame() -> None:
    decoder = FrameDecoder(100)
    with pytest.raises(tether.ProtocolError, match="exceeds the limit of 100"):
        decoder.split(memoryview(raw_frame(b"x" * 10) + HEADER.pack(101)))


@settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages, min_size=1, max_size=3))
def test_split_at_every_point(msgs: list[list[Any]]) -> None:
    stream = frames_of(msgs)
    for cut in range(len(stream) + 1):
        assert decode_all(stream, [cut]) == msgs


@settings(max_examples=30)
@given(st.lists(messages, min_size=1, max_size=4))
def test_one_byte_at_a_time(msgs: list[list[Any]]) -> None:
    stream = frames_of(msgs)
    assert decode_all(stream, list(range(len(stream)))) == msgs


@settings(max_examples=25)
@given(st.lists(messages, min_size=1, max_size=4), st.data())
def test_needed_and_buffered_are_consistent(msgs: list[list[Any]], data: st.DataObject) -> None:
    stream = frames_of(msgs)
    decoder = FrameDecoder()
    codec = Codec()
    pos = 0
    out: list[Any] = []
    frame_start = 0  # offset in `stream` of the frame currently being assembled
    while pos < len(stream):
        need = decoder.needed()
        assert need >= 1
        assert decoder.buffered == pos - frame_start
        # Feeding fewer than needed() bytes never completes a frame.
        step = data.draw(st.integers(1, max(need, 1)), label="step")
        step = min(step, len(stream) - pos)
        decoder.feed(stream[pos : pos + step])
        pos += step
        payload = decoder.next_payload()
        if step < need:
            assert payload is None
            continue
        if payload is not None:
            out.append(codec.decode(payload))
            frame_start += 4 + len(payload)
            assert decoder.next_payload() is None  # never fed past the frame's end
            assert decoder.buffered == pos - frame_start == 0
    assert out == msgs
    assert decoder.needed() == 4
    assert decoder.buffered == 0


def test_needed_reports_header_then_body() -> None:
    frame = bytes(Codec().encode([RESPONSE, 7, b"x" * 100]))
    decoder = FrameDecoder()
    assert decoder.needed() == 4
    assert decoder.buffered == 0
    decoder.feed(frame[:2])
    assert decoder.needed() == 2
    assert decoder.buffered == 2
    decoder.feed(frame[2:10])
    assert decoder.needed() == len(frame) - 10
    assert decoder.buffered == 10
    assert decoder.next_payload() is None
    decoder.feed(frame[10:])
    assert decoder.needed() == 0
    assert decoder.buffered == len(frame)
    payload = decoder.next_payload()
    assert payload is not None
    assert Codec().decode(payload) == [RESPONSE, 7, b"x" * 100]
    assert decoder.buffered == 0


def test_large_frames_and_memory_release() -> None:
    big = [RESPONSE, 1, b"\x00" * (3 << 20)]
    msgs: list[list[Any]] = [big, [STREAM_END, 2], big, [CANCEL, 3]]
    stream = frames_of(msgs)
    cuts = list(range(0, len(stream), 65536))
    assert decode_all(stream, cuts) == msgs


@given(u64)
def test_object_ref_round_trip(oid: int) -> None:
    msg = [RESPONSE, 1, {"ref": ObjectRef(oid), "list": [ObjectRef(oid), 1]}]
    (back,) = decode_all(bytes(Codec().encode(msg)), [])
    assert back == msg
    assert isinstance(back[2]["ref"], ObjectRef)
    assert back[2]["ref"].object_id == oid
    assert hash(ObjectRef(oid)) == hash(back[2]["ref"])
    assert repr(ObjectRef(oid)) == f"ObjectRef({oid})"


def test_export_hook_turns_objects_into_refs() -> None:
    exported: list[object] = []

    def export(obj: object) -> int:
        exported.append(obj)
        return 41 + len(exported)

    thing = object()
    frame = bytes(Codec(export=export).encode([REQUEST, 1, 1, "m", [thing, thing]]))
    (msg,) = decode_all(frame, [])
    assert msg == [REQUEST, 1, 1, "m", [ObjectRef(42), ObjectRef(43)]]
    assert exported == [thing, thing]


def test_unsendable_object_without_export_hook() -> None:
    with pytest.raises(TypeError, match="cannot be sent"):
        Codec().encode([RESPONSE, 1, object()])


def test_encode_over_max_frame() -> None:
    codec = Codec(max_frame=100)
    codec.encode([RESPONSE, 1, b"x" * 50])
    with pytest.raises(tether.ProtocolError, match="exceeds"):
        codec.encode([RESPONSE, 1, b"x" * 200])


# --- malformed input ---------------------------------------------------------------------


def assert_protocol_error_or_valid(frame: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> None:
    """Decoding must give a well-formed message, need more bytes, or raise ProtocolError."""
    try:
        decoder = FrameDecoder(max_frame)
        codec = Codec(max_frame=max_frame)
        decoder.feed(frame)
        while (payload := decoder.next_payload()) is not None:
            msg = codec.decode(payload)
            assert type(msg) is list
            assert check_message(msg) is msg
    except tether.ProtocolError:
        pass


@given(st.binary(max_size=200))
def test_random_payload_after_valid_header(payload: bytes) -> None:
    assert_protocol_error_or_valid(raw_frame(payload))


@given(st.binary(max_size=300))
def test_random_stream(data: bytes) -> None:
    assert_protocol_error_or_valid(data, max_frame=1 << 16)


@given(messages, st.data())
def test_corrupted_valid_frame(msg: list[Any], data: st.DataObject) -> None:
    frame = bytearray(Codec().encode(msg))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(4, len(frame) - 1))
        frame[index] = data.draw(st.integers(0, 255))
    assert_protocol_error_or_valid(bytes(frame))


small_values = (
    st.none() | st.integers(-5, 2**40) | st.text(max_size=3) | st.lists(st.none(), max_size=2)
)


@given(st.sampled_from(sorted(ARITY)), st.lists(small_values, max_size=8))
def test_wrong_arity(kind: int, rest: list[Any]) -> None:
    assume(len(rest) + 2 != ARITY[kind])
    msg = [kind, 1, *rest]
    with pytest.raises(tether.ProtocolError, match="fields"):
        decode_one(encoded(msg))


@given(
    st.one_of(
        st.integers(len(ARITY), 2**64 - 1),
        st.integers(-(2**63), -1),
        st.text(max_size=5),
        st.floats(allow_nan=False),
        st.booleans(),
        st.none(),
        st.binary(max_size=4),
        st.lists(st.integers(0, 7), max_size=2),
    ),
    st.lists(small_values, max_size=5),
)
def test_unknown_kind(kind: Any, rest: list[Any]) -> None:
    with pytest.raises(tether.ProtocolError, match="kind"):
        decode_one(encoded([kind, *rest]))


@given(
    st.sampled_from(sorted(ARITY)),
    st.one_of(st.text(max_size=5), st.floats(), st.booleans(), st.none(), st.binary(max_size=3)),
)
def test_non_integer_id(kind: int, bad_id: Any) -> None:
    msg = [kind, bad_id, *([0] * (ARITY[kind] - 2))]
    if kind == REQUEST:
        msg = [REQUEST, bad_id, 1, "method", []]
    with pytest.raises(tether.ProtocolError, match="id"):
        decode_one(encoded(msg))


@pytest.mark.parametrize(
    "msg",
    [
        [REQUEST, 1, "target", "m", []],
        [REQUEST, 1, 1.5, "m", []],
        [REQUEST, 1, 1, 2, []],
        [REQUEST, 1, 1, b"m", []],
        [REQUEST, 1, 1, "m", {"a": 1}],
        [REQUEST, 1, 1, "m", None],
        [REQUEST, 1, True, "m", []],
    ],
)
def test_bad_request_fields(msg: list[Any]) -> None:
    with pytest.raises(tether.ProtocolError, match="request"):
        decode_one(encoded(msg))


@pytest.mark.parametrize("value", [{}, {"a": 1}, 5, "x", b"", None, [], 1.5])
def test_message_not_a_non_empty_array(value: Any) -> None:
    with pytest.raises(tether.ProtocolError, match="array"):
        decode_one(encoded(value))


@pytest.mark.parametrize(
    "payload",
    [
        b"",  # empty payload
        b"\xc1",  # never-used msgpack byte
        b"\x95\x00\x01",  # array header promising more elements than present
        b"\xda\xff\xff",  # truncated str16
        b"\x93\x01\x01\x92",  # truncated nested array
        b"\x92\x03\x01\x00",  # trailing bytes after the message
        b"\xd7\xff" + b"\xff" * 8,  # timestamp with nanoseconds out of range
    ],
)
def test_bad_msgpack(payload: bytes) -> None:
    with pytest.raises(tether.ProtocolError):
        decode_one(raw_frame(payload))


@given(st.integers(-128, 127).filter(lambda c: c not in (1, 2, 3, -1)), st.binary(max_size=20))
def test_unknown_ext_type(code: int, data: bytes) -> None:
    msg = [RESPONSE, 1, msgspec.msgpack.Ext(code, data)]
    with pytest.raises(tether.ProtocolError, match="extension"):
        decode_one(encoded(msg))


@given(st.sampled_from([2, 3]), st.binary(max_size=40))
def test_malformed_buffer_ext_is_a_protocol_error(code: int, data: bytes) -> None:
    # Type 2 (shared memory) without a descriptor, or garbage for type 3 (numpy inline).
    msg = [RESPONSE, 1, msgspec.msgpack.Ext(code, data)]
    with pytest.raises(tether.ProtocolError, match="extension"):
        decode_one(encoded(msg))


@given(st.binary(max_size=20).filter(lambda b: len(b) != 8))
def test_object_ref_ext_with_wrong_length(data: bytes) -> None:
    msg = [RESPONSE, 1, msgspec.msgpack.Ext(1, data)]
    with pytest.raises(tether.ProtocolError, match="extension"):
        decode_one(encoded(msg))


@pytest.mark.parametrize("depth", [100_000, 5_000])
def test_deeply_nested_payload_is_a_protocol_error(depth: int) -> None:
    # A peer can send arbitrarily deep nesting in a few bytes; it must be refused as a
    # protocol error, not escape as RecursionError through the drivers' reader loops.
    payload = b"\x93\x01\x01" + b"\x91" * depth + b"\xc0"
    with pytest.raises(tether.ProtocolError):
        decode_one(raw_frame(payload))


@given(st.integers(1, 1 << 16), st.integers(0, 10))
def test_frame_length_over_max_frame(max_frame: int, extra: int) -> None:
    size = max_frame + 1 + extra
    decoder = FrameDecoder(max_frame)
    decoder.feed(struct.pack(">I", size))
    with pytest.raises(tether.ProtocolError, match="exceeds"):
        decoder.next_payload()


def test_frame_length_over_max_after_valid_frames() -> None:
    good = frames_of([[CANCEL, 1], [CANCEL, 2]])
    decoder = FrameDecoder(64)
    decoder.feed(good + struct.pack(">I", 65) + b"\x00" * 10)
    assert decoder.next_payload() is not None
    assert decoder.next_payload() is not None
    with pytest.raises(tether.ProtocolError):
        decoder.next_payload()


def test_huge_declared_length_does_not_allocate_or_hang() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\xff\xff\xff\xff")
    with pytest.raises(tether.ProtocolError):
        decoder.next_payload()
    decoder = FrameDecoder()
    decoder.feed(struct.pack(">I", DEFAULT_MAX_FRAME) + b"\x00")
    assert decoder.next_payload() is None
    assert decoder.needed() == DEFAULT_MAX_FRAME - 1


def test_large_frame_is_received_in_place_and_the_stream_continues() -> None:
    codec = Codec()
    big = codec.encode([RESPONSE, 1, b"z" * (LARGE_FRAME + 5)])
    small = codec.encode([STREAM_END, 2])
    parts = codec.encode_parts([RESPONSE, 1, b"z" * (LARGE_FRAME + 5)])
    assert isinstance(parts, tuple)
    assert parts[0] + parts[1] == big  # the same frame, in two parts
    decoder = FrameDecoder()
    decoder.feed(big[:1000])
    assert decoder.next_payload() is None
    rest = decoder.start_large()
    assert rest is not None
    assert len(rest) == len(big) - 1000
    rest[:] = big[1000:]
    assert codec.decode(decoder.finish_large()) == [RESPONSE, 1, b"z" * (LARGE_FRAME + 5)]
    decoder.feed(small)
    assert codec.decode(decoder.next_payload() or b"") == [STREAM_END, 2]


def test_small_or_complete_frames_are_not_taken_in_place() -> None:
    codec = Codec()
    decoder = FrameDecoder()
    decoder.feed(codec.encode([STREAM_END, 1])[:3])
    assert decoder.start_large() is None  # not even a whole header yet
    decoder = FrameDecoder()
    frame = codec.encode([RESPONSE, 1, b"y" * (LARGE_FRAME + 1)])
    decoder.feed(frame)
    assert decoder.start_large() is None  # complete already: the normal path takes it
    assert codec.decode(decoder.next_payload() or b"")[2] == b"y" * (LARGE_FRAME + 1)
    assert codec.encode_parts([STREAM_END, 1]) == codec.encode([STREAM_END, 1])


def test_large_frame_over_the_limit_is_a_protocol_error() -> None:
    decoder = FrameDecoder(max_frame=LARGE_FRAME)
    decoder.feed(HEADER.pack(LARGE_FRAME + 1) + b"x" * 10)
    with pytest.raises(tether.ProtocolError):
        decoder.start_large()
