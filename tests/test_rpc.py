"""End-to-end calls through `tether.Client` to a real plugin process (tests/features/)."""

from __future__ import annotations

import datetime as dt
import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import tether

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from features.shared import (
    HANDSHAKE,
    Color,
    Counter,
    Extra,
    Features,
    Item,
    Level,
    Listener,
    Movie,
    PluginError,
    Point,
    Shape,
    WeirdInitError,
)

PLUGIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "features", "feature_plugin.py")
CMD = [sys.executable, PLUGIN]
LIMIT = 20.0  # an upper bound for "did not hang", never a performance expectation


def _start(kill_timeout: float = 2.0) -> tether.Client:
    client = tether.Client(CMD, handshake=HANDSHAKE, kill_timeout=kill_timeout)
    client.start()
    return client


@pytest.fixture(scope="module")
def client() -> Iterator[tether.Client]:
    c = _start()
    try:
        yield c
    finally:
        c.kill()
    assert c.exited


@pytest.fixture(scope="module")
def f(client: tether.Client) -> Any:
    return client.dispense("features", Features, timeout=LIMIT)


@pytest.fixture
def fresh() -> Iterator[tether.Client]:
    """A plugin of its own, for tests that may break the connection."""
    c = _start(kill_timeout=0.5)
    try:
        yield c
    finally:
        c.kill()
    assert c.exited


def tag(request: pytest.FixtureRequest) -> str:
    return str(request.node.nodeid)


def drain(stream: Iterator[Any], into: list[Any]) -> None:
    for item in stream:
        into.append(item)


# --- types -------------------------------------------------------------------------------

NOW = dt.datetime(2024, 2, 29, 23, 59, 58, 999999, tzinfo=dt.UTC)


def test_ping(client: tether.Client) -> None:
    client.ping()
    assert client.protocol == "tether"
    assert client.negotiated_version == 1
    assert client.pid is not None
    assert not client.exited


@pytest.mark.parametrize(
    ("method", "value"),
    [
        ("echo_int", 0),
        ("echo_int", -(2**63)),
        ("echo_int", 2**64 - 1),
        ("echo_float", -1.25e300),
        ("echo_float", float("inf")),
        ("echo_str", "snow ☃ and \x00 nul"),
        ("echo_str", ""),
        ("echo_bytes", b"\x00\x01\xff"),
        ("echo_bytes", b""),
        ("echo_bool", True),
        ("echo_bool", False),
        ("echo_none", None),
        ("echo_list", [1, -2, 3]),
        ("echo_dict", {"a": 1.5, "": -0.0}),
        ("echo_tuple", (7, "seven")),
        ("echo_optional", None),
        ("echo_optional", 5),
        ("echo_union", 5),
        ("echo_union", "five"),
        ("echo_color", Color.GREEN),
        ("echo_level", Level.HIGH),
        ("echo_datetime", NOW),
        ("echo_datetime", dt.datetime(1970, 1, 1, tzinfo=dt.UTC)),
        ("echo_item", Item("bolt", 12, ["metal", "small"])),
        ("echo_movie", Movie(title="Arrival", year=2016)),
        ("echo_any", {"nested": [1, 2.5, "x", b"y", None, True, {"deep": []}]}),
    ],
)
def test_types_round_trip(f: Any, method: str, value: Any) -> None:
    back = getattr(f, method)(value)
    assert back == value
    assert type(back) is type(value)


def test_int_for_float_is_converted(f: Any) -> None:
    back = f.echo_float(3)
    assert back == 3.0
    assert type(back) is float
    assert f.add(1, 2) == 3.0


def test_bool_is_refused_for_int(f: Any) -> None:
    with pytest.raises(tether.ArgumentError) as info:
        f.echo_int(True)
    assert info.value.parameter == "v"
    assert "Features.echo_int" in str(info.value)


def test_dataclass_in_dataclass_out(f: Any) -> None:
    shape = Shape(
        "triangle",
        [Point(0.0, 0.0, "a"), Point(1.0, 0.0, "b"), Point(0.5, 1.0)],
        Color.RED,
        NOW,
    )
    back = f.echo_shape(shape)
    assert back == shape
    assert isinstance(back, Shape)
    assert all(isinstance(p, Point) for p in back.points)
    assert back.color is Color.RED
    moved = f.move(Point(1.0, 2.0, "p"), 0.5, dy=-1)
    assert moved == Point(1.5, 1.0, "p'")
    assert f.move(Point(1.0, 2.0), dx=1) == Point(2.0, 2.0, "'")
    assert f.move(p=Point(0, 0), dy=2, dx=3) == Point(3.0, 2.0, "'")


