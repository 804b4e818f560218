"""Large buffers through shared memory instead of the socket (Linux, Unix sockets only).

A `bytes`, `bytearray`, `memoryview` or numpy array of at least `SHM_THRESHOLD` bytes that is
an argument, a result or a stream item (top level only: not nested inside lists or dicts, which
keep the inline path) is written into an anonymous memfd. The file descriptor
travels with the frame as SCM_RIGHTS ancillary data and the frame carries a small reference
(msgpack extension type 2). The receiver maps the memfd: a `memoryview` or numpy array is
delivered as a view of the mapping (zero-copy, unmapped when the last reference goes); `bytes`
and `bytearray` own their memory, so they are copied once, with read() rather than through a
mapping, and from 4 MiB into a fresh object madvised for huge pages (see `_huge_copy`). A
call's `bytes` / `bytearray` arguments may be written into a memfd of an earlier, answered call
of the same connection (see `Spares`).

Nothing has a name: the memfd is freed by the kernel when the last descriptor and mapping go,
also when either process crashes with the descriptor in flight. Before its first descriptor,
a side asks the peer once (control method CONTROL_METHOD) to read with recvmsg() from then on;
TCP and TLS connections keep the inline path. A mapping delivered as a memoryview or array
holds one descriptor while alive (Python's mmap keeps a duplicate).

numpy is never imported here unless the peer sent an array or the caller already imported it.
Smaller numpy arrays travel inline as extension type 3 (dtype, shape and the raw bytes).
"""

from __future__ import annotations

import mmap
import os
import socket
import sys
import threading
from collections import deque
from typing import Any, Final, Literal

import msgspec

from ._errors import ProtocolError

__all__ = [
    "ANC_SIZE",
    "CONTROL_METHOD",
    "EXT_NDARRAY",
    "EXT_SHM",
    "MAX_FDS",
    "MSG_CTRUNC",
    "RECV_FLAGS",
    "SHM_THRESHOLD",
    "FdFrame",
    "Spares",
    "close_fds",
    "decode_ndarray",
    "encode_ndarray",
    "fds_from_ancillary",
    "lift",
    "map_shared",
    "supported",
    "wanted",
]

# Where a memfd starts to beat the socket. Measured here (one `bytes` argument, round trip,
# medians): 128 KiB inline 0.14 ms / memfd 0.24 ms; 192 KiB 0.38 / 0.28; 256 KiB 0.97 / 0.34;
# 1 MiB 1.8 / 1.3. Past the Unix socket's buffer (~208 KiB) inline needs several wake-ups.
SHM_THRESHOLD: Final = 256 * 1024
# Buffers per frame that may go through shared memory; the rest of a frame goes inline.
MAX_FDS: Final = 16
ANC_SIZE: Final = socket.CMSG_SPACE(MAX_FDS * 4) if hasattr(socket, "CMSG_SPACE") else 0
# Received descriptors are close-on-exec from the start: a plugin launched meanwhile by
# another thread must not inherit them.
RECV_FLAGS: Final = int(getattr(socket, "MSG_CMSG_CLOEXEC", 0))
# The only received flag that matters: ancillary data was cut short. A plain int, because the
# socket module's flags are enum members whose `&` runs Python code on every read (and Linux
# echoes MSG_CMSG_CLOEXEC back in every read's flags).
MSG_CTRUNC: Final = int(getattr(socket, "MSG_CTRUNC", 0))
EXT_SHM: Final = 2
# The control method that asks the peer to read with recvmsg() from now on. Reading with
# recv_into() is ~1 µs cheaper per read, but would drop (close) descriptors sent along; so a
# peer reads with recvmsg() only once asked, before the first descriptor is sent to it.
CONTROL_METHOD: Final = "tether.shm"
EXT_NDARRAY: Final = 3

