"""Requests that arrive in one read: replies sent in groups, none held back for long.

A plugin reading several pipelined requests at once holds a reply back while more of them
wait to run, then sends a few together. These tests check that every reply arrives, and
that a reply never waits for a later request that runs long, blocks, fails or streams.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import msgspec
import pytest

from _scripted import Peer, serving
from tether import Interface
from tether._dispatch import ExportTable
from tether._endpoint import SyncEndpoint
from tether._wire import ERROR, RESPONSE, STREAM_END, STREAM_ITEM


class Work(Interface):
    def double(self, x: int) -> int: ...  # type: ignore[empty-body]

    def wait_for_release(self) -> bool: ...  # type: ignore[empty-body]

    def fail(self) -> int: ...  # type: ignore[empty-body]

    def count(self, n: int) -> Iterator[int]: ...  # type: ignore[empty-body]

    async def later(self, x: int) -> int: ...  # type: ignore[empty-body]


class WorkImpl(Work):
    def __init__(self) -> None:
        self.release = threading.Event()

    def double(self, x: int) -> int:
        return 2 * x

    def wait_for_release(self) -> bool:
        return self.release.wait(10)

    def fail(self) -> int:
        raise ValueError("refused on purpose")

    def count(self, n: int) -> Iterator[int]:
        yield from range(n)

    async def later(self, x: int) -> int:
        await asyncio.sleep(0)
        return x + 1


@pytest.fixture
def served() -> Iterator[tuple[Peer, int, SyncEndpoint, WorkImpl]]:
    impl = WorkImpl()
    with serving(impl, Work) as (peer, oid, ep):
        yield peer, oid, ep, impl
        impl.release.set()


def _answers(peer: Peer, n: int) -> dict[int, list[object]]:
    got = {}
    for _ in range(n):
        message = peer.answer()
        got[message[1]] = message
    return got


def _doubled(ids: list[int]) -> list[list[object]]:
    """The answers of double(0), double(1) ... sent with these call ids."""
    return [[RESPONSE, cid, 2 * i] for i, cid in enumerate(ids)]


def test_every_reply_of_a_large_batch_arrives(
    served: tuple[Peer, int, SyncEndpoint, WorkImpl],
) -> None:
    peer, oid, _, _ = served
    ids = peer.send(*[(oid, "double", [i]) for i in range(64)])
    got = _answers(peer, 64)
    assert [got[cid] for cid in ids] == _doubled(ids)


def test_replies_do_not_wait_for_a_request_that_blocks(
    served: tuple[Peer, int, SyncEndpoint, WorkImpl],
) -> None:
    # The blocking request waits until the test has read the replies sent before it: a
    # reply held back until that request ended would never come (peer.answer times out).
    peer, oid, _, impl = served
    ids = peer.send(*[(oid, "double", [i]) for i in range(5)], (oid, "wait_for_release", []))
    got = _answers(peer, 5)
    assert [got[cid] for cid in ids[:5]] == _doubled(ids[:5])
    impl.release.set()
    assert peer.answer() == [RESPONSE, ids[5], True]


def test_a_long_request_read_with_others_still_replies(
    served: tuple[Peer, int, SyncEndpoint, WorkImpl],
) -> None:
    # The blocking request loses the reading role while it runs; the requests read with it
    # are answered by the next reader, which then sleeps: the blocking request's reply
    # must go out at once when it ends, not be held back for a reader gone to sleep.
    peer, oid, _, impl = served
    ids = peer.send((oid, "wait_for_release", []), (oid, "double", [0]), (oid, "double", [1]))
    assert _answers(peer, 2) == dict(zip(ids[1:], _doubled(ids[1:]), strict=True))
    impl.release.set()
    assert peer.answer() == [RESPONSE, ids[0], True]


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        (("fail", []), ERROR),
        (("count", [3]), STREAM_ITEM),
        (("later", [1]), RESPONSE),
        (("no_such_method", []), ERROR),
    ],
    ids=["error", "stream", "async", "refused"],
)
def test_replies_before_another_kind_of_answer_arrive(
    served: tuple[Peer, int, SyncEndpoint, WorkImpl],
    last: tuple[str, list[object]],
    expected: int,
) -> None:
    peer, oid, ep, _ = served
    ids = peer.send(*[(oid, "double", [i]) for i in range(3)], (oid, *last))
    got = _answers(peer, 4)
    assert [got[cid] for cid in ids[:3]] == _doubled(ids[:3])
    assert got[ids[3]][0] == expected
    if expected == STREAM_ITEM:
        # The plugin sends a few items ahead without credit; then the stream ends.
        kinds = [peer.answer()[0] for _ in range(3)]
        assert kinds == [STREAM_ITEM, STREAM_ITEM, STREAM_END]
    assert not ep.closed


# --- the calling side: requests of several threads in one send -------------------------------


def test_requests_queued_behind_a_blocked_send_all_go_out() -> None:
    # One thread's large request blocks in sendall (the peer is not reading yet); the small
    # requests of three more threads queue behind it instead of waiting for the send lock,
    # and the blocked thread sends them once its own is out.
    ours, theirs = socket.socketpair()
    ep = SyncEndpoint(ours, name="caller", exports=ExportTable(), control=lambda *_: None)
    reading = threading.Event()

    def answer_everything() -> None:
        reading.wait(10)
        peer = Peer(theirs)
        while True:
            try:
                message = peer.answer()
            except (ConnectionError, OSError):
                return
            theirs.sendall(_frame([RESPONSE, message[1], message[3]]))

    answerer = threading.Thread(target=answer_everything, daemon=True)
    answerer.start()
    results: dict[str, object] = {}

    def call(name: str, args: list[object]) -> None:
        results[name] = ep.control_call(name, args, timeout=20)

    big = threading.Thread(target=call, args=("big", [b"x" * 8_000_000]))
    big.start()
    _until(lambda: ep._send_lock.locked())
    small = [threading.Thread(target=call, args=(f"small{i}", [])) for i in range(3)]
    for thread in small:
        thread.start()
    _until(lambda: len(ep._outbox) == 3)  # queued, not asleep on the lock
    reading.set()
    for thread in [big, *small]:
        thread.join(20)
    assert results == {"big": "big", "small0": "small0", "small1": "small1", "small2": "small2"}
    assert ep._outbox == []
    theirs.close()
    ep.close()
    answerer.join(10)


def _frame(message: list[object]) -> bytes:
    body = msgspec.msgpack.encode(message)
    return struct.pack(">I", len(body)) + body


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)