def test_dict_is_accepted_for_a_dataclass(f: Any) -> None:
    back = f.move({"x": 1, "y": 1}, 1)
    assert back == Point(2.0, 1.0, "'")


def test_datetimes(f: Any) -> None:
    assert f.later(NOW, 1) == dt.datetime(2024, 3, 1, 23, 59, 58, 999999, tzinfo=dt.UTC)
    local = dt.datetime(2021, 6, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=5)))
    back = f.echo_datetime(local)
    assert back == local  # the same instant (the offset may be normalised to UTC)
    naive = dt.datetime(2000, 1, 1, 8, 30)
    assert f.echo_datetime(naive) == naive


def test_ten_megabytes(f: Any) -> None:
    blob = os.urandom(1 << 20) * 10
    back = f.echo_bytes(blob)
    assert back == blob


def test_hundred_thousand_floats(f: Any) -> None:
    values = [i * 0.5 for i in range(100_000)]
    assert f.echo_floats(values) == values


def test_result_not_matching_the_hint(f: Any) -> None:
    with pytest.raises(tether.ArgumentError) as info:
        f.bad_result()
    assert "Features.bad_result" in str(info.value)
    assert f.add(1, 1) == 2.0  # the connection is still fine


def test_bytes_parameter_refuses_text(f: Any) -> None:
    with pytest.raises(tether.ArgumentError):
        f.echo_bytes("dGV4dA==")


# --- sync and async implementations ------------------------------------------------------


def test_async_implementation(f: Any) -> None:
    assert f.async_add(2, 40) == 42
    assert [f.async_add(i, i) for i in range(50)] == [2 * i for i in range(50)]


def test_keyword_arguments(f: Any) -> None:
    assert f.add(a=1.5, b=2) == 3.5
    assert f.sleep_then(value=3, seconds=0) == 3
    with pytest.raises(tether.ArgumentError) as info:
        f.add(1)
    assert "Features.add" in str(info.value)
    with pytest.raises(tether.ArgumentError):
        f.add(1, 2, c=3)


# --- streams -----------------------------------------------------------------------------


def test_sync_stream_of_ten_thousand(f: Any) -> None:
    assert list(f.count(10_000)) == list(range(10_000))


def test_empty_stream(f: Any) -> None:
    assert list(f.count(0)) == []
    assert list(f.async_count(0)) == []


def test_async_generator_stream(f: Any) -> None:
    assert list(f.async_count(1_000)) == list(range(1_000))


def test_stream_of_dataclasses(f: Any) -> None:
    pts = list(f.points(100))
    assert pts == [Point(float(i), -float(i), f"p{i}") for i in range(100)]
    assert all(isinstance(p, Point) for p in pts)


def test_concurrent_streams(f: Any) -> None:
    a, b = f.count(300), f.async_count(300)
    got = [(x, y) for x, y in zip(a, b, strict=True)]
    assert got == [(i, i) for i in range(300)]


def test_stream_closed_early_cancels_the_generator(f: Any, request: pytest.FixtureRequest) -> None:
    name = tag(request)
    stream = f.endless(name)
    first = [next(stream) for _ in range(200)]
    assert first == list(range(200))
    stream.close()
    assert f.generator_closed(name, LIMIT)
    with pytest.raises(StopIteration):
        next(stream)
    assert f.add(1, 2) == 3.0


def test_async_stream_closed_early_cancels_the_generator(
    f: Any, request: pytest.FixtureRequest
) -> None:
    name = tag(request)
    with f.async_endless(name) as stream:
        assert [next(stream) for _ in range(100)] == list(range(100))
    assert f.generator_closed(name, LIMIT)
    assert f.add(1, 2) == 3.0


def test_stream_error_after_items(f: Any) -> None:
    got: list[int] = []
    with pytest.raises(ValueError, match="after 5 items") as info:
        drain(f.fail_after(5), got)
    assert got == [0, 1, 2, 3, 4]
    assert isinstance(info.value, tether.RemoteError)
    assert info.value.type_name == "ValueError"


