"""Large requests of plain-data methods: arguments decoded straight into their types.

A scripted peer sends the requests, so the plugin side's check is exercised even for values
a tether host would have refused before sending.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

import tether
from _scripted import Peer, serving
from conftest import PLUGINS_DIR
from plugins.firstcall_plugin import HANDSHAKE, First
from tether import Interface
from tether._endpoint import SyncEndpoint
from tether._env import ENV_SPEEDUPS
from tether._interface import _is_plain, spec_of
from tether._wire import ERROR, LARGE_FRAME, REQUEST, RESPONSE

N = 20_000  # ~180 KB of floats: well above LARGE_FRAME
assert N * 9 > LARGE_FRAME


class Numbers(Interface):
    def total(self, values: list[float]) -> float: ...  # type: ignore[empty-body]

    def kinds(self, values: list[float]) -> list[str]: ...  # type: ignore[empty-body]

    def scaled(self, values: list[float], by: float = 2.0) -> float: ...  # type: ignore[empty-body]

    def table(self, rows: dict[str, list[int]]) -> int: ...  # type: ignore[empty-body]

    def raw(self, data: bytes) -> int: ...  # type: ignore[empty-body]

    def anything(self, value: Any) -> int: ...  # type: ignore[empty-body]


class NumbersImpl(Numbers):
    def total(self, values: list[float]) -> float:
        return sum(values)

    def kinds(self, values: list[float]) -> list[str]:
        return sorted({type(v).__name__ for v in values} | {type(values).__name__})

    def scaled(self, values: list[float], by: float = 2.0) -> float:
        return sum(values) * by

    def table(self, rows: dict[str, list[int]]) -> int:
        return sum(len(r) for r in rows.values())

    def raw(self, data: bytes) -> int:
        return len(data)

    def anything(self, value: Any) -> int:
        return len(value)


@pytest.fixture
def served() -> Iterator[tuple[Peer, int, SyncEndpoint]]:
    with serving(NumbersImpl(), Numbers) as got:
        yield got


def test_a_large_call_of_floats_is_answered(served: tuple[Peer, int, SyncEndpoint]) -> None:
    peer, oid, _ = served
    values = [float(i) for i in range(N)]
    assert peer.call(oid, "total", [values]) == [RESPONSE, 1, sum(values)]


def test_ints_given_for_floats_arrive_as_floats(served: tuple[Peer, int, SyncEndpoint]) -> None:
    peer, oid, _ = served
    values: list[Any] = [float(i) for i in range(N)]
    values[7] = 7
    assert peer.call(oid, "kinds", [values]) == [RESPONSE, 1, ["float", "list"]]


@pytest.mark.parametrize("size", [10, N], ids=["small", "large"])
def test_a_bad_element_is_refused_alike_in_small_and_large_calls(
    served: tuple[Peer, int, SyncEndpoint], size: int
) -> None:
    peer, oid, ep = served
    values: list[Any] = [1.0] * size
    values[5] = "five"
    kind, _, _, type_name, message, _ = peer.call(oid, "total", [values])
    assert (kind, type_name) == (ERROR, "tether.ArgumentError")
    expected = "Numbers.total() argument 'values': Expected `float`, got `str` (at values[5])"
    assert message == expected
    assert not ep.closed


def test_omitted_defaults_and_nested_containers(served: tuple[Peer, int, SyncEndpoint]) -> None:
    peer, oid, _ = served
    values = [1.0] * N
    assert peer.call(oid, "scaled", [values]) == [RESPONSE, 1, 2.0 * N]
    assert peer.call(oid, "scaled", [values, 3]) == [RESPONSE, 2, 3.0 * N]
    rows = {f"r{i}": list(range(10)) for i in range(N // 10)}
    assert peer.call(oid, "table", [rows]) == [RESPONSE, 3, N]


def test_methods_that_are_not_plain_data_take_the_usual_path(
    served: tuple[Peer, int, SyncEndpoint],
) -> None:
    peer, oid, _ = served
    blob = b"x" * (2 * LARGE_FRAME)
    assert peer.call(oid, "raw", [blob]) == [RESPONSE, 1, len(blob)]
    assert peer.call(oid, "anything", [[None] * N]) == [RESPONSE, 2, N]


def test_unknown_methods_and_objects_are_refused(served: tuple[Peer, int, SyncEndpoint]) -> None:
    peer, oid, ep = served
    values = [1.0] * N
    assert peer.call(oid, "nope", [values])[3] == "tether.UnknownMethod"
    assert peer.call(oid + 100, "total", [values])[3] == "tether.UnknownObject"
    assert peer.call(oid, "total", [values]) == [RESPONSE, 3, float(N)]
    assert not ep.closed


def test_only_large_requests_of_plain_methods_are_decoded_typed(
    served: tuple[Peer, int, SyncEndpoint],
) -> None:
    _, oid, ep = served
    values = [1.0] * N

    def typed(method: str, args: list[Any]) -> list[Any] | None:
        return ep._typed_request(msgspec.msgpack.encode([REQUEST, 9, oid, method, args]))

    assert typed("total", [values]) == [REQUEST, 9, oid, "total", (values,)]
    assert typed("raw", [b"x" * N]) is None
    assert typed("total", [[*values, "x"]]) is None  # left to check_args() to word it
    assert ep._typed_request(msgspec.msgpack.encode([RESPONSE, 9, values])) is None


@pytest.mark.parametrize(
    ("hint", "plain"),
    [
        (float, True),
        (list[float], True),
        (dict[str, list[int]], True),
        (tuple[float, ...], True),
        (int | None, True),
        (set[str], True),
        (bytes, False),
        (list[bytes], False),
        (Any, False),
        (list, False),
        (list[Any], False),
        (Numbers, False),
    ],
)
def test_plain_data_hints(hint: Any, plain: bool) -> None:
    assert _is_plain(hint) is plain


def test_specs_say_which_methods_decode_typed() -> None:
    methods = spec_of(Numbers).methods
    assert methods["total"].args_decoder() is not None
    assert methods["table"].args_decoder() is not None
    assert methods["raw"].args_decoder() is None
    assert methods["anything"].args_decoder() is None
    # Every parameter float or list[float]: the C decoder's shape (tether._speedups).
    assert methods["total"].float_kinds == (True,)
    assert methods["scaled"].float_kinds == (True, False)
    assert methods["table"].float_kinds is None


# --- the sending side -------------------------------------------------------------------------


def test_the_host_leaves_bulk_plain_data_to_the_plugin_to_check() -> None:
    spec = spec_of(Numbers).methods["total"]
    values: list[Any] = [1.0] * N
    values[5] = "five"
    assert spec.check_call((values,), {}) == [values]  # sent as it is, unchecked
    with pytest.raises(tether.ArgumentError, match="Expected `float`, got `str`"):
        spec.check_call((values[:10],), {})  # small: checked before sending


@pytest.mark.parametrize("speedups", ["1", "0"], ids=["C decoder", "msgspec only"])
@pytest.mark.parametrize("size", [10, N], ids=["checked by the host", "checked by the plugin"])
def test_bad_bulk_data_fails_with_the_same_words_either_way(
    size: int, speedups: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_SPEEDUPS, speedups)  # the plugin inherits it
    cmd = [sys.executable, str(PLUGINS_DIR / "firstcall_plugin.py")]
    values: list[Any] = [1.0] * size
    values[5] = "five"
    with tether.Client(cmd, handshake=HANDSHAKE) as client:
        first = client.dispense("first", First)
        with pytest.raises(tether.ArgumentError) as info:
            first.total(values)
        assert first.total([1.0] * size) == size  # the connection goes on
    expected = "First.total() argument 'values': Expected `float`, got `str` (at values[5])"
    assert str(info.value) == expected
    assert (info.value.method, info.value.parameter) == ("First.total", "values")
