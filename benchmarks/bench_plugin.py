"""The plugin every tether native-protocol benchmark calls."""

from __future__ import annotations

import tether

HANDSHAKE = tether.HandshakeConfig(
    protocol_version=1, magic_cookie_key="TETHER_BENCH", magic_cookie_value="bench"
)


class Bench(tether.Interface):
    def add(self, a: float, b: float) -> float: ...  # type: ignore[empty-body]

    def total(self, values: list[float]) -> float: ...  # type: ignore[empty-body]

    def size(self, data: bytes) -> int: ...  # type: ignore[empty-body]


class BenchImpl(Bench):
    def add(self, a: float, b: float) -> float:
        return a + b

    def total(self, values: list[float]) -> float:
        return sum(values)

    def size(self, data: bytes) -> int:
        return len(data)


if __name__ == "__main__":
    tether.serve(HANDSHAKE, plugins={"bench": BenchImpl()})