_BYTES, _BYTEARRAY, _MEMORYVIEW, _NDARRAY = 0, 1, 2, 3
_MAX_READ: Final = 0x7FFFF000  # Linux's largest single read()
_BUFFER_KINDS: Final[dict[type, int]] = {
    bytes: _BYTES,
    bytearray: _BYTEARRAY,
    memoryview: _MEMORYVIEW,
}
_SEALS: Final = getattr(os, "MFD_ALLOW_SEALING", 0) | getattr(os, "MFD_CLOEXEC", 0)
_header = msgspec.msgpack.Encoder()
# Typed decoders, built on first use: building them at import costs a plugin's start-up.
_decoders: dict[str, Any] = {}


def _decoder(name: str) -> Any:
    decoder = _decoders.get(name)
    if decoder is None:
        shape: Any = tuple[str, tuple[int, ...], bytes]
        if name == "header":
            shape = tuple[int, int, str, tuple[int, ...]]
        decoder = _decoders[name] = msgspec.msgpack.Decoder(shape)
    return decoder


def supported(sock: socket.socket) -> bool:
    """Whether buffers on this connection may go through shared memory."""
    return (
        hasattr(os, "memfd_create")
        and type(sock) is socket.socket  # not an SSLSocket: TLS cannot carry descriptors
        and sock.family == getattr(socket, "AF_UNIX", None)
    )


class FdFrame:
    """An encoded frame whose shared-memory buffers travel as the descriptors `fds`."""

    __slots__ = ("data", "fds")

    def __init__(self, data: bytes, fds: list[int]) -> None:
        self.data = data
        self.fds = fds


def close_fds(fds: list[int]) -> None:
    """Close and forget the descriptors: a second call closes nothing (fd numbers get reused)."""
    while fds:
        fd = fds.pop()
        try:
            os.close(fd)
        except OSError:
            pass


def _ndarray_type() -> Any:
    numpy = sys.modules.get("numpy")
    return None if numpy is None else numpy.ndarray


# Kept memfds (see Spares): how many per connection, and the largest kept.
_SPARES: Final = 2
_SPARE_MAX: Final = 256 * 1024 * 1024


class Spares:
    """A connection's memfds of earlier large `bytes` / `bytearray` arguments, for reuse.

    Writing into a fresh memfd allocates its pages (4 KiB each: shared memory seldom gets huge
    pages) and the last close frees them again: ~35 of the ~60 ms a 64 MiB call took, against
    ~13 ms for writing into pages already there. A receiver copies a `bytes` / `bytearray`
    out while decoding the request and closes its descriptor then (tether always has: such a
    buffer is never delivered as a view), so once the call's answer has come, the caller's
    duplicate is the memfd's only reference and the next call may overwrite it. Only a call's
    arguments are kept: a side that sent a result or stream item never learns when the peer
    has read it.
    """

    __slots__ = ("_closed", "_files", "_lock")

    def __init__(self) -> None:
        self._files: list[tuple[int, int]] = []  # (descriptor, file size)
        self._lock = threading.Lock()
        self._closed = False

    def take(self, size: int) -> tuple[int, int] | None:
        """A kept memfd that fits `size` bytes without wasting more than as much again."""
        with self._lock:
            for i, (fd, have) in enumerate(self._files):
                if size <= have <= 2 * size:
                    del self._files[i]
                    return fd, have
        return None

    def settle(self, kept: list[tuple[int, int]], answered: bool) -> None:
        """Keep a call's memfds once it was answered; otherwise (timed out, failed) close them.

        A call that timed out may still be read by the peer: its memfds are never reused.
        """
        drop = []
        with self._lock:
            for fd, size in kept:
                if answered and not self._closed and size <= _SPARE_MAX:
                    self._files.append((fd, size))
                else:
                    drop.append(fd)
            while len(self._files) > _SPARES:
                drop.append(self._files.pop(0)[0])
        kept.clear()
        close_fds(drop)

    def close(self) -> None:
        """Close the kept memfds; later ones are closed as they are settled."""
        with self._lock:
            self._closed = True
            drop = [fd for fd, _ in self._files]
            self._files.clear()
        close_fds(drop)


