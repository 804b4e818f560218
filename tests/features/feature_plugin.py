"""The feature plugin: serves `Features`, exercising everything the protocol supports.

Run by the tests as `python tests/features/feature_plugin.py`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import sys
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tether
from features.shared import (
    HANDSHAKE,
    Color,
    Counter,
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


class UnregisteredError(Exception):
    pass


class BadStrError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this exception cannot be printed")


class CounterImpl(Counter):
    def __init__(self, start: int) -> None:
        self._value = start
        self._lock = threading.Lock()

    def increment(self, by: int) -> int:
        with self._lock:
            self._value += by
            return self._value

    def value(self) -> int:
        return self._value


class _Flags:
    """Named events the tests query to see what happened inside the plugin."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, threading.Event] = defaultdict(threading.Event)

    def event(self, name: str) -> threading.Event:
        with self._lock:
            return self._events[name]

    def set(self, name: str) -> None:
        self.event(name).set()

    def wait(self, name: str, timeout: float) -> bool:
        return self.event(name).wait(timeout)


FLAGS = _Flags()


class FeaturesImpl(Features):
    def __init__(self) -> None:
        self._calls = 0
        self._lock = threading.Lock()

    def _count_call(self) -> None:
        with self._lock:
            self._calls += 1

    # --- types --------------------------------------------------------------------------
    def echo_int(self, v: int) -> int:
        assert type(v) is int
        self._count_call()
        return v

    def echo_float(self, v: float) -> float:
        assert type(v) is float, type(v)
        return v

    def echo_str(self, v: str) -> str:
        return v

    def echo_bytes(self, v: bytes) -> bytes:
        assert type(v) is bytes
        return v

    def echo_bool(self, v: bool) -> bool:
        assert type(v) is bool
        return v

    def echo_none(self, v: None) -> None:
        assert v is None

    def echo_list(self, v: list[int]) -> list[int]:
        return v

    def echo_floats(self, v: list[float]) -> list[float]:
        return v

    def echo_dict(self, v: dict[str, float]) -> dict[str, float]:
        return v

    def echo_tuple(self, v: tuple[int, str]) -> tuple[int, str]:
        assert type(v) is tuple
        return v

    def echo_optional(self, v: int | None) -> int | None:
        return v

    def echo_union(self, v: int | str) -> int | str:
        return v

    def echo_color(self, v: Color) -> Color:
        assert isinstance(v, Color)
        return v

    def echo_level(self, v: Level) -> Level:
        assert isinstance(v, Level)
        return v

    def echo_datetime(self, v: dt.datetime) -> dt.datetime:
        assert isinstance(v, dt.datetime)
        return v

    def echo_shape(self, v: Shape) -> Shape:
        assert isinstance(v, Shape)
        assert all(isinstance(p, Point) for p in v.points)
        assert isinstance(v.color, Color)
        return v

    def echo_item(self, v: Item) -> Item:
        assert isinstance(v, Item)
        return v

    def echo_movie(self, v: Movie) -> Movie:
        return v

    def echo_any(self, v: Any) -> Any:
        return v

    def describe(self, v: Any) -> str:
        return type(v).__name__

    def move(self, p: Point, dx: float, dy: float = 0.0) -> Point:
        assert isinstance(p, Point)
        return dataclasses.replace(p, x=p.x + dx, y=p.y + dy, label=p.label + "'")

    def later(self, when: dt.datetime, days: int) -> dt.datetime:
        return when + dt.timedelta(days=days)

    def bad_result(self) -> int:
        return "not an int"  # type: ignore[return-value]

    def calls(self) -> int:
        return self._calls

    # --- sync and async implementations -----------------------------------------------
    def add(self, a: float, b: float) -> float:
        return a + b

    async def async_add(self, a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    def sleep_then(self, seconds: float, value: int) -> int:
        time.sleep(seconds)
        return value

    # --- streams --------------------------------------------------------------------------
    def count(self, n: int) -> Iterator[int]:
        yield from range(n)

    async def async_count(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            if i % 100 == 0:
                await asyncio.sleep(0)
            yield i

    def points(self, n: int) -> Iterator[Point]:
        for i in range(n):
            yield Point(float(i), -float(i), f"p{i}")

    def endless(self, tag: str) -> Iterator[int]:
        i = 0
        try:
            while True:
                yield i
                i += 1
        except GeneratorExit:
            FLAGS.set(f"closed:{tag}")
            raise

    async def async_endless(self, tag: str) -> AsyncIterator[int]:
        i = 0
        try:
            while True:
                yield i
                i += 1
                await asyncio.sleep(0)
        except (GeneratorExit, asyncio.CancelledError):
            FLAGS.set(f"closed:{tag}")
            raise

    def fail_after(self, n: int) -> Iterator[int]:
        yield from range(n)
        raise ValueError(f"stream failed after {n} items")

    async def async_fail_after(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i
        raise ValueError(f"stream failed after {n} items")

    def generator_closed(self, tag: str, wait: float) -> bool:
        return FLAGS.wait(f"closed:{tag}", wait)

    # --- cancellation ---------------------------------------------------------------------
    def block_sync(self, tag: str, limit: float) -> str:
        FLAGS.set(f"started:{tag}")
        if tether.current_call().cancelled.wait(limit):
            FLAGS.set(f"cancelled:{tag}")
            return "cancelled"
        return "not cancelled"

    async def block_async(self, tag: str, limit: float) -> str:
        FLAGS.set(f"started:{tag}")
        try:
            await asyncio.sleep(limit)
        except asyncio.CancelledError:
            FLAGS.set(f"cancelled:{tag}")
            raise
        return "not cancelled"

    def wait_started(self, tag: str, wait: float) -> bool:
        return FLAGS.wait(f"started:{tag}", wait)

    def wait_cancelled(self, tag: str, wait: float) -> bool:
        return FLAGS.wait(f"cancelled:{tag}", wait)

    # --- errors ---------------------------------------------------------------------------
    def divide(self, a: int, b: int) -> float:
        return a / b

    def lookup(self, key: str) -> int:
        return {"one": 1}[key]

    def fail_value(self, text: str) -> None:
        raise ValueError(text)

    async def async_fail(self, text: str) -> None:
        await asyncio.sleep(0)
        raise ValueError(text)

    def fail_custom(self, text: str) -> None:
        raise PluginError(text)

    def fail_weird(self, code: int) -> None:
        raise WeirdInitError(code, reason="weird")

    def fail_unregistered(self, text: str) -> None:
        raise UnregisteredError(text)

    def fail_group(self) -> None:
        raise ExceptionGroup("several things failed", [ValueError("a"), KeyError("b")])

    def fail_bad_str(self) -> None:
        raise BadStrError()

    # --- references -----------------------------------------------------------------------
    def call_listener(self, listener: Listener, times: int) -> int:
        total = 0
        for i in range(times):
            total += listener.notify(i)
        return total

    def cancelled_during_callback(self, listener: Listener, tag: str, limit: float) -> str:
        listener.notify(0)  # the host cancels this call while the callback runs
        return self.block_sync(tag, limit)

    def flag_after_callback(self, listener: Listener, tag: str) -> bool:
        listener.notify(0)
        FLAGS.set(f"started:{tag}")
        return True

    def listener_nested(self, listener: Listener, depth: int) -> int:
        return listener.notify(depth) + 1

    def make_counter(self, start: int) -> Counter:
        return CounterImpl(start)

    def use_counter(self, counter: Counter, by: int) -> int:
        return counter.increment(by)


if __name__ == "__main__":
    tether.serve(HANDSHAKE, plugins={"features": FeaturesImpl()})
