"""The blocking endpoint's reader checks every message it reads (its check is inlined there).

A scripted peer on a real socket pair answers one request with a chosen frame.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest

from tether._dispatch import ExportTable
from tether._endpoint import SyncEndpoint
from tether._errors import ProtocolError

Reply = Callable[[int], bytes]


def _frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("endpoint closed the socket")
        data += chunk
    return data


def _answer_once(sock: socket.socket, reply: Reply) -> None:
    """Read one request frame and answer it with `reply(call_id)`."""
    (size,) = struct.unpack(">I", _recv_exactly(sock, 4))
    request = msgspec.msgpack.decode(_recv_exactly(sock, size))
    sock.sendall(reply(request[1]))


@pytest.fixture
def pair() -> Iterator[tuple[SyncEndpoint, socket.socket]]:
    ours, theirs = socket.socketpair()
    ep = SyncEndpoint(
        ours, name="scripted", exports=ExportTable(), control=lambda *_: None, inline=False
    )
    try:
        yield ep, theirs
    finally:
        ep.close()
        theirs.close()


def _call_answered_by(pair: tuple[SyncEndpoint, socket.socket], reply: Reply) -> Any:
    ep, theirs = pair
    peer = threading.Thread(target=_answer_once, args=(theirs, reply), daemon=True)
    peer.start()
    try:
        return ep.control_call("ping", [], timeout=10)
    finally:
        peer.join(10)


def test_a_valid_response_is_delivered(pair: tuple[SyncEndpoint, socket.socket]) -> None:
    result = _call_answered_by(pair, lambda cid: _frame(msgspec.msgpack.encode([1, cid, "pong"])))
    assert result == "pong"
    assert not pair[0].closed


@pytest.mark.parametrize(
    ("reply", "complaint"),
    [
        (lambda cid: _frame(msgspec.msgpack.encode([1, cid])), "must have 3 fields"),
        (lambda cid: _frame(msgspec.msgpack.encode("pong")), "not a non-empty array"),
        (lambda cid: _frame(msgspec.msgpack.encode([])), "not a non-empty array"),
        (lambda cid: _frame(msgspec.msgpack.encode([9, cid])), "unknown message kind"),
        (lambda cid: _frame(msgspec.msgpack.encode([1, "x", 1])), "id must be an integer"),
        (lambda cid: _frame(msgspec.msgpack.encode([0, 7, 0, 5, []])), "target must be"),
        (lambda cid: _frame(msgspec.msgpack.encode([0, 7, 0, "m", 5])), "must be an array"),
        (lambda cid: _frame(b"\xc1"), "malformed message"),
        (lambda cid: _frame(b"\x91" * 5000 + b"\x90"), "malformed message"),
    ],
    ids=[
        "arity",
        "not-a-list",
        "empty",
        "unknown-kind",
        "bad-id",
        "bad-method",
        "bad-args",
        "bad-msgpack",
        "deep-nesting",
    ],
)
def test_a_malformed_message_fails_the_connection(
    pair: tuple[SyncEndpoint, socket.socket], reply: Reply, complaint: str
) -> None:
    with pytest.raises(ProtocolError, match=complaint):
        _call_answered_by(pair, reply)
    assert pair[0].closed


# --- the asyncio endpoint's reader (its check for answers is inlined too) ----------------

MALFORMED = [
    (lambda cid: _frame(msgspec.msgpack.encode([1, cid])), "must have 3 fields"),
    (lambda cid: _frame(msgspec.msgpack.encode([1, "x", 1])), "id must be an integer"),
    (lambda cid: _frame(msgspec.msgpack.encode([9, cid])), "unknown message kind"),
    (lambda cid: _frame(msgspec.msgpack.encode([True, cid, 1])), "unknown message kind"),
    (lambda cid: _frame(b"\xc1"), "malformed message"),
    (lambda cid: _frame(b"\x91" * 5000 + b"\x90"), "malformed message"),
]


async def _async_call_answered_by(reply: Reply) -> Any:
    import asyncio

    from tether._aio import AsyncEndpoint

    ours, theirs = socket.socketpair()
    ep = AsyncEndpoint(name="scripted", exports=ExportTable())
    await asyncio.get_running_loop().create_connection(lambda: ep, sock=ours)
    peer = threading.Thread(target=_answer_once, args=(theirs, reply), daemon=True)
    peer.start()
    try:
        return await ep.control_call("ping", [], timeout=10)
    finally:
        await ep.aclose()
        peer.join(10)
        theirs.close()


async def test_async_a_valid_response_is_delivered() -> None:
    reply: Reply = lambda cid: _frame(msgspec.msgpack.encode([1, cid, "pong"]))  # noqa: E731
    assert await _async_call_answered_by(reply) == "pong"


@pytest.mark.parametrize(
    ("reply", "complaint"),
    MALFORMED,
    ids=["arity", "bad-id", "unknown-kind", "bool-kind", "bad-msgpack", "deep-nesting"],
)
async def test_async_a_malformed_message_fails_the_connection(reply: Reply, complaint: str) -> None:
    with pytest.raises(ProtocolError, match=complaint):
        await _async_call_answered_by(reply)