def _write_memfd(
    view: memoryview,
    fds: list[int],
    spares: Spares | None = None,
    kept: list[tuple[int, int]] | None = None,
) -> int:
    size = len(view)
    spare = spares.take(size) if spares is not None else None
    if spare is not None:
        fd, file_size = spare
        fds.append(fd)
        done = 0
        while done < size:
            done += os.pwrite(fd, view[done:], done)
    else:
        fd = os.memfd_create("tether", _SEALS)
        fds.append(fd)
        file_size = size
        # write() fills the file's pages in the kernel: no page faults as through a mapping.
        done = 0
        while done < size:
            done += os.write(fd, view[done:])
        try:
            import fcntl

            # The receiver maps `size` bytes: a file the sender could shrink would SIGBUS it.
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
        except (ImportError, AttributeError, OSError):
            pass
    if kept is not None:
        # The sent descriptor is closed once sent; this duplicate keeps the file for reuse.
        kept.append((os.dup(fd), file_size))
    return size


def _lift_one(
    value: Any,
    fds: list[int],
    spares: Spares | None = None,
    kept: list[tuple[int, int]] | None = None,
) -> Any:
    """`value` as a shared-memory reference if it is a large buffer, else unchanged."""
    kind = _BUFFER_KINDS.get(type(value))
    if kind is not None:
        view = memoryview(value)
        if view.nbytes < SHM_THRESHOLD or len(fds) >= MAX_FDS:
            return value
        # The inline path cannot send a strided view at all; here it costs one more copy.
        view = view.cast("B") if view.c_contiguous else memoryview(view.tobytes())
        if kind == _MEMORYVIEW:
            spares = kept = None  # the receiver maps it for as long as it likes
        size = _write_memfd(view, fds, spares, kept)
        return msgspec.msgpack.Ext(EXT_SHM, _header.encode((kind, size, "", ())))
    ndarray = _ndarray_type()
    if ndarray is not None and isinstance(value, ndarray):
        return _lift_array(value, fds)
    return value


def _lift_array(array: Any, fds: list[int]) -> Any:
    if array.dtype.hasobject:
        raise TypeError("numpy arrays of Python objects cannot be sent")
    if array.nbytes < SHM_THRESHOLD or len(fds) >= MAX_FDS:
        return encode_ndarray(array)
    numpy = sys.modules["numpy"]
    view = memoryview(numpy.ascontiguousarray(array)).cast("B")
    size = _write_memfd(view, fds)
    return msgspec.msgpack.Ext(
        EXT_SHM, _header.encode((_NDARRAY, size, array.dtype.str, array.shape))
    )


_NO_FDS: Final[list[int]] = []


def wanted(message: list[Any] | tuple[Any, ...]) -> bool:
    """Whether `lift` would move something of this message into shared memory."""
    kind = message[0]
    if kind == 0:  # REQUEST
        values = message[4]
    elif kind == 1 or kind == 3:  # RESPONSE, STREAM_ITEM
        values = (message[2],)
    else:
        return False
    ndarray = _ndarray_type()
    for value in values:
        t = type(value)
        if t in _BUFFER_KINDS:
            if (value.nbytes if t is memoryview else len(value)) >= SHM_THRESHOLD:
                return True
        elif ndarray is not None and isinstance(value, ndarray) and value.nbytes >= SHM_THRESHOLD:
            return True
    return False


