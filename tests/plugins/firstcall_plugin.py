# mypy: disable-error-code="empty-body"
"""A plugin whose calls show how its first ones were served (see tether._firstcall).

Run as ``python firstcall_plugin.py``: it serves `First` as "first". It imports nothing but
tether at start-up, so its first call is answered before the full endpoint's imports.
`total()` takes bulk plain data, which the host leaves to the plugin to check.
"""

from __future__ import annotations

import sys
import threading
import time

import tether

HANDSHAKE = tether.HandshakeConfig(
    protocol_version=1, magic_cookie_key="TETHER_FIRST_COOKIE", magic_cookie_value="first"
)


class First(tether.Interface):
    def loaded(self, names: str) -> str: ...
    def add(self, a: float, b: float) -> float: ...
    def describe(self, a: float, b: int, text: str, flag: bool) -> str: ...
    def fail(self, text: str) -> int: ...
    def wrong(self, n: int) -> int: ...
    def wait(self, seconds: float) -> bool: ...
    def release(self) -> bool: ...
    def until_cancelled(self, seconds: float) -> bool: ...
    def was_cancelled(self) -> bool: ...
    def method(self) -> str: ...
    def later(self, n: int) -> int: ...
    def length(self, text: str) -> int: ...
    def scaled(self, n: int, factor: float = 2.0) -> float: ...
    def total(self, values: list[float]) -> float: ...


class FirstImpl(First):
    def __init__(self) -> None:
        self._released = threading.Event()
        self._cancelled = False

    def loaded(self, names: str) -> str:
        return ",".join(name for name in names.split(",") if name in sys.modules)

    def add(self, a: float, b: float) -> float:
        return a + b

    def describe(self, a: float, b: int, text: str, flag: bool) -> str:
        return f"{a!r} {b!r} {text!r} {flag!r}"

    def fail(self, text: str) -> int:
        raise ValueError(text)

    def wrong(self, n: int) -> int:
        return [n] * n  # type: ignore[return-value]

    def wait(self, seconds: float) -> bool:
        return self._released.wait(seconds)

    def release(self) -> bool:
        self._released.set()
        return True

    def until_cancelled(self, seconds: float) -> bool:
        ctx = tether.current_call()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if ctx.is_cancelled():
                self._cancelled = True
                return False
            time.sleep(0.005)
        return True

    def was_cancelled(self) -> bool:
        return self._cancelled

    def method(self) -> str:
        return tether.current_call().method

    def later(self, n: int) -> int:
        async def plus_one() -> int:
            return n + 1

        return plus_one()  # type: ignore[return-value]

    def length(self, text: str) -> int:
        return len(text)

    def scaled(self, n: int, factor: float = 2.0) -> float:
        return n * factor

    def total(self, values: list[float]) -> float:
        return sum(values)


if __name__ == "__main__":
    tether.serve(HANDSHAKE, plugins={"first": FirstImpl()})
