"""Benchmarks: tether's native protocol against a raw Unix-socket ping-pong floor.

Run `make bench` (or `python benchmarks/run.py [--quick] [--output PATH]`). Each figure is
measured in rounds that interleave the subjects, so drift of the machine hits all alike.
Writes docs/PERFORMANCE.md unless --output says otherwise (--quick writes nothing by default).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import tether  # noqa: E402
from bench_plugin import HANDSHAKE, Bench  # noqa: E402

PLUGIN = [sys.executable, str(HERE / "bench_plugin.py")]
FRAME = struct.Struct(">I")


def _raw_echo_server(sock: socket.socket) -> None:
    while True:
        data = sock.recv(65536)
        if not data:
            return
        sock.sendall(data)


def raw_pingpong() -> tuple[Callable[[], None], Callable[[], None]]:
    """A forked echo process and a struct-framed 24-byte payload: the floor."""
    parent, child = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        parent.close()
        _raw_echo_server(child)
        os._exit(0)
    child.close()
    payload = FRAME.pack(16) + struct.pack(">dd", 1.0, 2.0)

    def call() -> None:
        parent.sendall(payload)
        parent.recv(65536)

    def close() -> None:
        parent.close()
        os.waitpid(pid, 0)

    return call, close


def sample(call: Callable[[], None], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        call()
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)]


def threaded_throughput(call: Callable[[], None], threads: int, per_thread: int) -> float:
    start = threading.Barrier(threads + 1)

    def worker() -> None:
        start.wait()
        for _ in range(per_thread):
            call()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    return threads * per_thread / (time.perf_counter() - t0)


async def async_throughput(client: tether.AsyncClient, tasks: int, per_task: int) -> float:
    calc = await client.dispense("bench", Bench)
    await calc.add(1.0, 2.0)

    async def worker() -> None:
        for _ in range(per_task):
            await calc.add(1.0, 2.0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return tasks * per_task / (time.perf_counter() - t0)


async def async_sequential(n: int) -> list[float]:
    async with tether.AsyncClient(PLUGIN, handshake=HANDSHAKE) as client:
        calc = await client.dispense("bench", Bench)
        for _ in range(200):
            await calc.add(1.0, 2.0)
        out = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            await calc.add(1.0, 2.0)
            out.append((time.perf_counter_ns() - t0) / 1000)
        return out


async def async_concurrent(tasks: int, per_task: int) -> float:
    async with tether.AsyncClient(PLUGIN, handshake=HANDSHAKE) as client:
        return await async_throughput(client, tasks, per_task)


def spawn_to_first_call() -> float:
    t0 = time.perf_counter()
    with tether.Client(PLUGIN, handshake=HANDSHAKE) as client:
        client.dispense("bench", Bench).add(1.0, 2.0)
        elapsed = time.perf_counter() - t0
    return elapsed * 1000


def interpreter_start() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return (time.perf_counter() - t0) * 1000


def run(quick: bool) -> dict[str, float]:
    rounds = 2 if quick else 5
    n = 300 if quick else 4000
    raw_call, raw_close = raw_pingpong()
    client = tether.Client(PLUGIN, handshake=HANDSHAKE)
    client.start()
    calc = client.dispense("bench", Bench)
    for _ in range(500):
        calc.add(1.0, 2.0)
        raw_call()
    raw: list[float] = []
    sync: list[float] = []
    for _ in range(rounds):
        raw += sample(raw_call, n)
        sync += sample(lambda: calc.add(1.0, 2.0), n)
    per_thread = 50 if quick else 1000
    threaded = threaded_throughput(lambda: calc.add(1.0, 2.0), 16, per_thread)
    bulk = [1.0] * 100_000
    bulk_times = sample(lambda: calc.total(bulk), 3 if quick else 30)
    client.kill()
    raw_close()
    async_seq = asyncio.run(async_sequential(n))
    async_tp = asyncio.run(async_concurrent(16, per_thread))
    spawn = [spawn_to_first_call() for _ in range(2 if quick else 10)]
    interp = [interpreter_start() for _ in range(2 if quick else 10)]
    return {
        "raw_median": statistics.median(raw),
        "raw_p99": p(raw, 0.99),
        "sync_median": statistics.median(sync),
        "sync_p99": p(sync, 0.99),
        "async_median": statistics.median(async_seq),
        "async_p99": p(async_seq, 0.99),
        "threads16_cps": threaded,
        "tasks16_cps": async_tp,
        "bulk_100k_ms": statistics.median(bulk_times) / 1000,
        "spawn_ms": statistics.median(spawn),
        "interpreter_ms": statistics.median(interp),
    }


def report(r: dict[str, float]) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import msgspec

    return f"""# Performance

Generated by `make bench` (`benchmarks/run.py`) on {time.strftime("%Y-%m-%d")}.
Machine: {os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, Python
{platform.python_version()}, msgspec {msgspec.__version__}, tether {tether.__version__}.
Every figure below comes from the same run; the sequential latencies were measured in
interleaved rounds. The call is `add(a: float, b: float) -> float` on a Unix socket.

| figure | value |
|---|---|
| raw Python Unix-socket ping-pong (the floor), median / p99 | {r["raw_median"]:.1f} µs / {r["raw_p99"]:.1f} µs |
| tether sync client, sequential, median / p99 | {r["sync_median"]:.1f} µs / {r["sync_p99"]:.1f} µs |
| ratio tether sync / floor (median) | {r["sync_median"] / r["raw_median"]:.2f}× |
| tether asyncio client, sequential, median / p99 | {r["async_median"]:.1f} µs / {r["async_p99"]:.1f} µs |
| tether sync, 16 threads on one client | {r["threads16_cps"]:,.0f} calls/s |
| tether asyncio, 16 tasks on one client | {r["tasks16_cps"]:,.0f} calls/s |
| one call carrying 100,000 floats (`total(list[float])`) | {r["bulk_100k_ms"]:.2f} ms |
| spawn to first answered call (Python plugin) | {r["spawn_ms"]:.1f} ms |
| `python -c pass` for comparison | {r["interpreter_ms"]:.1f} ms |

The comparison with the other Python RPC frameworks, gRPC, go-plugin itself and the C floor,
and the pinned-CPU figures, are the subject of the benchmark issue; these figures are the
baseline they start from.

Reproduce: `make bench`. A quick smoke run (`python benchmarks/run.py --quick`) is part of
`make test`, so the benchmark code cannot rot.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few iterations (smoke test)")
    parser.add_argument("--output", help="where to write the report")
    args = parser.parse_args()
    results = run(args.quick)
    text = report(results)
    output = args.output or (None if args.quick else str(HERE.parent / "docs/PERFORMANCE.md"))
    if output:
        Path(output).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
