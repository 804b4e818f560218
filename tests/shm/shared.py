"""The interface of tests/shm/shm_plugin.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

import tether

HANDSHAKE = tether.HandshakeConfig(
    protocol_version=1, magic_cookie_key="TETHER_SHM_PLUGIN", magic_cookie_value="shm"
)


class Buffers(tether.Interface):
    def echo_bytes(self, data: bytes) -> bytes: ...  # type: ignore[empty-body]

    def echo_bytearray(self, data: bytearray) -> bytearray: ...  # type: ignore[empty-body]

    def echo_memoryview(self, data: memoryview) -> memoryview: ...  # type: ignore[empty-body]

    def echo_array(self, data: np.ndarray) -> np.ndarray: ...  # type: ignore[empty-body]

    def echo_any(self, data: Any) -> Any: ...

    def describe(self, data: Any) -> list[str]: ...  # type: ignore[empty-body]

    def checksum(self, a: bytes, b: memoryview) -> int: ...  # type: ignore[empty-body]

    def chunks(self, size: int, count: int) -> Iterator[bytes]: ...  # type: ignore[empty-body]

    def origin(self, data: memoryview) -> str: ...  # type: ignore[empty-body]

    def fd_count(self) -> int: ...  # type: ignore[empty-body]

    def sleep_then_exit(self, data: bytes) -> int: ...  # type: ignore[empty-body]
