"""The core behaviours through `tether.AsyncClient` (asyncio host, same feature plugin)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

import tether

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from features.shared import (
    HANDSHAKE,
    Color,
    Counter,
    Extra,
    Features,
    Listener,
    PluginError,
    Point,
    Shape,
)

PLUGIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "features", "feature_plugin.py")
CMD = [sys.executable, PLUGIN]
LIMIT = 20.0  # an upper bound for "did not hang", never a performance expectation

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client() -> AsyncIterator[tether.AsyncClient]:
    c = tether.AsyncClient(CMD, handshake=HANDSHAKE, kill_timeout=2)
    await c.start()
    try:
        yield c
    finally:
        await c.kill()
    assert c.exited


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def f(client: tether.AsyncClient) -> Any:
    # Typed Any: the async proxy's methods are coroutines, unlike the interface's hints.
    return await client.dispense("features", Features, timeout=LIMIT)


def tag(request: pytest.FixtureRequest) -> str:
    return "async:" + str(request.node.nodeid)


async def drain(stream: AsyncIterator[Any], into: list[Any]) -> None:
    async for item in stream:
        into.append(item)


NOW = dt.datetime(2023, 7, 1, 1, 2, 3, 456000, tzinfo=dt.UTC)


async def test_ping_and_calls(client: tether.AsyncClient, f: Any) -> None:
    await client.ping()
    assert client.protocol == "tether"
    assert await f.add(1, 2) == 3.0
    assert await f.add(a=1, b=2.5) == 3.5
    assert await f.async_add(20, 22) == 42
    assert await f.echo_bytes(b"\x00\xff") == b"\x00\xff"
    assert await f.echo_none(None) is None
    assert await f.echo_tuple((1, "x")) == (1, "x")
    assert await f.echo_color(Color.GREEN) is Color.GREEN
    assert await f.echo_datetime(NOW) == NOW
    back = await f.echo_float(3)
    assert back == 3.0
    assert type(back) is float


async def test_dataclass_round_trip(f: Any) -> None:
    shape = Shape("sq", [Point(0, 0), Point(1, 1, "b")], Color.RED, NOW)
    back = await f.echo_shape(shape)
    assert back == shape
    assert isinstance(back.points[1], Point)
    assert await f.move(Point(1, 1), 1, dy=2) == Point(2.0, 3.0, "'")


async def test_large_payloads(f: Any) -> None:
    blob = os.urandom(1 << 20) * 10
    assert await f.echo_bytes(blob) == blob
    floats = [i / 3 for i in range(100_000)]
    assert await f.echo_floats(floats) == floats


async def test_gather_thousand_calls(f: Any) -> None:
    coros = [f.add(i, 1) if i % 2 else f.async_add(i, 1) for i in range(1000)]
    results = await asyncio.wait_for(asyncio.gather(*coros), LIMIT)
    assert results == [i + 1 for i in range(1000)]


async def test_argument_errors(f: Any) -> None:
    with pytest.raises(tether.ArgumentError) as info:
        await f.echo_int(True)
    assert info.value.parameter == "v"
    with pytest.raises(tether.ArgumentError):
        await f.add(1)
    with pytest.raises(tether.ArgumentError):
        await f.echo_any(object())
    with pytest.raises(tether.ArgumentError):
        await f.bad_result()
    assert await f.add(1, 1) == 2.0


# --- streams -----------------------------------------------------------------------------


async def test_async_for_over_streams(f: Any) -> None:
    assert [x async for x in f.count(10_000)] == list(range(10_000))
    assert [x async for x in f.async_count(1_000)] == list(range(1_000))
    assert [p async for p in f.points(3)] == [Point(0.0, -0.0, "p0"), Point(1, -1, "p1"),
                                               Point(2, -2, "p2")]  # fmt: skip


async def test_concurrent_async_streams(f: Any) -> None:
    async def total(n: int) -> int:
        return sum([x async for x in f.count(n)])

    sums = await asyncio.wait_for(asyncio.gather(*(total(200 + i) for i in range(10))), LIMIT)
    assert sums == [sum(range(200 + i)) for i in range(10)]


@pytest.mark.parametrize("method", ["endless", "async_endless"])
async def test_stream_aclose_cancels_the_generator(
    f: Any, method: str, request: pytest.FixtureRequest
) -> None:
    name = tag(request)
    stream = getattr(f, method)(name)
    got = []
    async for x in stream:
        got.append(x)
        if len(got) == 150:
            break
    await stream.aclose()
    assert got == list(range(150))
    assert await f.generator_closed(name, LIMIT)
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()
    assert await f.add(1, 1) == 2.0


async def test_stream_context_manager_closes(f: Any, request: pytest.FixtureRequest) -> None:
    name = tag(request)
    async with f.endless(name) as stream:
        assert await stream.__anext__() == 0
    assert await f.generator_closed(name, LIMIT)


@pytest.mark.parametrize("method", ["fail_after", "async_fail_after"])
async def test_stream_error_after_items(f: Any, method: str) -> None:
    got: list[int] = []
    with pytest.raises(ValueError, match="after 70 items") as info:
        await drain(getattr(f, method)(70), got)
    assert got == list(range(70))
    assert isinstance(info.value, tether.RemoteError)


async def test_stream_timeout(f: Any, request: pytest.FixtureRequest) -> None:
    name = tag(request)
    # A stream that never ends: its deadline (as for the blocking client's streams, the
    # whole stream's) must stop it and cancel the generator.
    with tether.timeout(0.3):
        stream = f.endless(name)
    outcome: BaseException | None = None
    try:
        async with asyncio.timeout(5.0):
            async for _ in stream:
                await asyncio.sleep(0)
    except tether.CallTimeoutError as exc:
        outcome = exc
    except TimeoutError:
        await stream.aclose()
        pytest.fail("the stream ran on for 5 s past its 0.3 s deadline")
    assert isinstance(outcome, tether.CallTimeoutError)
    assert await f.generator_closed(name, LIMIT)


# --- cancellation and timeouts -----------------------------------------------------------


@pytest.mark.parametrize("method", ["block_sync", "block_async"])
async def test_task_cancellation_reaches_the_plugin(
    f: Any, method: str, request: pytest.FixtureRequest
) -> None:
    name = tag(request)
    task = asyncio.ensure_future(getattr(f, method)(name, LIMIT))
    assert await f.wait_started(name, LIMIT)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await f.wait_cancelled(name, LIMIT)
    assert await f.add(3, 4) == 7.0


@pytest.mark.parametrize("method", ["block_sync", "block_async"])
async def test_timeout_context(f: Any, method: str, request: pytest.FixtureRequest) -> None:
    name = tag(request)
    with pytest.raises(tether.CallTimeoutError), tether.timeout(0.3):
        await getattr(f, method)(name, LIMIT)
    assert await f.wait_cancelled(name, LIMIT)


async def test_dispense_timeout(
    client: tether.AsyncClient, f: Any, request: pytest.FixtureRequest
) -> None:
    name = tag(request)
    quick: Any = await client.dispense("features", Features, timeout=0.3)
    with pytest.raises(tether.CallTimeoutError):
        await quick.block_sync(name, LIMIT)
    assert await f.wait_cancelled(name, LIMIT)
    assert await quick.add(1, 1) == 2.0


async def test_slow_call_does_not_block_fast_ones(f: Any) -> None:
    order: list[str] = []

    async def slow() -> None:
        assert await f.sleep_then(1.0, 1) == 1
        order.append("slow")

    async def fast() -> None:
        for i in range(20):
            assert await f.echo_int(i) == i
        order.append("fast")

    await asyncio.wait_for(asyncio.gather(slow(), fast()), LIMIT)
    assert order == ["fast", "slow"]


# --- remote errors -----------------------------------------------------------------------


async def test_remote_errors(f: Any) -> None:
    with pytest.raises(ZeroDivisionError) as info:
        await f.divide(1, 0)
    assert isinstance(info.value, tether.RemoteError)
    assert info.value.type_name == "ZeroDivisionError"
    assert "feature_plugin.py" in info.value.remote_traceback
    with pytest.raises(KeyError):
        await f.lookup("missing")
    with pytest.raises(ValueError, match="sync boom"):
        await f.fail_value("sync boom")
    with pytest.raises(ValueError, match="async boom"):
        await f.async_fail("async boom")
    with pytest.raises(PluginError) as cinfo:
        await f.fail_custom("custom")
    assert isinstance(cinfo.value, tether.RemoteError)
    with pytest.raises(tether.RemoteError) as uinfo:
        await f.fail_unregistered("who")
    assert type(uinfo.value) is tether.RemoteError
    assert await f.add(1, 1) == 2.0


async def test_dispense_errors(client: tether.AsyncClient) -> None:
    with pytest.raises(tether.TetherError, match="nonexistent"):
        await client.dispense("nonexistent", Features)
    with pytest.raises(tether.TetherError, match="Extra"):
        await client.dispense("features", Extra)
    await client.ping()


# --- callbacks and references ------------------------------------------------------------


class AsyncListener(Listener):
    def __init__(self, plugin: Any = None) -> None:
        self.plugin = plugin
        self.seen: list[int] = []

    async def notify(self, value: int) -> int:  # type: ignore[override]
        self.seen.append(value)
        await asyncio.sleep(0)
        if self.plugin is not None and value > 0:
            result: int = await self.plugin.listener_nested(self, value - 1)
            return result
        return value * 2


class SyncListener(Listener):
    def __init__(self) -> None:
        self.seen: list[int] = []
        self.threads: set[int] = set()

    def notify(self, value: int) -> int:
        self.seen.append(value)
        self.threads.add(threading.get_ident())
        return value * 2


async def test_async_callback(f: Any) -> None:
    listener = AsyncListener()
    assert await f.call_listener(listener, 100) == sum(2 * i for i in range(100))
    assert listener.seen == list(range(100))


async def test_sync_callback_runs_off_the_event_loop(f: Any) -> None:
    listener = SyncListener()
    assert await f.call_listener(listener, 50) == sum(2 * i for i in range(50))
    assert listener.seen == list(range(50))
    assert threading.get_ident() not in listener.threads


async def test_nested_async_callbacks(f: Any) -> None:
    listener = AsyncListener(f)
    assert await asyncio.wait_for(f.listener_nested(listener, 4), LIMIT) == 5
    assert listener.seen == [4, 3, 2, 1, 0]


async def test_concurrent_callbacks(f: Any) -> None:
    listeners = [AsyncListener() for _ in range(10)]
    results = await asyncio.wait_for(
        asyncio.gather(*(f.call_listener(lst, 20) for lst in listeners)), LIMIT
    )
    assert results == [sum(2 * i for i in range(20))] * 10
    assert all(lst.seen == list(range(20)) for lst in listeners)


async def test_object_returned_by_reference(f: Any) -> None:
    counter = await f.make_counter(5)
    assert Counter in type(counter).__mro__
    assert await counter.increment(2) == 7
    assert await counter.value() == 7
    assert await f.use_counter(counter, 3) == 10
    assert await counter.value() == 10


async def test_kill_fails_later_calls() -> None:
    c = tether.AsyncClient(CMD, handshake=HANDSHAKE, kill_timeout=1)
    async with c:
        g: Any = await c.dispense("features", Features)
        assert await g.add(1, 1) == 2.0
    assert c.exited
    with pytest.raises(tether.ConnectionClosedError):
        await g.add(1, 1)
    await c.kill()  # idempotent
