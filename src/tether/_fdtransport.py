"""An asyncio transport for Unix sockets that also carries file descriptors (SCM_RIGHTS).

asyncio's own socket transports read with recv_into() and drop ancillary data, so the
shared-memory path (see _shm.py) needs its own: reads use recvmsg_into() into the protocol's
buffer, and `send_fds` sends a frame with descriptors in order with everything written before.
Only what AsyncEndpoint uses of a transport is implemented.
"""

from __future__ import annotations

import array
import asyncio
import socket
from collections import deque
from collections.abc import Iterable
from typing import Any, Final, Protocol

from . import _shm

__all__ = ["FdProtocol", "FdTransport", "open_fd_connection"]

_BATCH_LIMIT: Final = 16 * 1024  # writes from this size on go out at once


class FdProtocol(Protocol):
    """A BufferedProtocol that is also told about descriptors received along with data."""

    def get_buffer(self, sizehint: int) -> memoryview: ...

    def buffer_updated(self, nbytes: int) -> None: ...

    def eof_received(self) -> bool | None: ...

    def connection_made(self, transport: asyncio.BaseTransport) -> None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...

    def fds_received(self, ancillary: list[tuple[int, int, bytes]], flags: int) -> None: ...


class FdTransport(asyncio.Transport):
    """A connected Unix socket driven by the event loop for a BufferedProtocol."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol: FdProtocol,
    ) -> None:
        super().__init__()
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        # Unsent data in order: (bytes still to go, descriptors to send with its first byte).
        self._queue: deque[tuple[memoryview, list[int] | None]] = deque()
        self._closing = False
        self._lost = False
        self._reading = True
        self._fds = False  # read with recvmsg(): see read_fds()
        self._batch: list[bytes] | None = None  # small writes of this event-loop pass
        loop.add_reader(self._fd, self._read_ready)

    # ----------------------------------------------------------------- reading

    def read_fds(self) -> None:
        """Read with recvmsg() from now on: the peer is about to send descriptors.

        recv_into() is cheaper but would drop (close) descriptors that came along.
        """
        self._fds = True

    def _read_ready(self) -> None:
        protocol = self._protocol
        try:
            if self._fds:
                size, ancillary, flags, _ = self._sock.recvmsg_into(
                    [protocol.get_buffer(-1)], _shm.ANC_SIZE, _shm.RECV_FLAGS
                )
            else:
                size = self._sock.recv_into(protocol.get_buffer(-1))
                ancillary, flags = [], 0
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._connection_lost(exc)
            return
        if ancillary or flags & _shm.MSG_CTRUNC:
            try:
                protocol.fds_received(ancillary, flags)
            except Exception as exc:
                self._connection_lost(exc)
                return
        if not size:
            self._loop.remove_reader(self._fd)
            self._reading = False
            if not protocol.eof_received():
                self.close()
            return
        protocol.buffer_updated(size)

    # ----------------------------------------------------------------- writing

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if len(data) < _BATCH_LIMIT and not self._closing:
            # Small frames written in one pass of the event loop (say, by 16 tasks that
            # all got their answers from one read) go out in one send() at its end.
            if type(data) is not bytes:
                data = bytes(data)  # the caller may reuse its buffer before the batch goes
            batch = self._batch
            if batch is None:
                self._batch = [data]
                self._loop.call_soon(self._flush_batch)
            else:
                batch.append(data)
            return
        self._send(memoryview(data), None)

    def _flush_batch(self) -> None:
        batch, self._batch = self._batch, None
        if batch:
            self._send(memoryview(batch[0] if len(batch) == 1 else b"".join(batch)), None)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self._send(memoryview(data), None)

    def send_fds(self, data: bytes, fds: list[int]) -> None:
        """Send `data` with `fds` attached to its first byte; the descriptors are then closed."""
        self._send(memoryview(data), list(fds))
        fds.clear()  # the transport owns (and closes) its copy of the list now

    def _send(self, data: memoryview, fds: list[int] | None) -> None:
        if self._batch:
            self._flush_batch()  # keeps the order of writes
        if self._lost or self._closing:
            # Like asyncio's transports: writes after close() are dropped.
            if fds:
                _shm.close_fds(fds)
            return
        if not self._queue:
            try:
                sent = self._send_now(data, fds)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                if fds:
                    _shm.close_fds(fds)
                self._connection_lost(exc)
                return
            if sent:
                fds = None  # gone with the first byte
            if sent == len(data):
                return
            data = data[sent:]
            self._loop.add_writer(self._fd, self._write_ready)
        self._queue.append((data, fds))

    def _send_now(self, data: memoryview, fds: list[int] | None) -> int:
        if not fds:
            return self._sock.send(data)
        try:
            ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
            sent = self._sock.sendmsg([data], ancillary)
        except (BlockingIOError, InterruptedError):
            raise
        except BaseException:
            _shm.close_fds(fds)
            raise
        _shm.close_fds(fds)
        return sent

    def _write_ready(self) -> None:
        queue = self._queue
        while queue:
            data, fds = queue[0]
            try:
                sent = self._send_now(data, fds)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._connection_lost(exc)
                return
            if sent < len(data):
                queue[0] = (data[sent:], None)
                return
            queue.popleft()
        self._loop.remove_writer(self._fd)
        if self._closing:
            self._connection_lost(None)

    def get_write_buffer_size(self) -> int:
        return sum(len(data) for data, _ in self._queue)

    # ----------------------------------------------------------------- closing

    def is_closing(self) -> bool:
        return self._closing or self._lost

    def close(self) -> None:
        if self._closing or self._lost:
            return
        if self._batch:
            self._flush_batch()
        self._closing = True
        if not self._queue:
            self._loop.call_soon(self._connection_lost, None)

    def abort(self) -> None:
        self._connection_lost(None)

    def _connection_lost(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        if self._reading:
            self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        for _, fds in self._queue:
            if fds:
                _shm.close_fds(fds)
        self._queue.clear()
        self._batch = None
        self._sock.close()
        self._loop.call_soon(
            self._protocol.connection_lost, exc if isinstance(exc, Exception) else None
        )

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self._sock
        if name == "peername":
            return self._sock.getpeername()
        return default


async def open_fd_connection(protocol: FdProtocol, path: str) -> FdTransport:
    """Like loop.create_unix_connection(), with a transport that carries descriptors."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, path)
    except BaseException:
        sock.close()
        raise
    transport = FdTransport(loop, sock, protocol)
    protocol.connection_made(transport)
    return transport
