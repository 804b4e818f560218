"""The plugin every tether benchmark calls."""

from __future__ import annotations

import tether

HANDSHAKE = tether.HandshakeConfig(
    protocol_version=1, magic_cookie_key="TETHER_BENCH", magic_cookie_value="bench"
)


class Bench(tether.Interface):
    def add(self, a: float, b: float) -> float: ...

    def total(self, values: list[float]) -> float: ...


class BenchImpl(Bench):
    def add(self, a: float, b: float) -> float:
        return a + b

    def total(self, values: list[float]) -> float:
        return sum(values)


if __name__ == "__main__":
    tether.serve(HANDSHAKE, plugins={"bench": BenchImpl()})