def test_async_stream_error_after_items(f: Any) -> None:
    got: list[int] = []
    with pytest.raises(tether.RemoteError, match="after 150 items") as info:
        drain(f.async_fail_after(150), got)
    assert got == list(range(150))
    assert isinstance(info.value, ValueError)


# --- timeouts and cancellation -----------------------------------------------------------


def test_timeout_context_cancels_sync_implementation(
    f: Any, request: pytest.FixtureRequest
) -> None:
    name = tag(request)
    with pytest.raises(tether.CallTimeoutError), tether.timeout(0.3):
        f.block_sync(name, LIMIT)
    assert f.wait_started(name, LIMIT)
    assert f.wait_cancelled(name, LIMIT)
    assert f.add(2, 2) == 4.0


def test_timeout_context_cancels_async_implementation(
    f: Any, request: pytest.FixtureRequest
) -> None:
    name = tag(request)
    with pytest.raises(tether.CallTimeoutError), tether.timeout(0.3):
        f.block_async(name, LIMIT)
    assert f.wait_cancelled(name, LIMIT)
    assert f.async_add(2, 2) == 4


def test_dispense_timeout(client: tether.Client, f: Any, request: pytest.FixtureRequest) -> None:
    name = tag(request)
    quick = client.dispense("features", Features, timeout=0.3)
    with pytest.raises(tether.CallTimeoutError) as info:
        quick.block_sync(name, LIMIT)
    assert isinstance(info.value, TimeoutError)
    assert f.wait_cancelled(name, LIMIT)
    assert quick.add(1, 1) == 2.0  # fast calls still fit within the limit


def test_timeout_none_lifts_an_enclosing_limit(f: Any) -> None:
    with tether.timeout(0.2), tether.timeout(None):
        assert f.sleep_then(0.4, 9) == 9
    with pytest.raises(tether.CallTimeoutError), tether.timeout(0.2):
        f.sleep_then(0.4, 9)


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"), tether.timeout(0):
        pass


def test_stream_timeout_cancels_the_generator(f: Any, request: pytest.FixtureRequest) -> None:
    name = tag(request)
    got: list[int] = []
    with tether.timeout(0.3):
        stream = f.endless(name)
    with pytest.raises(tether.CallTimeoutError):
        drain(stream, got)
    assert got == list(range(len(got)))
    assert got
    assert f.generator_closed(name, LIMIT)


# --- remote exceptions -------------------------------------------------------------------


def test_builtin_exceptions_keep_their_type(f: Any) -> None:
    with pytest.raises(ZeroDivisionError) as info:
        f.divide(1, 0)
    err = info.value
    assert isinstance(err, tether.RemoteError)
    assert isinstance(err, tether.TetherError)
    assert err.type_name == "ZeroDivisionError"
    assert "division by zero" in err.remote_message
    assert "feature_plugin.py" in err.remote_traceback
    assert "in divide" in err.remote_traceback

    with pytest.raises(KeyError) as kinfo:
        f.lookup("two")
    assert isinstance(kinfo.value, tether.RemoteError)
    assert kinfo.value.type_name == "KeyError"
    assert "two" in kinfo.value.remote_message

    with pytest.raises(tether.RemoteError) as vinfo:
        f.fail_value("bad value")
    assert isinstance(vinfo.value, ValueError)
    assert vinfo.value.remote_message == "bad value"
    assert "feature_plugin.py" in vinfo.value.remote_traceback


def test_async_implementation_exception(f: Any) -> None:
    with pytest.raises(ValueError, match="async boom") as info:
        f.async_fail("async boom")
    assert isinstance(info.value, tether.RemoteError)
    assert "feature_plugin.py" in info.value.remote_traceback


def test_registered_custom_exception(f: Any) -> None:
    with pytest.raises(PluginError) as info:
        f.fail_custom("custom trouble")
    err = info.value
    assert isinstance(err, tether.RemoteError)
    assert err.type_name.endswith("PluginError")
    assert err.remote_message == "custom trouble"
    assert "fail_custom" in err.remote_traceback


def test_exception_with_weird_constructor(f: Any) -> None:
    with pytest.raises(tether.RemoteError) as info:
        f.fail_weird(7)
    err = info.value
    assert err.type_name.endswith("WeirdInitError")
    assert "7" in err.remote_message
    assert not isinstance(err, WeirdInitError)


