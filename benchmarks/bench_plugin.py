"""The plugin every tether native-protocol benchmark calls.

`profile_prepare` / `profile_start` / `profile_stop` let the runner profile the plugin's serving
thread: a sync plugin runs each call on its connection's thread, so a cProfile enabled inside
one call sees every later call on that connection (and none of the start-up).
"""

from __future__ import annotations

import tether

# Not typing.TYPE_CHECKING: the plugin's start-up is measured, and tether's own leaves typing
# unimported until after the first call (a plugin that imports typing pays ~8 ms more).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import cProfile

HANDSHAKE = tether.HandshakeConfig(
    protocol_version=1, magic_cookie_key="TETHER_BENCH", magic_cookie_value="bench"
)


class Bench(tether.Interface):
    def add(self, a: float, b: float) -> float: ...  # type: ignore[empty-body]

    def total(self, values: list[float]) -> float: ...  # type: ignore[empty-body]

    def size(self, data: bytes) -> int: ...  # type: ignore[empty-body]

    def size_view(self, data: memoryview) -> int: ...  # type: ignore[empty-body]

    def profile_prepare(self) -> bool: ...  # type: ignore[empty-body]

    def profile_start(self) -> bool: ...  # type: ignore[empty-body]

    def profile_stop(self, path: str) -> bool: ...  # type: ignore[empty-body]


class BenchImpl(Bench):
    def __init__(self) -> None:
        self._profile: cProfile.Profile | None = None

    def add(self, a: float, b: float) -> float:
        return a + b

    def total(self, values: list[float]) -> float:
        return sum(values)

    def size(self, data: bytes) -> int:
        return len(data)

    def size_view(self, data: memoryview) -> int:
        return data.nbytes

    def profile_prepare(self) -> bool:
        # The import (only when asked: the plugin's start-up is measured too) may run long
        # enough for the watchdog to hand serving to another thread: then profile_start()
        # runs on the thread that serves the calls that follow.
        import cProfile

        self._profile = cProfile.Profile()
        return True

    def profile_start(self) -> bool:
        if self._profile is None:
            self.profile_prepare()
        assert self._profile is not None
        self._profile.enable()
        return True

    def profile_stop(self, path: str) -> bool:
        if self._profile is None:
            return False
        self._profile.disable()
        self._profile.dump_stats(path)
        self._profile = None
        return True


if __name__ == "__main__":
    tether.serve(HANDSHAKE, plugins={"bench": BenchImpl()})
