"""tether's native protocol: the sync Client and the AsyncClient, plus the calculator's batches."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from bench_plugin import HANDSHAKE, Bench
from common import (
    BULK_N,
    CALLERS,
    HERE,
    PY,
    REPO,
    NotMeasured,
    Subject,
    median,
    pin_prefix,
    rss_kib,
)

import tether
from tether._env import ENV_SPIN_US

T = TypeVar("T")


def plugin_cmd(pinned: bool) -> list[str]:
    return [*pin_prefix(pinned), PY, str(HERE / "bench_plugin.py")]


class TetherSync(Subject):
    label = "tether native, sync client"
    kind = "tether"

    def __init__(self, pinned: bool = False) -> None:
        super().__init__(pinned)
        self.client: tether.Client | None = None
        self.bench: Bench | None = None

    def start(self) -> None:
        self.client = tether.Client(plugin_cmd(self.pinned), handshake=HANDSHAKE)
        self.client.start()
        self.bench = self.client.dispense("bench", Bench)

    def close(self) -> None:
        if self.client is not None:
            self.client.kill()

    def call(self) -> float:
        assert self.bench is not None
        return self.bench.add(1.0, 2.0)

    def bulk(self, values: list[float]) -> float:
        assert self.bench is not None
        return self.bench.total(values)

    def blob(self, data: bytes) -> int:
        assert self.bench is not None
        return self.bench.size(data)

    def spawn(self) -> tuple[float, float]:
        t0 = time.perf_counter()
        with tether.Client(plugin_cmd(self.pinned), handshake=HANDSHAKE) as client:
            client.dispense("bench", Bench).add(1.0, 2.0)
            elapsed = (time.perf_counter() - t0) * 1000
            time.sleep(0.2)
            assert client.pid is not None
            return elapsed, rss_kib(client.pid)


class TetherSyncNoPoll(TetherSync):
    """The sync client with the poll before sleeping turned off, on both sides.

    The floors block in recv() at once; this row shows what tether's poll is worth.
    """

    label = "tether native, sync client, no poll (TETHER_SPIN_US=0)"

    def start(self) -> None:
        # Both endpoints read the budget when they connect (the plugin inherits it).
        old = os.environ.get(ENV_SPIN_US)
        os.environ[ENV_SPIN_US] = "0"
        try:
            super().start()
        finally:
            if old is None:
                del os.environ[ENV_SPIN_US]
            else:
                os.environ[ENV_SPIN_US] = old

    def bulk(self, values: list[float]) -> float:
        raise NotMeasured("the same as the sync client's row: one call, no wait to poll away")

    def blob(self, data: bytes) -> int:
        raise NotMeasured("the same as the sync client's row: one call, no wait to poll away")

    def spawn(self) -> tuple[float, float]:
        raise NotMeasured("the same plugin as the sync client's row")


class TetherAsync(Subject):
    """The AsyncClient lives on one event loop that each measurement runs until complete."""

    label = "tether native, asyncio client"
    kind = "tether"
    callers = "tasks"

    def __init__(self, pinned: bool = False) -> None:
        super().__init__(pinned)
        self.loop = asyncio.new_event_loop()
        self.client: tether.AsyncClient | None = None
        self.bench: Any = None

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    async def _start(self) -> None:
        self.client = tether.AsyncClient(plugin_cmd(self.pinned), handshake=HANDSHAKE)
        await self.client.start()
        self.bench = await self.client.dispense("bench", Bench)

    def start(self) -> None:
        self._run(self._start())

    def close(self) -> None:
        if self.client is not None:
            self._run(self.client.kill())
        self.loop.close()

    def sequential(self, n: int) -> list[float]:
        async def go() -> list[float]:
            add: Callable[[float, float], Coroutine[Any, Any, float]] = self.bench.add
            clock = time.perf_counter_ns
            out: list[float] = []
            for _ in range(n):
                t0 = clock()
                await add(1.0, 2.0)
                out.append((clock() - t0) / 1000)
            return out

        return self._run(go())

    def throughput(self, per_caller: int) -> float:
        async def worker() -> None:
            for _ in range(per_caller):
                await self.bench.add(1.0, 2.0)

        async def go() -> float:
            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(CALLERS)))
            return CALLERS * per_caller / (time.perf_counter() - t0)

        return self._run(go())

    def spawn(self) -> tuple[float, float]:
        raise NotMeasured("the same plugin as the sync client's row")

    def bulk(self, values: list[float]) -> float:
        result: float = self._run(self.bench.total(values))
        return result

    def blob(self, data: bytes) -> int:
        result: int = self._run(self.bench.size(data))
        return result


def calculator_batches(batch: int, rounds: int) -> dict[str, float]:
    """The calculator example's batch operations, `batch` items per call: calls/s of each."""
    import sys

    sys.path.insert(0, str(REPO))
    from examples.calculator.interface import (
        HANDSHAKE as CALC_HANDSHAKE,
    )
    from examples.calculator.interface import (
        PLUGIN_NAME,
        AddRequest,
        CalculatorConfig,
        Operation,
        ScientificCalculator,
    )

    plugin = REPO / "examples" / "calculator" / "plugin.py"
    requests = [AddRequest(float(i), 0.5) for i in range(batch)]
    ops = [Operation("multiply", float(i), 1.5) for i in range(batch)]
    with tether.Client([PY, str(plugin)], handshake=CALC_HANDSHAKE, name=PLUGIN_NAME) as client:
        calc = client.dispense(PLUGIN_NAME, ScientificCalculator)
        # Caching off: every operation is computed.
        calc.initialize(CalculatorConfig(cache_size=0))
        out: dict[str, float] = {}
        for name, fn in (
            ("batch_add", lambda: calc.batch_add(requests)),
            ("batch_calculate", lambda: calc.batch_calculate(ops)),
        ):
            fn()
            rates: list[float] = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                n = 0
                while time.perf_counter() - t0 < 0.3:
                    fn()
                    n += 1
                rates.append(n / (time.perf_counter() - t0))
            out[name] = median(rates)
        calc.shutdown()
    if not out:
        raise NotMeasured("calculator did not run")
    return out


__all__ = ["BULK_N", "TetherAsync", "TetherSync", "TetherSyncNoPoll", "calculator_batches"]
