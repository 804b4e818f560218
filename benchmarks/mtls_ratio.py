"""AutoMTLS ÷ plaintext on tether's gRPC path: sequential medians over interleaved rounds.

    cd benchmarks && ../.venv/bin/python mtls_ratio.py [rounds] [calls-per-round]

Both subjects stay up for the whole run and alternate (order swapped every round), so drift
of a shared machine hits them alike. Prints each round's medians and the ratio of the medians
of all samples.
"""

from __future__ import annotations

import sys

from common import median
from tether_grpc import TetherGRPC


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    plain, mtls = TetherGRPC(auto_mtls=False), TetherGRPC(auto_mtls=True)
    subjects = [plain, mtls]
    samples: dict[str, list[float]] = {s.label: [] for s in subjects}
    for s in subjects:
        s.start()
    try:
        for s in subjects:
            s.sequential(500)  # warm-up: connections, caches, lazy imports
        for r in range(rounds):
            order = subjects if r % 2 == 0 else subjects[::-1]
            line = []
            for s in order:
                values = s.sequential(n)
                samples[s.label].extend(values)
                line.append(f"{s.label}: {median(values):.1f} µs")
            print(f"round {r + 1}: " + "; ".join(line), flush=True)
    finally:
        for s in subjects:
            s.close()
    p, m = median(samples[plain.label]), median(samples[mtls.label])
    print(f"plaintext median {p:.1f} µs, AutoMTLS median {m:.1f} µs, ratio {m / p:.3f}")


if __name__ == "__main__":
    main()