def lift(
    message: list[Any] | tuple[Any, ...],
    spares: Spares | None = None,
    kept: list[tuple[int, int]] | None = None,
) -> tuple[list[Any] | tuple[Any, ...], list[int]]:
    """The message with its large buffers moved into memfds, and those descriptors.

    Only the payload slot of a message is looked at: a REQUEST's arguments, the value of a
    RESPONSE or STREAM_ITEM. The caller closes the descriptors once they are sent (or the
    encoding failed). With `spares` and `kept` (a call's arguments only), `bytes` and
    `bytearray` buffers may reuse a kept memfd, and a duplicate of each of their descriptors
    is added to `kept`, for the caller to settle (Spares.settle) once the call is over.
    """
    if not wanted(message):
        return message, _NO_FDS
    kind = message[0]
    values = message[4] if kind == 0 else (message[2],)
    fds: list[int] = []
    try:
        lifted = [_lift_one(v, fds, spares, kept) for v in values]
    except BaseException:
        close_fds(fds)
        if kept:
            close_fds([fd for fd, _ in kept])
            kept.clear()
        raise
    if not fds:
        return message, _NO_FDS
    if kind == 0:
        return [*message[:4], lifted], fds
    return [message[0], message[1], lifted[0]], fds


def encode_ndarray(array: Any) -> msgspec.msgpack.Ext:
    """A numpy array as an inline extension value: dtype, shape and the raw bytes."""
    if array.dtype.hasobject:
        raise TypeError("numpy arrays of Python objects cannot be sent")
    numpy = sys.modules["numpy"]
    data = numpy.ascontiguousarray(array).tobytes()
    return msgspec.msgpack.Ext(EXT_NDARRAY, _header.encode((array.dtype.str, array.shape, data)))


def decode_ndarray(data: memoryview) -> Any:
    """A numpy array sent inline (extension type 3)."""
    try:
        dtype, shape, raw = _decoder("inline").decode(data)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"malformed numpy array (msgpack extension type 3): {exc}") from None
    return _ndarray(raw, dtype, shape)


def _ndarray(buffer: Any, dtype: str, shape: tuple[int, ...]) -> Any:
    try:
        import numpy  # only when the peer sent an array
    except ImportError:
        raise ProtocolError(
            "the peer sent a numpy array (msgpack extension type 3), but numpy is not "
            "installed here; install numpy or send the data as bytes"
        ) from None
    try:
        if isinstance(buffer, bytes):
            buffer = bytearray(buffer)  # a writable array, like the sender's
        return numpy.frombuffer(buffer, dtype=dtype).reshape(shape)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed numpy array (msgpack extension type 3): {exc}") from None


