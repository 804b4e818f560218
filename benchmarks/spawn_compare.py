"""Spawn to first answered call, the floor and tether interleaved: `python spawn_compare.py [N]`.

Each round spawns the raw Python floor (floor.py's RawPython.spawn) and then the benchmark
plugin through tether.Client (tether_native.py's TetherSync.spawn), so load from whatever
else shares the machine falls on both alike; prints min and median of each and their ratios.
"""

from __future__ import annotations

import statistics
import sys

from floor import RawPython
from tether_native import TetherSync


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    floor, tether = RawPython(), TetherSync()
    times: dict[str, list[float]] = {"floor": [], "tether": []}
    for _ in range(rounds):
        times["floor"].append(floor.spawn()[0])
        times["tether"].append(tether.spawn()[0])
    for name, ms in times.items():
        median = statistics.median(ms)
        print(f"{name:7s} n={len(ms)} min {min(ms):6.1f} ms  median {median:6.1f} ms")
    f, t = times["floor"], times["tether"]
    print(
        f"tether / floor: min {min(t) / min(f):.2f}x  "
        f"median {statistics.median(t) / statistics.median(f):.2f}x"
    )


if __name__ == "__main__":
    main()
