"""The native protocol, sans-io: frames, messages and their codec. No sockets in here.

A frame is a 4-byte big-endian length followed by that many bytes of msgpack. Each frame holds
one message, a msgpack array whose first element is the message kind:

    REQUEST      [0, call_id, target, method, args]
    RESPONSE     [1, call_id, result]
    ERROR        [2, call_id, kind, type_name, message, traceback]
    STREAM_ITEM  [3, call_id, item]
    STREAM_END   [4, call_id]
    CANCEL       [5, call_id]
    CREDIT       [6, call_id, count]
    RELEASE      [7, object_id]

Both ends may send requests (callbacks flow from plugin to host too). Call ids belong to the
side that sent the REQUEST; the direction of a message tells whose id it is, so the two sides
never need to coordinate numbering. `target` is an object id in the receiver's export table;
id 0 is the control object every endpoint serves (ping, dispense, shutdown).

Objects passed by reference travel as msgpack extension type 1 holding the exporter's object id.
Large buffers on Unix sockets travel through shared memory as extension type 2, numpy arrays
otherwise as type 3 (see _shm.py).
"""

from __future__ import annotations

import struct
import sys
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import msgspec

from . import _shm
from ._errors import ProtocolError

__all__ = [
    "CANCEL",
    "CONTROL_OBJECT",
    "CREDIT",
    "DEFAULT_MAX_FRAME",
    "ERROR",
    "ERR_CANCELLED",
    "ERR_REMOTE",
    "ERR_UNKNOWN_METHOD",
    "ERR_UNKNOWN_OBJECT",
    "ERR_VALIDATION",
    "HEADER",
    "LARGE_FRAME",
    "RELEASE",
    "REQUEST",
    "RESPONSE",
    "STREAM_END",
    "STREAM_ITEM",
    "Codec",
    "FrameDecoder",
    "ObjectRef",
    "check_message",
]

REQUEST: Final = 0
RESPONSE: Final = 1
ERROR: Final = 2
STREAM_ITEM: Final = 3
STREAM_END: Final = 4
CANCEL: Final = 5
CREDIT: Final = 6
RELEASE: Final = 7

CONTROL_OBJECT: Final = 0

# The `kind` field of an ERROR message: who is at fault decides which exception the caller sees.
ERR_REMOTE: Final = 0  # the implementation raised
ERR_VALIDATION: Final = 1  # arguments did not match the interface
ERR_UNKNOWN_OBJECT: Final = 2
ERR_UNKNOWN_METHOD: Final = 3
ERR_CANCELLED: Final = 4

HEADER: Final = struct.Struct(">I")
_pack_header: Final = HEADER.pack
DEFAULT_MAX_FRAME: Final = 1 << 30
# Frames from this size on skip the small-frame copies: sent as header then payload, and
# received straight into a buffer of their announced size.
LARGE_FRAME: Final = 1 << 16
_EXT_OBJECT_REF: Final = 1

# Arity of each message kind, indexed by kind; checked once per received message.
_ARITY: Final = (5, 3, 6, 3, 2, 2, 3, 2)
_KINDS: Final = len(_ARITY)


class ObjectRef:
    """A reference to an object exported by the peer, as decoded off the wire."""

    __slots__ = ("object_id",)

    def __init__(self, object_id: int) -> None:
        self.object_id = object_id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other.object_id == self.object_id

    def __hash__(self) -> int:
        return hash(("ObjectRef", self.object_id))

    def __repr__(self) -> str:
        return f"ObjectRef({self.object_id})"


_REF: Final = struct.Struct(">Q")


def _ext_hook(code: int, data: memoryview) -> Any:
    if code == _EXT_OBJECT_REF and len(data) == _REF.size:
        return ObjectRef(_REF.unpack(data)[0])
    raise ProtocolError(f"unknown msgpack extension type {code} ({len(data)} bytes)")


