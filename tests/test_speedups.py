"""The optional C extension (tether._speedups) and the same protocol without it."""

from __future__ import annotations

import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import MakeClient
from plugins.helper import Echo
from tether import _speedups
from tether._endpoint import load_speedups
from tether._env import ENV_SPEEDUPS, ENV_SPIN_US

BUDGET = 200_000_000  # 0.2 s: long enough for a thread of this test to act during the poll


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_the_extension_is_built_and_used_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # `pip install -e .` builds it here (gcc and Python's headers are on the machine): the
    # suite must not fall back to the pure-Python path without saying so.
    monkeypatch.delenv(ENV_SPEEDUPS, raising=False)
    assert load_speedups() is _speedups


def test_speedups_off_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_SPEEDUPS, "0")
    assert load_speedups() is None


def test_reads_what_is_waiting(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    b.sendall(b"hello")
    buf = bytearray(16)
    assert _speedups.spin_recv_into(a, buf, 0) == 5
    assert bytes(buf[:5]) == b"hello"


def test_reads_at_most_the_buffer(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    b.sendall(b"0123456789")
    buf = bytearray(4)
    assert _speedups.spin_recv_into(a.fileno(), buf, 0) == 4
    assert buf == b"0123"
    assert a.recv(16) == b"456789"


def test_nothing_in_time_is_minus_one(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    assert _speedups.spin_recv_into(a, bytearray(8), 1_000) == -1
    a.setblocking(False)
    with pytest.raises(BlockingIOError):
        a.recv(1)  # nothing was taken


def test_bytes_arriving_during_the_poll_are_read(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    timer = threading.Timer(0.01, b.sendall, (b"late",))
    timer.start()
    try:
        buf = bytearray(8)
        # The GIL is released while polling, or the timer's thread could not send.
        assert _speedups.spin_recv_into(a, buf, 5 * BUDGET) == 4
        assert buf[:4] == b"late"
    finally:
        timer.join()


def test_the_gil_is_released_while_polling(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    counts = [0]
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            counts[0] += 1

    thread = threading.Thread(target=count)
    thread.start()
    time.sleep(0.01)
    before = counts[0]
    try:
        assert _speedups.spin_recv_into(a, bytearray(8), BUDGET) == -1
        during = counts[0] - before
    finally:
        stop.set()
        thread.join()
    assert during > 1000


def test_a_closed_peer_reads_zero(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    b.close()
    assert _speedups.spin_recv_into(a, bytearray(8), BUDGET) == 0


def test_a_closed_socket_fails_as_recv_into_would() -> None:
    a, b = socket.socketpair()
    a.close()
    b.close()
    with pytest.raises(OSError, match="Bad file descriptor"):
        _speedups.spin_recv_into(a, bytearray(8), 0)


def test_a_file_that_is_no_socket_fails(tmp_path: Path) -> None:
    with (tmp_path / "f").open("wb") as f, pytest.raises(OSError, match="non-socket"):
        _speedups.spin_recv_into(f, bytearray(8), 0)


def test_bad_arguments_are_named(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    with pytest.raises(TypeError, match="writable"):
        _speedups.spin_recv_into(a, b"read-only", 0)
    with pytest.raises(TypeError, match=r"takes 3 arguments \(sock, buffer, budget_ns\), 2"):
        _speedups.spin_recv_into(a, bytearray(8))  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _speedups.spin_recv_into(a, bytearray(8), "soon")  # type: ignore[arg-type]


def test_sendall_sends_small_frames_and_large_ones(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    _speedups.sendall(a, b"frame")
    assert b.recv(16) == b"frame"
    big = bytes(range(256)) * (8 << 12)  # 8 MiB: many times the socket's buffer
    got = bytearray()

    def drain() -> None:
        while len(got) < len(big):
            got.extend(b.recv(1 << 20))

    # The reader is a Python thread: sendall() must give the GIL up while the buffer is full.
    reader = threading.Thread(target=drain)
    reader.start()
    _speedups.sendall(a, memoryview(big))
    reader.join(10)
    assert got == big


def test_a_non_blocking_socket_waits_as_a_blocking_one(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    a.setblocking(False)
    big = bytes(4 << 20)
    got = bytearray()

    def drain() -> None:
        time.sleep(0.02)  # the sender finds the buffer full first
        while len(got) < len(big):
            got.extend(b.recv(1 << 20))

    reader = threading.Thread(target=drain)
    reader.start()
    _speedups.sendall(a, big)
    reader.join(10)
    assert len(got) == len(big)
    timer = threading.Timer(0.02, b.sendall, (b"late",))
    timer.start()
    try:
        buf = bytearray(8)
        assert _speedups.recv_into(a, buf) == 4
        assert buf[:4] == b"late"
    finally:
        timer.join()


def test_sendall_to_a_closed_peer_raises(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    b.close()
    with pytest.raises(BrokenPipeError):
        _speedups.sendall(a, b"x" * 10)


def test_recv_into_takes_waiting_bytes_and_waits_for_more(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    b.sendall(b"ready")
    buf = bytearray(16)
    assert _speedups.recv_into(a, buf) == 5
    assert buf[:5] == b"ready"
    timer = threading.Timer(0.02, b.sendall, (b"later",))
    timer.start()  # sends only if the waiting read below gave the GIL up
    try:
        assert _speedups.recv_into(a, buf) == 5
        assert buf[:5] == b"later"
    finally:
        timer.join()
    b.close()
    assert _speedups.recv_into(a, buf) == 0


class _Interrupted(Exception):
    pass


def test_a_signal_reaches_its_handler_while_recv_into_waits(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, _ = pair

    def interrupt(signum: int, frame: object) -> None:
        raise _Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(_Interrupted):
            _speedups.recv_into(a, bytearray(8))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_send_and_recv_on_a_closed_socket_fail_as_the_socket_would() -> None:
    a, b = socket.socketpair()
    a.close()
    b.close()
    with pytest.raises(OSError, match="Bad file descriptor"):
        _speedups.sendall(a, b"x")
    with pytest.raises(OSError, match="Bad file descriptor"):
        _speedups.recv_into(a, bytearray(8))


def test_send_and_recv_name_bad_arguments(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    with pytest.raises(TypeError, match="writable"):
        _speedups.recv_into(a, b"read-only")
    with pytest.raises(TypeError, match=r"takes 2 arguments \(sock, buffer\), 1"):
        _speedups.recv_into(a)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"takes 2 arguments \(sock, data\), 3"):
        _speedups.sendall(a, b"x", 0)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _speedups.sendall(a, "text")  # type: ignore[arg-type]


_FLOAT_ARGS = msgspec.msgpack.Decoder(tuple[list[float], float])
_numbers = st.one_of(
    st.floats(allow_nan=False),
    st.floats(width=32, allow_nan=False),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
)


@given(values=st.lists(_numbers, max_size=70), scale=_numbers)
def test_float_args_decode_as_msgspec_does(values: list[float], scale: float) -> None:
    raw = msgspec.msgpack.encode((values, scale))
    assert _speedups.decode_float_args(raw, (True, False)) == _FLOAT_ARGS.decode(raw)


def test_float32_and_long_arrays_decode_as_msgspec_does() -> None:
    raw = b"\x92\x91\xca" + struct.pack(">f", 1.5) + b"\xca" + struct.pack(">f", 0.1)
    assert _speedups.decode_float_args(raw, (True, False)) == _FLOAT_ARGS.decode(raw)
    for count in (15, 16, 65_535, 65_536):  # fixarray, array16 and array32 headers
        raw = msgspec.msgpack.encode((list(range(count)), 0))
        assert _speedups.decode_float_args(raw, (True, False)) == _FLOAT_ARGS.decode(raw)


@pytest.mark.parametrize(
    "raw",
    [
        msgspec.msgpack.encode(([True], 1.0)),  # bool is no float to msgspec either
        msgspec.msgpack.encode((["1.0"], 1.0)),
        msgspec.msgpack.encode(([1.0], None)),
        msgspec.msgpack.encode(([[1.0]], 1.0)),
        msgspec.msgpack.encode(([1.0],)),  # a parameter left to its default
        msgspec.msgpack.encode(([1.0], 1.0, 2.0)),
        msgspec.msgpack.encode(({"a": 1.0}, 1.0)),
        msgspec.msgpack.encode(([1.0], 1.0)) + b"\x00",
        msgspec.msgpack.encode(([1.0, 2.0], 1.0))[:-3],
        b"\x92\xdd\xff\xff\xff\xff\x00",  # a count longer than the frame
        b"",
    ],
)
def test_float_args_leave_anything_else_to_msgspec(raw: bytes) -> None:
    assert _speedups.decode_float_args(raw, (True, False)) is None


_ENVELOPE = msgspec.msgpack.Decoder(tuple[int, int, int, str, msgspec.Raw])


@given(
    cid=st.integers(min_value=0, max_value=2**64 - 1),
    oid=st.integers(min_value=0, max_value=2**64 - 1),
    method=st.text(max_size=300),
    args=st.lists(st.one_of(st.floats(allow_nan=False), st.text(), st.none()), max_size=5),
)
def test_a_request_head_reads_as_msgspec_reads_it(
    cid: int, oid: int, method: str, args: list[object]
) -> None:
    payload = msgspec.msgpack.encode([0, cid, oid, method, args])
    head = _speedups.request_head(payload)
    assert head is not None
    _, *expected, raw = _ENVELOPE.decode(payload)
    assert list(head[:3]) == expected
    assert payload[head[3] :] == bytes(raw)


@pytest.mark.parametrize(
    "payload",
    [
        msgspec.msgpack.encode([1, 5, 3, "x", []]),  # a RESPONSE, not a request
        msgspec.msgpack.encode([0, -1, 3, "x", []]),
        msgspec.msgpack.encode([0, 5, 3.0, "x", []]),
        msgspec.msgpack.encode([0, 5, 3, b"x", []]),
        msgspec.msgpack.encode([0, 5, 3, "x"]),
        b"\x95\x00\x01\x02\xa2\xff\xfe\x90",  # a method name that is not UTF-8
        b"\x95\x00\x01\x02\xa5ab",  # cut short
        b"",
    ],
)
def test_a_request_head_leaves_anything_else_to_msgspec(payload: bytes) -> None:
    assert _speedups.request_head(payload) is None


def _maps_speedups(pid: int) -> bool:
    with open(f"/proc/{pid}/maps") as f:
        return "_speedups" in f.read()


@pytest.mark.parametrize("speedups", ["1", "0"])
def test_host_and_plugin_answer_alike_with_and_without(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch, speedups: str
) -> None:
    # A long budget keeps both readers polling between these quick calls: the path under test.
    monkeypatch.setenv(ENV_SPIN_US, "2000")
    if speedups == "0":
        monkeypatch.setenv(ENV_SPEEDUPS, "0")  # read by both endpoints when they connect
    else:
        monkeypatch.delenv(ENV_SPEEDUPS, raising=False)
    client = make_client()
    client.start()
    echo = client.dispense("echo", Echo)
    assert [echo.add(i, 2) for i in range(500)] == [i + 2 for i in range(500)]
    assert echo.echo("x" * 300_000) == "x" * 300_000  # larger than one read
    assert client.pid is not None
    # The plugin loaded the extension, or did not, as the host said.
    assert _maps_speedups(client.pid) is (speedups == "1")
    assert echo.getenv(ENV_SPEEDUPS) == ("" if speedups == "1" else "0")
