"""A plugin that echoes buffers, for the shared-memory tests (tests/test_shm.py)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

import tether
from shm.shared import HANDSHAKE, Buffers


class BuffersImpl(Buffers):
    def echo_bytes(self, data: bytes) -> bytes:
        return data

    def echo_bytearray(self, data: bytearray) -> bytearray:
        return data

    def echo_memoryview(self, data: memoryview) -> memoryview:
        return data

    def echo_array(self, data: np.ndarray) -> np.ndarray:
        return data

    def echo_any(self, data: Any) -> Any:
        return data

    def describe(self, data: Any) -> list[str]:
        return [type(data).__name__, str(len(data) if not hasattr(data, "nbytes") else data.nbytes)]

    def checksum(self, a: bytes, b: memoryview) -> int:
        return sum(a[::4096]) + sum(bytes(b[::4096])) + len(a) + len(b)

    def chunks(self, size: int, count: int) -> Iterator[bytes]:
        for i in range(count):
            yield bytes([i % 256]) * size

    def origin(self, data: memoryview) -> str:
        return type(data.obj).__name__

    def fd_count(self) -> int:
        return len(os.listdir("/proc/self/fd"))

    def sleep_then_exit(self, data: bytes) -> int:
        os._exit(3)


if __name__ == "__main__":
    tether.serve(HANDSHAKE, plugins={"buffers": BuffersImpl()})