class Codec:
    """Encodes messages into frames and decodes frame payloads into messages.

    `export` is called for objects msgspec cannot encode natively; it returns the object id
    under which the object is exported, or raises TypeError if it cannot be sent at all.
    """

    __slots__ = (
        "_decoder",
        "_encoder",
        "_export",
        "fds_in",
        "max_frame",
        "shm_ready",
        "spares",
    )

    def __init__(
        self,
        export: Callable[[object], int] | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        shm_ready: Callable[[], bool] | None = None,
    ) -> None:
        self._export = export
        self.max_frame = max_frame
        # Set when the connection can carry descriptors: says (after asking the peer once,
        # if need be) whether large buffers may go through shared memory; `encode_parts`
        # then returns an FdFrame. Received descriptors queue in `fds_in`, in order.
        self.shm_ready = shm_ready
        self.fds_in: deque[int] = deque()
        self.spares = _shm.Spares()
        self._encoder = msgspec.msgpack.Encoder(enc_hook=self._enc_hook)
        self._decoder = msgspec.msgpack.Decoder(ext_hook=self._ext_hook)

    def _ext_hook(self, code: int, data: memoryview) -> Any:
        if code == _shm.EXT_SHM:
            return _shm.map_shared(data, self.fds_in)
        if code == _shm.EXT_NDARRAY:
            return _shm.decode_ndarray(data)
        return _ext_hook(code, data)

    def close_fds(self) -> None:
        """Close received descriptors nobody took (the connection is going away)."""
        fds, self.fds_in = list(self.fds_in), deque()
        _shm.close_fds(fds)
        self.spares.close()

    def _enc_hook(self, obj: Any) -> Any:
        if isinstance(obj, ObjectRef):
            return msgspec.msgpack.Ext(_EXT_OBJECT_REF, _REF.pack(obj.object_id))
        numpy = sys.modules.get("numpy")
        if numpy is not None and isinstance(obj, numpy.ndarray):
            return _shm.encode_ndarray(obj)
        if self._export is not None:
            return msgspec.msgpack.Ext(_EXT_OBJECT_REF, _REF.pack(self._export(obj)))
        raise TypeError(f"objects of type {type(obj).__qualname__} cannot be sent")

    def encode(self, message: list[Any] | tuple[Any, ...]) -> bytes:
        """One whole frame (header and payload), ready to send."""
        # encode() and one concatenation measured cheaper than encode_into() a bytearray
        # with room for the header and pack_into() (a small frame is copied either way).
        body = self._encoder.encode(message)
        size = len(body)
        if size > self.max_frame:
            raise ProtocolError(f"frame of {size} bytes exceeds the limit of {self.max_frame}")
        return _pack_header(size) + body

    def encode_parts(
        self,
        message: list[Any] | tuple[Any, ...],
        buffers: bool = False,
        kept: list[tuple[int, int]] | None = None,
    ) -> bytes | tuple[bytes, bytes] | _shm.FdFrame:
        """Like `encode`, but a large frame comes as (header, payload), to be sent in turn.

        Joining header and payload copies the payload once more: for a 64 MiB argument
        that is tens of milliseconds and a second 64 MiB of memory. With `shm`, a message
        carrying large buffers comes as an FdFrame: the caller sends its descriptors with
        it (SCM_RIGHTS) and closes them. `buffers` says the message may hold a buffer (a
        MethodSpec knows): calls of scalars only skip looking for one. `kept`: a call's
        arguments may reuse memfds of earlier calls (see _shm.lift).
        """
        ready = self.shm_ready
        if buffers and ready is not None and _shm.wanted(message) and ready():
            message, fds = _shm.lift(message, self.spares if kept is not None else None, kept)
            if fds:
                try:
                    return _shm.FdFrame(self.encode(message), fds)
                except BaseException:
                    _shm.close_fds(fds)
                    if kept:
                        self.spares.settle(kept, False)
                    raise
        body = self._encoder.encode(message)
        size = len(body)
        if size > self.max_frame:
            raise ProtocolError(f"frame of {size} bytes exceeds the limit of {self.max_frame}")
        if size >= LARGE_FRAME:
            return _pack_header(size), body
        return _pack_header(size) + body

    def decode(self, payload: bytes | bytearray | memoryview) -> list[Any]:
        """Decode one frame payload into a checked message."""
        try:
            message = self._decoder.decode(payload)
        except ProtocolError:
            raise
        except (msgspec.DecodeError, ValueError, TypeError, RecursionError) as exc:
            # RecursionError: a few KB of nested arrays from a hostile or broken peer.
            raise ProtocolError(f"malformed message: {exc}") from None
        # check_message()'s valid case, inlined: one call and two len() fewer per message.
        if (
            type(message) is list
            and message
            and type(kind := message[0]) is int
            and 0 <= kind < _KINDS
            and len(message) == _ARITY[kind]
            and type(message[1]) is int
            and (
                kind != REQUEST
                or (
                    type(message[2]) is int and type(message[3]) is str and type(message[4]) is list
                )
            )
        ):
            return message
        raise _malformed(message)


def check_message(message: Any) -> list[Any]:
    """Check a decoded message's shape so the drivers can index it without further checks."""
    # One condition for the valid case (the only one that must be fast); the precise
    # complaint is worked out only for a malformed message.
    if (
        type(message) is list
        and message
        and type(kind := message[0]) is int
        and 0 <= kind < _KINDS
        and len(message) == _ARITY[kind]
        and type(message[1]) is int
        and (
            kind != REQUEST
            or (type(message[2]) is int and type(message[3]) is str and type(message[4]) is list)
        )
    ):
        return message
    raise _malformed(message)