def test_unregistered_exception_is_plain_remote_error(f: Any) -> None:
    with pytest.raises(tether.RemoteError) as info:
        f.fail_unregistered("nobody knows me")
    assert type(info.value) is tether.RemoteError
    assert info.value.type_name.endswith("UnregisteredError")
    assert info.value.remote_message == "nobody knows me"
    assert f.add(1, 1) == 2.0


def test_exception_group_from_plugin(fresh: tether.Client) -> None:
    f = fresh.dispense("features", Features, timeout=LIMIT)
    with pytest.raises(tether.RemoteError) as info:
        f.fail_group()
    assert info.value.type_name == "ExceptionGroup"
    assert "several things failed" in info.value.remote_message
    assert f.add(1, 1) == 2.0


def test_exception_whose_str_fails(fresh: tether.Client) -> None:
    f = fresh.dispense("features", Features, timeout=5)
    with pytest.raises(tether.RemoteError) as info:
        f.fail_bad_str()
    assert info.value.type_name.endswith("BadStrError")
    assert f.add(1, 1) == 2.0


# --- callbacks and references ------------------------------------------------------------


class RecordingListener(Listener):
    def __init__(self) -> None:
        self.seen: list[int] = []
        self.threads: set[str] = set()

    def notify(self, value: int) -> int:
        self.seen.append(value)
        return value * 2


class NestedListener(Listener):
    def __init__(self, plugin: Any) -> None:
        self.plugin = plugin
        self.seen: list[int] = []

    def notify(self, value: int) -> int:
        self.seen.append(value)
        if value == 0:
            return 0
        return int(self.plugin.listener_nested(self, value - 1))


class FailingListener(Listener):
    def notify(self, value: int) -> int:
        raise LookupError(f"host side failure {value}")


def test_callback_once(f: Any) -> None:
    listener = RecordingListener()
    assert f.call_listener(listener, 1) == 0
    assert listener.seen == [0]


def test_callback_hundred_times(f: Any) -> None:
    listener = RecordingListener()
    assert f.call_listener(listener, 100) == sum(2 * i for i in range(100))
    assert listener.seen == list(range(100))


def test_nested_callbacks(f: Any) -> None:
    listener = NestedListener(f)
    assert f.listener_nested(listener, 5) == 6
    assert listener.seen == [5, 4, 3, 2, 1, 0]


def test_callback_error_reaches_the_plugin_and_comes_back(f: Any) -> None:
    with pytest.raises(tether.RemoteError) as info:
        f.call_listener(FailingListener(), 3)
    assert "host side failure 0" in str(info.value)
    assert f.add(1, 1) == 2.0


class SlowListener(Listener):
    def __init__(self) -> None:
        self.entered = threading.Event()

    def notify(self, value: int) -> int:
        self.entered.set()
        time.sleep(0.6)
        return value


def test_cancel_reaches_a_call_waiting_on_its_callback(
    f: Any, request: pytest.FixtureRequest
) -> None:
    # The plugin's thread reads its callback's answer itself, so it reads the CANCEL too:
    # the request it runs must be findable then.
    name = tag(request)
    with pytest.raises(tether.CallTimeoutError), tether.timeout(0.2):
        f.cancelled_during_callback(SlowListener(), name, LIMIT)
    assert f.wait_cancelled(name, LIMIT)
    assert f.add(1, 1) == 2.0


def test_a_request_arriving_during_a_callback_does_not_block_the_waiting_call(
    f: Any, request: pytest.FixtureRequest
) -> None:
    # The second call waits for what the first does after its callback returns: run on top
    # of the first one's thread, it would keep that from going on until it gave up.
    name = tag(request)
    listener = SlowListener()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(f.flag_after_callback, listener, name)
        assert listener.entered.wait(LIMIT)
        assert f.wait_started(name, LIMIT)
        assert first.result(LIMIT) is True


def test_callback_argument_must_implement_the_interface(f: Any) -> None:
    with pytest.raises(tether.ArgumentError) as info:
        f.call_listener(object(), 1)
    assert info.value.parameter == "listener"


