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
    # The profiles explaining missed targets are measured in the same run. Which targets a
    # quick run misses depends on the machine, so check the section and every subsection
    # that its verdict calls for.
    assert "## What bounds the missed targets" in report
    section = report.split("## What bounds the missed targets", 1)[1].split("## Not measured")[0]
    targets = report.split("## Targets", 1)[1].split("## What bounds")[0]
    expected = {
        "native sync sequential median": "### Sequential latency and CPU per call",
        "asyncio, 16 tasks": "### 16 concurrent callers",
        "64 MiB bytes, native sync": "### 64 MiB bytes",
        "100,000 floats ÷ raw floor": "### 100,000 floats",
        "spawn to first call": "### Spawn to first call",
        "AutoMTLS ÷ plaintext": "### AutoMTLS",
    }
    for row in targets.splitlines():
        for what, heading in expected.items():
            if row.startswith(f"| {what}") and "missed" in row:
                assert heading in section, heading
    assert "Not measured here" not in section, section
    if "### Sequential latency" in section:
        assert "| function | own µs per call |" in section
    if "### 100,000 floats" in section:
        assert "decode it into `list[float]` (msgspec, typed) |" in section
        # The suite's install builds the C extension: the plugin's own decode is timed too.
        assert "| tether plugin: read the request's head and decode it (tether._speedups) |" in (
            section
        )
    if "### Spawn to first call" in section:
        assert "| module | nesting | cumulative ms | own ms |" in section
        assert "| `tether._server` |" in section
    assert "nan" not in report.lower()