def _malformed(message: Any) -> ProtocolError:
    """What is wrong with a message check_message() refused."""
    if type(message) is not list or not message:
        return ProtocolError(f"message is not a non-empty array: {message!r:.80}")
    kind = message[0]
    if type(kind) is not int or not 0 <= kind < len(_ARITY):
        return ProtocolError(f"unknown message kind {kind!r:.40}")
    if len(message) != _ARITY[kind]:
        return ProtocolError(
            f"message kind {kind} must have {_ARITY[kind]} fields, got {len(message)}"
        )
    if type(message[1]) is not int:
        return ProtocolError(f"message id must be an integer, got {message[1]!r:.40}")
    if type(message[2]) is not int or type(message[3]) is not str:
        return ProtocolError("request target must be an integer and method a string")
    # Only a REQUEST gets here: every other kind passed on the checks above.
    return ProtocolError("request arguments must be an array")


class FrameDecoder:
    """Accumulates received bytes and splits them into frame payloads.

    Reads may split frames anywhere; `feed` takes whatever arrived and `next_payload` returns
    complete payloads one at a time (None when more bytes are needed).
    """

    __slots__ = ("_buf", "_large", "_max", "_pos")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._max = max_frame
        self._large: bytearray | None = None

    def start_large(self, threshold: int = LARGE_FRAME) -> memoryview | None:
        """Begin receiving a large frame in place.

        If the buffered bytes start a frame of at least `threshold` bytes that has not
        fully arrived, they move into a buffer of exactly the frame's size and the part
        still to be filled is returned: the caller reads the rest straight into it, then
        calls `finish_large`. Growing the buffer and slicing the frame out of it would copy
        a large payload three times more.
        """
        available = len(self._buf) - self._pos
        if available < 4:
            return None
        size: int = HEADER.unpack_from(self._buf, self._pos)[0]
        if size < threshold or available >= 4 + size:
            return None
        if size > self._max:
            raise ProtocolError(f"frame of {size} bytes exceeds the limit of {self._max}")
        large = bytearray(size)
        got = available - 4
        large[:got] = memoryview(self._buf)[self._pos + 4 :]
        self._buf.clear()
        self._pos = 0
        self._large = large
        return memoryview(large)[got:]

    def finish_large(self) -> bytearray:
        """The payload of the frame begun by `start_large`, once the caller has filled it."""
        large, self._large = self._large, None
        assert large is not None
        return large

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._pos and self._pos == len(self._buf):
            # Everything consumed: restart the buffer instead of growing it forever.
            self._buf.clear()
            self._pos = 0
        self._buf += data

    def next_payload(self) -> bytes | None:
        buf, pos = self._buf, self._pos
        available = len(buf) - pos
        if available < 4:
            return None
        (size,) = HEADER.unpack_from(buf, pos)
        if size > self._max:
            raise ProtocolError(f"frame of {size} bytes exceeds the limit of {self._max}")
        end = pos + 4 + size
        if len(buf) < end:
            return None
        payload = bytes(buf[pos + 4 : end])
        if end == len(buf):
            buf.clear()
            self._pos = 0
        else:
            self._pos = end
            if end > 1 << 20:
                # Drop consumed bytes once they are large, so memory stays bounded.
                del buf[:end]
                self._pos = 0
        return payload

    def split(self, data: memoryview) -> list[memoryview | bytes]:
        """feed() and every next_payload() at once: the payloads complete with `data`.

        With nothing buffered before, the payloads are slices of `data` (no copy), valid
        until the caller reuses its buffer; only an incomplete last frame is buffered.
        """
        if len(self._buf) != self._pos:
            self.feed(data)
            out: list[memoryview | bytes] = []
            while (payload := self.next_payload()) is not None:
                out.append(payload)
            return out
        out = []
        pos, end, limit = 0, len(data), self._max
        unpack = HEADER.unpack_from
        while end - pos >= 4:
            (size,) = unpack(data, pos)
            if size > limit:
                raise ProtocolError(f"frame of {size} bytes exceeds the limit of {limit}")
            stop = pos + 4 + size
            if stop > end:
                break
            out.append(data[pos + 4 : stop])
            pos = stop
        if pos < end:
            self.feed(data[pos:])
        return out

    def needed(self) -> int:
        """How many more bytes complete the current frame (at least 1 when incomplete)."""
        available = len(self._buf) - self._pos
        if available < 4:
            return 4 - available
        size: int = HEADER.unpack_from(self._buf, self._pos)[0]
        return max(4 + size - available, 0)

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos
