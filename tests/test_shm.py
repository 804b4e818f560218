"""Large buffers through shared memory (memfd + SCM_RIGHTS), both drivers, real plugin."""

from __future__ import annotations

import asyncio
import mmap
import os
import random
import sys
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tether
from tether import _shm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from shm.shared import HANDSHAKE, Buffers

PLUGIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shm", "shm_plugin.py")
CMD = [sys.executable, PLUGIN]
LIMIT = 30.0  # an upper bound for "did not hang", never a performance expectation
BIG = _shm.SHM_THRESHOLD + 12_345
SIZES = [0, 17, _shm.SHM_THRESHOLD - 1, _shm.SHM_THRESHOLD, BIG]


def _payload(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + bytes(size % 256)


def _unique(size: int) -> bytes:
    """Bytes without a period: a copy off by any offset differs (unlike `_payload`)."""
    return random.Random(size).randbytes(size)


# Around where a copy starts to be made in huge pages, and across 2 MiB and 4 KiB edges.
HUGE = _shm._HUGE_FROM
HUGE_SIZES = [HUGE - 1, HUGE, HUGE + 1, 3 * _shm._HUGE_PAGE + mmap.PAGESIZE - 1, 5 * 2**20 + 17]


def _shm_files() -> set[str]:
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(scope="module")
def client() -> Iterator[tether.Client]:
    c = tether.Client(CMD, handshake=HANDSHAKE, kill_timeout=0.5)
    c.start()
    try:
        yield c
    finally:
        c.kill()
    assert c.exited


@pytest.fixture(scope="module")
def b(client: tether.Client) -> Any:
    return client.dispense("buffers", Buffers, timeout=LIMIT)


@pytest.mark.parametrize("size", SIZES)
def test_bytes_round_trip(b: Any, size: int) -> None:
    data = _payload(size)
    result = b.echo_bytes(data)
    assert type(result) is bytes
    assert result == data


@pytest.mark.parametrize("size", SIZES)
def test_bytearray_round_trip(b: Any, size: int) -> None:
    data = bytearray(_payload(size))
    result = b.echo_bytearray(data)
    assert type(result) is bytearray
    assert result == data
    result[:1] = b"x" if size else b""  # the receiver owns a writable copy


@pytest.mark.parametrize("size", SIZES)
def test_memoryview_round_trip(b: Any, size: int) -> None:
    data = _payload(size)
    result = b.echo_memoryview(memoryview(data))
    assert type(result) is memoryview
    assert result == data


@pytest.mark.parametrize("size", HUGE_SIZES)
def test_huge_buffers_round_trip_with_their_content(b: Any, size: int) -> None:
    data = _unique(size)
    result = b.echo_bytes(data)
    assert type(result) is bytes
    assert result == data
    array = b.echo_bytearray(bytearray(data))
    assert type(array) is bytearray
    assert array == data
    array[-1:] = b"x"  # the receiver owns a writable copy
    view = b.echo_memoryview(memoryview(data))
    assert isinstance(view.obj, mmap.mmap)  # still zero-copy
    assert view == data


@pytest.mark.parametrize("kind", [_shm._BYTES, _shm._BYTEARRAY])
@pytest.mark.parametrize("size", [*HUGE_SIZES, 2 * HUGE + 4096])
def test_copy_read_from_a_memfd_has_its_content(kind: int, size: int) -> None:
    data = _unique(size)
    fd = os.memfd_create("tether-test", os.MFD_CLOEXEC)
    try:
        os.write(fd, data + b"tail the reference leaves out")
        owned = _shm._huge_copy(fd, size, kind)
        assert _shm._native_calls() is not None  # the huge-page path ran, not the fallback
        assert type(owned) is (bytes if kind == _shm._BYTES else bytearray)
        assert owned == data
        # Below HUGE a bytearray is copied out of a mapping instead (None: map it).
        small_array = kind == _shm._BYTEARRAY and size < HUGE
        assert _shm._read_owned(fd, size, kind) == (None if small_array else data)
        assert hash(_shm._read_owned(fd, size, _shm._BYTES)) == hash(data)
    finally:
        os.close(fd)


def test_consecutive_calls_reusing_a_memfd_carry_each_its_own_content(b: Any) -> None:
    # Same size, then smaller (a kept memfd up to twice the size is reused), then larger.
    for size in [HUGE, HUGE, HUGE - 12_345, BIG, BIG, 2 * HUGE + 1, HUGE]:
        for data in (_unique(size), _unique(size + 1)[1:]):
            assert b.echo_bytes(data) == data
            assert b.echo_bytearray(bytearray(data)) == data
            assert b.checksum(data, memoryview(data)) == 2 * (sum(data[::4096]) + len(data))


def _request(*args: Any) -> list[Any]:
    return [0, 1, 0, "m", list(args)]  # a REQUEST as _shm.lift sees it


def _sent(fds: list[int], size: int, kind: int = _shm._BYTES) -> Any:
    """What a receiver makes of a lifted buffer (map_shared consumes and closes the fd)."""
    from tether._shm import _header

    return _shm.map_shared(memoryview(_header.encode((kind, size, "", ()))), deque(fds))


def test_spares_reuse_only_answered_calls_bytes_memfds() -> None:
    spares = _shm.Spares()
    before = _open_fds()
    first, second = _unique(BIG), _unique(BIG + 1)[1:]
    kept: list[tuple[int, int]] = []
    _, fds = _shm.lift(_request(first, memoryview(first), 1), spares, kept)
    assert len(fds) == 2
    assert len(kept) == 1  # the memoryview's memfd stays the receiver's: never reused
    inode = os.fstat(kept[0][0]).st_ino
    assert _sent(fds[:1], BIG) == first
    _shm.close_fds(fds)
    spares.settle(kept, answered=True)
    assert not kept
    _, fds = _shm.lift(_request(second), spares, kept)
    assert os.fstat(fds[0]).st_ino == inode  # the same file, overwritten
    assert _sent(fds, BIG) == second
    spares.settle(kept, answered=False)  # timed out: the peer may still read it
    _, fds = _shm.lift(_request(second), spares, kept)
    assert os.fstat(fds[0]).st_ino != inode
    _shm.close_fds(fds)
    spares.settle(kept, answered=True)
    assert spares.take(4 * BIG) is None  # too small
    assert spares.take(BIG // 2 - 1) is None  # would waste more than the buffer again
    spares.close()
    _, fds = _shm.lift(_request(bytearray(first)), spares, kept)
    _shm.close_fds(fds)
    spares.settle(kept, answered=True)  # after close: closed, not kept
    assert _open_fds() == before


def test_spares_keep_at_most_a_few_memfds() -> None:
    spares = _shm.Spares()
    before = _open_fds()
    kept: list[tuple[int, int]] = []
    for size in (BIG, 3 * BIG, 9 * BIG):
        _, fds = _shm.lift(_request(bytes(size)), spares, kept)
        _shm.close_fds(fds)
    spares.settle(kept, answered=True)
    assert _open_fds() == before + _shm._SPARES
    spares.close()
    assert _open_fds() == before


def test_large_memoryviews_are_views_of_a_mapping_both_ways(b: Any) -> None:
    assert b.origin(memoryview(_payload(BIG))) == "mmap"
    assert b.origin(memoryview(_payload(1000))) == "bytes"
    assert isinstance(b.echo_memoryview(memoryview(_payload(BIG))).obj, mmap.mmap)
    assert not isinstance(b.echo_memoryview(memoryview(_payload(1000))).obj, mmap.mmap)


def test_large_memoryview_arrives_as_a_view_on_the_plugin_side(b: Any) -> None:
    assert b.describe(memoryview(_payload(BIG))) == ["memoryview", str(BIG)]
    assert b.describe(_payload(BIG)) == ["bytes", str(BIG)]


def test_large_non_contiguous_memoryview(b: Any) -> None:
    data = memoryview(_payload(2 * BIG))[::2]
    assert b.echo_memoryview(data) == data.tobytes()


def test_two_large_arguments_in_one_call(b: Any) -> None:
    x, y = _payload(BIG), _payload(BIG + 1)[::-1]
    expected = sum(x[::4096]) + sum(y[::4096]) + len(x) + len(y)
    assert b.checksum(x, memoryview(y)) == expected


@pytest.mark.parametrize(
    "array",
    [
        np.arange(10, dtype=np.int32),
        np.arange(BIG // 56 * 7, dtype=np.float64).reshape(-1, 7)[:, :3],  # not contiguous
        np.arange(BIG // 8 + 3, dtype=np.float64),
        np.zeros((0, 3), dtype=np.uint8),
        np.arange(BIG // 4, dtype=">i4").reshape(2, -1),
    ],
)
def test_numpy_round_trip(b: Any, array: Any) -> None:
    result = b.echo_array(array)
    assert isinstance(result, np.ndarray)
    assert result.dtype == array.dtype
    assert result.shape == array.shape
    assert (result == array).all()
    if result.size:
        result.flat[0] = 1  # writable, whichever way it came


def test_numpy_inside_a_container_goes_inline(b: Any) -> None:
    arrays = {"a": np.arange(BIG // 8, dtype=np.float64), "b": np.arange(3)}
    result = b.echo_any(arrays)
    assert set(result) == {"a", "b"}
    assert (result["a"] == arrays["a"]).all()


def test_object_arrays_are_refused(b: Any) -> None:
    with pytest.raises(tether.ArgumentError):
        b.echo_array(np.array([object()], dtype=object))


def test_stream_of_large_items(b: Any) -> None:
    items = list(b.chunks(BIG, 5))
    assert [len(item) for item in items] == [BIG] * 5
    assert [item[0] for item in items] == [0, 1, 2, 3, 4]


def test_no_descriptor_leaks(b: Any) -> None:
    data, huge = _payload(BIG), _payload(HUGE + 1)

    def cycle() -> None:
        b.echo_bytes(data)
        b.echo_bytes(huge)
        b.echo_bytearray(bytearray(huge))
        b.echo_memoryview(memoryview(data))

    # Warm up lazily opened things; a mapping still referenced (the last memoryview, until
    # the next call replaces it) holds one descriptor: Python's mmap keeps a dup of it; the
    # host keeps one memfd of each size for the next call's arguments (_shm.Spares).
    cycle()
    before_host, before_plugin = _open_fds(), b.fd_count()
    for _ in range(10):
        cycle()
    assert _open_fds() == before_host
    assert b.fd_count() == before_plugin


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    size=st.sampled_from([0, 1, 100, _shm.SHM_THRESHOLD - 1, _shm.SHM_THRESHOLD, BIG]),
    kind=st.sampled_from(["bytes", "bytearray", "memoryview"]),
    fill=st.integers(0, 255),
)
def test_property_round_trip(b: Any, size: int, kind: str, fill: int) -> None:
    data = bytes([fill]) * size
    if kind == "bytes":
        assert b.echo_bytes(data) == data
    elif kind == "bytearray":
        assert b.echo_bytearray(bytearray(data)) == data
    else:
        assert b.echo_memoryview(memoryview(data)) == data


def test_closing_the_client_closes_the_kept_memfds() -> None:
    fds = _open_fds()
    with tether.Client(CMD, handshake=HANDSHAKE, kill_timeout=0.5) as c:
        buffers: Any = c.dispense("buffers", Buffers, timeout=LIMIT)
        for size in (BIG, HUGE, HUGE):
            assert buffers.echo_bytes(_payload(size)) == _payload(size)
        assert _open_fds() > fds
    assert _open_fds() <= fds


def test_plugin_crash_mid_call_leaves_nothing_behind() -> None:
    before = _shm_files()
    fds = _open_fds()
    c = tether.Client(CMD, handshake=HANDSHAKE, kill_timeout=0.5)
    c.start()
    try:
        buffers: Any = c.dispense("buffers", Buffers, timeout=LIMIT)
        with pytest.raises(tether.TetherError):
            buffers.sleep_then_exit(_payload(BIG))
    finally:
        c.kill()
    assert c.exited
    assert _shm_files() <= before
    assert _open_fds() <= fds


# ------------------------------------------------------------------ the asyncio driver


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def ab() -> AsyncIterator[Any]:
    c = tether.AsyncClient(CMD, handshake=HANDSHAKE, kill_timeout=0.5)
    await c.start()
    try:
        yield await c.dispense("buffers", Buffers, timeout=LIMIT)
    finally:
        await c.kill()


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("size", SIZES)
async def test_async_round_trips(ab: Any, size: int) -> None:
    data = _payload(size)
    assert await ab.echo_bytes(data) == data
    result = await ab.echo_bytearray(bytearray(data))
    assert type(result) is bytearray
    assert result == data
    view = await ab.echo_memoryview(memoryview(data))
    assert type(view) is memoryview
    assert view == data
    assert isinstance(view.obj, mmap.mmap) == (size >= _shm.SHM_THRESHOLD)
    assert await ab.origin(memoryview(data)) == ("mmap" if size >= _shm.SHM_THRESHOLD else "bytes")
    array = np.frombuffer(data, dtype=np.uint8)
    assert (await ab.echo_array(array) == array).all()


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("size", [HUGE - 1, HUGE + 4097])
async def test_async_huge_round_trips(ab: Any, size: int) -> None:
    data = _unique(size)
    assert await ab.echo_bytes(data) == data
    result = await ab.echo_bytearray(bytearray(data))
    assert type(result) is bytearray
    assert result == data
    assert await ab.echo_memoryview(memoryview(data)) == data


@pytest.mark.asyncio(loop_scope="module")
async def test_async_calls_reusing_memfds_carry_each_its_own_content(ab: Any) -> None:
    for size in [HUGE, HUGE, HUGE - 777, BIG, 2 * HUGE + 1]:
        data = _unique(size)
        assert await ab.echo_bytes(data) == data
        assert await ab.echo_bytearray(bytearray(data[::-1])) == data[::-1]
    payloads = [_unique(HUGE + i) for i in range(4)]
    assert await asyncio.gather(*(ab.echo_bytes(p) for p in payloads)) == payloads


@pytest.mark.asyncio(loop_scope="module")
async def test_async_concurrent_large_calls(ab: Any) -> None:
    payloads = [_payload(BIG + i) for i in range(8)]
    results = await asyncio.gather(*(ab.echo_bytes(p) for p in payloads))
    assert results == payloads


@pytest.mark.asyncio(loop_scope="module")
async def test_async_stream_of_large_items(ab: Any) -> None:
    items = [item async for item in ab.chunks(BIG, 4)]
    assert [len(item) for item in items] == [BIG] * 4


@pytest.mark.asyncio(loop_scope="module")
async def test_async_no_descriptor_leaks(ab: Any) -> None:
    data, huge = _payload(BIG), _payload(HUGE)
    # The host keeps one memfd of each size for the next call's arguments (_shm.Spares).
    await ab.echo_bytes(data)
    await ab.echo_bytes(huge)
    before = _open_fds()
    for _ in range(10):
        await ab.echo_bytes(data)
        await ab.echo_bytes(huge)
    assert _open_fds() == before


# ------------------------------------------------------------------ TCP keeps the inline path


def test_tcp_with_tls_carries_large_buffers_inline() -> None:
    c = tether.Client(CMD, handshake=HANDSHAKE, kill_timeout=0.5, transport="tcp", auto_mtls=True)
    c.start()
    try:
        buffers: Any = c.dispense("buffers", Buffers, timeout=LIMIT)
        data = _payload(BIG)
        assert buffers.echo_bytes(data) == data
        view = buffers.echo_memoryview(memoryview(data))
        assert view == data
        assert not isinstance(view.obj, mmap.mmap)
        assert buffers.origin(memoryview(data)) == "bytes"
        array = np.arange(BIG // 8, dtype=np.float64)
        assert (buffers.echo_array(array) == array).all()
    finally:
        c.kill()
    assert c.exited


@pytest.mark.asyncio(loop_scope="module")
async def test_async_tcp_with_tls_carries_large_buffers_inline() -> None:
    c = tether.AsyncClient(
        CMD, handshake=HANDSHAKE, kill_timeout=0.5, transport="tcp", auto_mtls=True
    )
    await c.start()
    try:
        buffers: Any = await c.dispense("buffers", Buffers, timeout=LIMIT)
        data = _payload(BIG)
        assert await buffers.echo_bytes(data) == data
        assert await buffers.origin(memoryview(data)) == "bytes"
    finally:
        await c.kill()