def fds_from_ancillary(
    ancillary: list[tuple[int, int, bytes]], flags: int, into: deque[int]
) -> None:
    """Queue the descriptors of received SCM_RIGHTS data (in order of arrival)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            count = len(data) // 4
            into.extend(
                int.from_bytes(data[i * 4 : i * 4 + 4], sys.byteorder) for i in range(count)
            )
    if flags & MSG_CTRUNC:
        raise ProtocolError(f"the peer sent more than {MAX_FDS} shared buffers in one read")


# Huge pages for a fresh copy from this size on: below it the saved faults do not pay for
# the ctypes calls.
_HUGE_FROM: Final = 4 * 1024 * 1024
_HUGE_PAGE: Final = 2 * 1024 * 1024
# (new bytes, new bytearray, address of a bytes' data, of a bytearray's data, madvise), built
# on first use: ctypes costs a plugin's start-up ~3 ms. False: not available here.
_Native = tuple[Any, Any, Any, Any, Any]
_native: _Native | Literal[False] | None = None


def _native_calls() -> _Native | None:
    global _native
    if _native is None:
        _native = False
        try:
            import ctypes

            api = ctypes.pythonapi
            calls = []
            for new, address in (
                (api.PyBytes_FromStringAndSize, api.PyBytes_AsString),
                (api.PyByteArray_FromStringAndSize, api.PyByteArray_AsString),
            ):
                new.restype, new.argtypes = ctypes.py_object, (ctypes.c_void_p, ctypes.c_ssize_t)
                address.restype, address.argtypes = ctypes.c_void_p, (ctypes.py_object,)
                calls.append((new, address))
            madvise = ctypes.CDLL(None).madvise
            madvise.restype = ctypes.c_int
            madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
            _ = mmap.MADV_HUGEPAGE
            found: _Native = (calls[0][0], calls[1][0], calls[0][1], calls[1][1], madvise)
            _native = found
        except (ImportError, AttributeError, OSError):
            pass
    return _native or None


def _huge_copy(fd: int, size: int, kind: int) -> bytes | bytearray | None:
    """A fresh `bytes` / `bytearray` of the memfd's first `size` bytes, backed by huge pages.

    The copy's cost is its page faults, not the copy: 16,384 faults of 4 KiB pages for 64 MiB
    (measured 45-50 ms) against 32 of 2 MiB (~20 ms). Python allocates a large bytes with
    malloc, whose fresh mapping is not madvised (THP is "madvise" on common systems), so the
    object is made unfilled through the C API (its documented way to build one), madvised
    before the first touch, and read into by the kernel before anyone else sees it.
    """
    calls = _native_calls()
    if calls is None:
        return None
    import ctypes

    new_bytes, new_bytearray, bytes_at, bytearray_at, madvise = calls
    owned: bytes | bytearray = (new_bytes if kind == _BYTES else new_bytearray)(None, size)
    address = (bytes_at if kind == _BYTES else bytearray_at)(owned)
    start = (address + _HUGE_PAGE - 1) & ~(_HUGE_PAGE - 1)
    end = (address + size) & ~(_HUGE_PAGE - 1)
    if end > start:
        madvise(start, end - start, mmap.MADV_HUGEPAGE)  # a refusal only costs the speed-up
    view = memoryview((ctypes.c_char * size).from_address(address)).cast("B")
    done = 0
    while done < size:
        got = os.preadv(fd, [view[done : done + _MAX_READ]], done)
        if got <= 0:
            return None
        done += got
    return owned


def _read_owned(fd: int, size: int, kind: int) -> bytes | bytearray | None:
    """The buffer as a `bytes` / `bytearray` of its own, copied by read(); None: map it."""
    if size >= _HUGE_FROM:
        owned = _huge_copy(fd, size, kind)
        if owned is not None:
            return owned
    if kind == _BYTES and size <= _MAX_READ:
        # read() copies in the kernel, cheaper than mapping and copying (measured 60 against
        # 85 ms at 64 MiB).
        copied = os.pread(fd, size, 0)
        if len(copied) == size:
            return copied
    return None


def map_shared(data: memoryview, fds: deque[int]) -> Any:
    """The buffer a shared-memory reference stands for; consumes its descriptor."""
    try:
        kind, size, dtype, shape = _decoder("header").decode(data)
    except msgspec.DecodeError as exc:
        raise ProtocolError(
            f"malformed shared-memory reference (msgpack extension type 2): {exc}"
        ) from None
    if not fds:
        raise ProtocolError(
            "a shared-memory reference (msgpack extension type 2) arrived without its file "
            "descriptor"
        )
    fd = fds.popleft()
    try:
        if os.fstat(fd).st_size < size or size <= 0:
            raise ProtocolError("a shared-memory buffer is smaller than its reference says")
        if kind in (_BYTES, _BYTEARRAY):
            # Copied (and the descriptor closed) now, while the message is decoded, never
            # later: the sender of a call reuses this memfd once the call is answered (Spares).
            owned = _read_owned(fd, size, kind)
            if owned is not None:
                return owned
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        mapping = mmap.mmap(fd, size, flags=flags)
    finally:
        os.close(fd)
    if kind == _BYTES:
        with mapping:
            return mapping[:]
    if kind == _BYTEARRAY:
        with mapping:
            return bytearray(mapping)
    if kind == _MEMORYVIEW:
        return memoryview(mapping)  # the view keeps the mapping alive
    if kind == _NDARRAY:
        return _ndarray(mapping, dtype, shape)
    mapping.close()
    raise ProtocolError(f"unknown shared-memory buffer kind {kind} (msgpack extension type 2)")
