"""A scripted peer for a serving endpoint: hand-made request frames on a real socket pair.

The endpoint serves inline, as in a plugin; the peer writes frames exactly as a test wants
them (several in one write, or values a tether host would refuse before sending).
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from tether._dispatch import ExportTable
from tether._endpoint import SyncEndpoint
from tether._wire import REQUEST


class Peer:
    """The scripted side: sends request frames, reads the answers."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(10)
        self.next_id = 1

    def send(self, *requests: tuple[int, str, list[Any]]) -> list[int]:
        """Send requests (object id, method, arguments) in one write; their call ids."""
        ids, data = [], b""
        for oid, method, args in requests:
            cid, self.next_id = self.next_id, self.next_id + 1
            payload = msgspec.msgpack.encode([REQUEST, cid, oid, method, args])
            data += struct.pack(">I", len(payload)) + payload
            ids.append(cid)
        self.sock.sendall(data)
        return ids

    def answer(self) -> list[Any]:
        """The next message the endpoint sent (10 s at most)."""
        (size,) = struct.unpack(">I", self._exactly(4))
        return list(msgspec.msgpack.decode(self._exactly(size)))

    def call(self, oid: int, method: str, args: list[Any]) -> list[Any]:
        (cid,) = self.send((oid, method, args))
        answer = self.answer()
        assert answer[1] == cid
        return answer

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the endpoint closed the socket")
            data += chunk
        return data


@contextmanager
def serving(impl: object, interface: type[Any]) -> Iterator[tuple[Peer, int, SyncEndpoint]]:
    """An inline endpoint serving `impl` in a thread, the peer, and the object's id."""
    ours, theirs = socket.socketpair()
    exports = ExportTable()
    oid = exports.add(impl, interface)
    ep = SyncEndpoint(ours, name="scripted", exports=exports, control=lambda *_: None, inline=True)
    server = threading.Thread(target=ep.serve, daemon=True)
    server.start()
    try:
        yield Peer(theirs), oid, ep
    finally:
        theirs.close()
        ep.close()
        server.join(10)
        assert not server.is_alive()