def test_object_returned_by_reference(f: Any) -> None:
    counter = f.make_counter(10)
    assert isinstance(counter, Counter)
    assert counter.increment(5) == 15
    assert counter.increment(1) == 16
    assert counter.value() == 16
    other = f.make_counter(0)
    assert other.value() == 0
    assert counter.value() == 16
    # A proxy passed back to its own plugin reaches the original object.
    assert f.use_counter(counter, 4) == 20
    assert counter.value() == 20


def test_host_object_passed_to_plugin_counter(f: Any) -> None:
    class HostCounter(Counter):
        def __init__(self) -> None:
            self.n = 0

        def increment(self, by: int) -> int:
            self.n += by
            return self.n

        def value(self) -> int:
            return self.n

    mine = HostCounter()
    assert f.use_counter(mine, 3) == 3
    assert f.use_counter(mine, 3) == 6
    assert mine.n == 6


# --- concurrency -------------------------------------------------------------------------


def test_sixteen_threads_two_hundred_calls_each(f: Any) -> None:
    def work(t: int) -> list[tuple[int, int]]:
        out = []
        for i in range(200):
            value = t * 1000 + i
            if i % 3 == 0:
                out.append((value, int(f.add(value, 1))))
            elif i % 3 == 1:
                out.append((value, f.echo_int(value) + 1))
            else:
                out.append((value, f.async_add(value, 1)))
        return out

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(work, range(16), timeout=LIMIT * 3))
    for t, out in enumerate(results):
        assert out == [(t * 1000 + i, t * 1000 + i + 1) for i in range(200)]


def test_slow_call_does_not_block_fast_ones(f: Any) -> None:
    order: list[str] = []
    lock = threading.Lock()

    def slow() -> None:
        assert f.sleep_then(1.0, 1) == 1
        with lock:
            order.append("slow")

    thread = threading.Thread(target=slow)
    thread.start()
    try:
        for i in range(20):
            assert f.echo_int(i) == i
        with lock:
            order.append("fast")
    finally:
        thread.join(LIMIT)
    assert not thread.is_alive()
    assert order == ["fast", "slow"]


def test_concurrent_streams_and_calls(f: Any) -> None:
    def consume(n: int) -> int:
        return sum(f.count(n))

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(consume, 500 + i) for i in range(8)]
        calls = [f.add(i, i) for i in range(50)]
        sums = [fut.result(LIMIT) for fut in futures]
    assert calls == [2.0 * i for i in range(50)]
    assert sums == [sum(range(500 + i)) for i in range(8)]


# --- dispensing and arguments ------------------------------------------------------------


def test_dispense_unknown_name(client: tether.Client) -> None:
    with pytest.raises(tether.TetherError) as info:
        client.dispense("nonexistent", Features)
    text = str(info.value)
    assert "nonexistent" in text
    assert "features" in text  # names what the plugin does serve


def test_dispense_interface_not_implemented(client: tether.Client) -> None:
    with pytest.raises(tether.TetherError) as info:
        client.dispense("features", Extra)
    assert "Extra" in str(info.value)
    client.ping()


def test_unserialisable_argument_is_refused_before_sending(f: Any) -> None:
    before = f.calls()
    with pytest.raises(tether.ArgumentError):
        f.echo_any(object())
    with pytest.raises(tether.ArgumentError):
        f.echo_any({"fn": lambda: None})
    with pytest.raises(tether.ArgumentError):
        f.echo_int(1.5)
    with pytest.raises(tether.ArgumentError):
        f.echo_list([1, "two"])
    assert f.calls() == before
    assert f.echo_int(1) == 1
    assert f.calls() == before + 1


def test_repr_and_proxy_type(f: Any) -> None:
    assert isinstance(f, Features)
    assert "features" in repr(f) or "Features" in repr(f)


def test_client_is_reusable_after_errors(f: Any, client: tether.Client) -> None:
    for _ in range(3):
        with pytest.raises(ZeroDivisionError):
            f.divide(1, 0)
    client.ping()
    assert f.add(0.5, 0.25) == 0.75


def test_kill_fails_later_calls(fresh: tether.Client) -> None:
    f = fresh.dispense("features", Features)
    assert f.add(1, 1) == 2.0
    started = time.monotonic()
    fresh.kill()
    assert time.monotonic() - started < LIMIT
    assert fresh.exited
    with pytest.raises(tether.ConnectionClosedError):
        f.add(1, 1)
    fresh.kill()  # idempotent
