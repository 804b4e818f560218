"""A plugin's first calls, served before the full endpoint's imports (tether._firstcall).

The codec and the reading of declarations are checked against msgspec and spec_of(); the
serving in real plugin processes, through tether's host and as raw frames on the socket:
every first call must come out as the full endpoint would answer it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tether
from conftest import PLUGINS_DIR
from plugins.firstcall_plugin import HANDSHAKE, First
from plugins.lean_plugin import Lopsided
from tether import _firstcall, _wire
from tether._firstcall import NotLean, decode, encode
from tether._interface import spec_of

PLUGIN = [sys.executable, str(PLUGINS_DIR / "firstcall_plugin.py")]
HEAVY = "msgspec,typing,logging,inspect,tether._endpoint,tether._interface"


# ----------------------------------------------------------------------------- codec

plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=20),
    max_leaves=40,
)


@given(plain)
def test_decode_reads_what_msgspec_writes(value: Any) -> None:
    data = msgspec.msgpack.encode(value)
    assert decode(data) == (value, len(data))


@given(plain)
def test_msgspec_reads_what_encode_writes(value: Any) -> None:
    out = bytearray()
    encode(value, out)
    assert msgspec.msgpack.decode(out) == value


@given(st.dictionaries(st.text(), st.integers(min_value=-100, max_value=100), max_size=20))
def test_decode_reads_maps(value: dict[str, int]) -> None:
    assert decode(msgspec.msgpack.encode(value))[0] == value


@pytest.mark.parametrize(
    "data",
    [
        msgspec.msgpack.encode(b"bytes"),  # binary: may come from shared memory, left over
        msgspec.msgpack.encode(msgspec.msgpack.Ext(1, b"12345678")),  # an object reference
        msgspec.msgpack.encode("text")[:-1],  # truncated
        msgspec.msgpack.encode([1.0, 2.0])[:-3],
        b"\xa2\xff\xfe",  # not UTF-8
        b"\xc1",  # never used in msgpack
        b"\x91" * 100 + b"\x00",  # nested too deep
        b"\x81\x90\x00",  # a map key that cannot be hashed
    ],
)
def test_decode_leaves_the_rest_to_msgspec(data: bytes) -> None:
    with pytest.raises(NotLean):
        decode(data)


@pytest.mark.parametrize("value", [1 << 64, -(1 << 63) - 1, b"x", {"a": 1}, (1,), "\ud800"])
def test_encode_leaves_the_rest_to_msgspec(value: object) -> None:
    with pytest.raises(NotLean):
        encode(value, bytearray())


def test_message_kinds_agree_with_the_wire_module() -> None:
    assert _firstcall.REQUEST == _wire.REQUEST
    assert _firstcall.RESPONSE == _wire.RESPONSE
    assert _firstcall.CONTROL_OBJECT == _wire.CONTROL_OBJECT


# ----------------------------------------------------------------------------- declarations


class Base(tether.Interface):
    def inherited(self, a: int) -> int: ...  # type: ignore[empty-body]


class Derived(Base):
    def own(self, values: list[float]) -> float: ...  # type: ignore[empty-body]

    @staticmethod
    def helper() -> int:
        return 1

    def _private(self) -> None: ...


class Unresolvable(tether.Interface):
    def call(self, a: NoSuchName) -> int: ...  # type: ignore[empty-body,name-defined]  # noqa: F821


class NestedName(tether.Interface):
    def call(self, a: list[int]) -> int: ...  # type: ignore[empty-body]


# A hint object naming a type in a string, as a module without `from __future__ import
# annotations` would hold it: resolved by get_type_hints() only.
NestedName.call.__annotations__["a"] = list["NoSuchName"]  # type: ignore[name-defined]  # noqa: F821


@pytest.mark.parametrize("cls", [First, Base, Derived])
def test_declared_names_are_the_specs_method_names(cls: type[tether.Interface]) -> None:
    assert _firstcall._declared_names(cls) == sorted(spec_of(cls).methods)


@pytest.mark.parametrize("cls", [Lopsided, Unresolvable, NestedName])
def test_a_declaration_the_spec_refuses_is_left_to_the_full_endpoint(
    cls: type[tether.Interface],
) -> None:
    with pytest.raises(NotLean):
        _firstcall._declared_names(cls)
    with pytest.raises(tether.ConfigError):
        spec_of(cls)


# ----------------------------------------------------------------------------- through a host


@pytest.fixture
def first() -> Iterator[Any]:
    with tether.Client(PLUGIN, handshake=HANDSHAKE) as client:
        yield client.dispense("first", First)


def test_the_first_call_is_answered_before_the_heavy_imports(first: Any) -> None:
    assert first.loaded(HEAVY) == ""
    # ... and the connection was handed to the full endpoint right after it.
    assert set(first.loaded(HEAVY).split(",")) >= {"msgspec", "tether._endpoint"}


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("add", (1, 2.5)),
        ("describe", (1.5, 2, "text ✓", True)),
        ("later", (1,)),  # a sync method that returns an awaitable: awaited
        ("scaled", (3,)),  # a default left out: the full endpoint fills it in
        ("length", ("x" * 100_000,)),  # a frame the full endpoint reads in place
        ("method", ()),  # current_call() works in a first call too
    ],
)
def test_a_first_call_returns_what_a_later_one_does(
    first: Any, method: str, args: tuple[Any, ...]
) -> None:
    assert getattr(first, method)(*args) == getattr(first, method)(*args)


def _failure(call: Any) -> tuple[type[BaseException], str]:
    with pytest.raises(tether.TetherError) as info:
        call()
    return type(info.value), str(info.value)


@pytest.mark.parametrize(("method", "arg"), [("fail", "boom"), ("wrong", 2)])
def test_a_first_call_fails_as_a_later_one_does(first: Any, method: str, arg: Any) -> None:
    call = getattr(first, method)
    failure = _failure(lambda: call(arg))
    assert failure == _failure(lambda: call(arg))
    assert "boom" in failure[1] or "wrong" in failure[1]


def test_a_long_first_call_does_not_hold_up_the_calls_after_it(first: Any) -> None:
    # wait() runs first and waits for release(), which must be read while it runs.
    outcome: list[bool] = []
    waiter = threading.Thread(target=lambda: outcome.append(first.wait(30.0)))
    waiter.start()
    time.sleep(0.2)
    assert first.release() is True
    waiter.join(35)
    assert outcome == [True]


def test_a_long_first_call_sees_the_hosts_cancel(first: Any) -> None:
    with pytest.raises(tether.CallTimeoutError), tether.timeout(0.3):
        first.until_cancelled(30.0)
    deadline = time.monotonic() + 20
    while not first.was_cancelled() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert first.was_cancelled()


# ----------------------------------------------------------------------------- raw frames


class RawHost:
    """A plugin started by hand and spoken to in frames, so requests a host would never
    send (or send apart) reach its first calls."""

    def __init__(self, directory: Path) -> None:
        env = {
            **os.environ,
            HANDSHAKE.magic_cookie_key: HANDSHAKE.magic_cookie_value,
            "PLUGIN_PROTOCOL_VERSIONS": "1",
            "PLUGIN_UNIX_SOCKET_DIR": str(directory),
        }
        self.proc = subprocess.Popen(PLUGIN, env=env, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(20)
        self.sock.connect(line.split("|")[3])
        self.reader = self.sock.makefile("rb")

    def send(self, *messages: list[Any]) -> None:
        data = b""
        for message in messages:
            body = msgspec.msgpack.encode(message)
            data += len(body).to_bytes(4, "big") + body
        self.sock.sendall(data)  # in one send: the plugin reads them together

    def recv(self) -> Any:
        size = int.from_bytes(self.reader.read(4), "big")
        return msgspec.msgpack.decode(self.reader.read(size))

    def close(self) -> None:
        self.reader.close()
        self.sock.close()
        self.proc.kill()
        self.proc.wait(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture
def raw(tmp_path: Path) -> Iterator[RawHost]:
    host = RawHost(tmp_path)
    try:
        yield host
    finally:
        host.close()


DISPENSE = [0, 1, 0, "dispense", ["first", "First"]]


def test_requests_read_together_are_answered_in_order(raw: RawHost) -> None:
    raw.send(
        DISPENSE, [0, 2, 1, "add", [1.0, 2.0]], [0, 3, 1, "add", [3, 4]], [0, 4, 0, "ping", []]
    )
    oid, names = raw.recv()[2]
    assert (oid, names) == (1, sorted(spec_of(First).methods))
    assert [raw.recv() for _ in range(3)] == [[1, 2, 3.0], [1, 3, 7.0], [1, 4, True]]


def test_arguments_that_do_not_fit_are_refused_as_later(raw: RawHost) -> None:
    bad = [1, "two"]
    raw.send(DISPENSE, [0, 2, 1, "add", bad])
    raw.recv()
    first = raw.recv()
    raw.send([0, 3, 1, "add", bad])
    later = raw.recv()
    assert first[0] == _wire.ERROR
    assert first[2] == _wire.ERR_VALIDATION
    assert first[2:] == later[2:]


def test_an_unknown_method_or_plugin_is_refused_by_the_full_endpoint(raw: RawHost) -> None:
    raw.send([0, 1, 0, "dispense", ["nobody", "First"]])
    refused = raw.recv()
    assert refused[0] == _wire.ERROR
    assert "no plugin named 'nobody'" in refused[4]
    raw.send(DISPENSE, [0, 3, 1, "nothing", []])
    raw.recv()
    unknown = raw.recv()
    assert unknown[0] == _wire.ERROR
    assert unknown[2] == _wire.ERR_UNKNOWN_METHOD


def test_a_call_before_any_dispense_is_refused(raw: RawHost) -> None:
    raw.send([0, 1, 1, "add", [1.0, 2.0]])
    refused = raw.recv()
    assert refused[0] == _wire.ERROR
    assert refused[2] == _wire.ERR_UNKNOWN_OBJECT


def test_a_malformed_first_message_fails_the_connection_as_later(raw: RawHost) -> None:
    # `false` where the kind belongs: equal to REQUEST in Python, refused by the endpoint.
    raw.send([False, 1, 0, "ping", []])
    assert raw.reader.read(4) == b""  # the plugin dropped the connection
