"""The benchmark code runs (a few iterations), so `make bench` cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(180)
def test_quick_benchmark_run_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "PERFORMANCE.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stderr
    report = out.read_text()
    for label in (
        "raw Python Unix-socket ping-pong",
        "C Unix-socket ping-pong",
        "tether native, sync client",
        "tether native, asyncio client",
        "tether gRPC path, plaintext",
        "tether gRPC path, AutoMTLS",
        "grpcio, sync client + server",
        "multiprocessing.connection",
        "pinned to one CPU",
        "16 concurrent callers",
        "100,000 floats",
        "64 MiB",
        "spawn to first answered call",
        "idle RSS",
        "## Targets",
        "not measured:",
    ):
        assert label in report
    assert "nan" not in report.lower()
