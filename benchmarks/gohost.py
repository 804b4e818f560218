"""go-plugin itself: a Go host timing calls to a Go plugin over go-plugin's gRPC protocol.

Built like the interop test programs (tests/interop/build.py): Debian's golang-go and
go-plugin 1.0.1 sources, GOPATH mode, offline. The host prints its own figures as JSON.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

from common import CACHE, HERE, REPO, NotMeasured, Subject, pin_prefix

GO_SRC = HERE / "go"
PROGRAMS = ("gohost", "goplugin")


def _interop_build() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "interop_build", REPO / "tests" / "interop" / "build.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build() -> dict[str, Path]:
    """Build gohost and goplugin into .cache/bench/go (skipped when the inputs are unchanged)."""
    b = _interop_build()
    dest = CACHE / "go"
    dest.mkdir(parents=True, exist_ok=True)
    bins = {name: dest / name for name in PROGRAMS}
    try:
        b.ensure_toolchain()
        digest = hashlib.sha256(b._run(["go", "version"], timeout=60).encode())
        inputs = [*sorted(p for p in GO_SRC.rglob("*.go")), HERE / "bench.proto"]
        for path in [*inputs, Path(__file__)]:
            digest.update(path.read_bytes())
        stamp = dest / "build.stamp"
        fresh = stamp.exists() and stamp.read_text() == digest.hexdigest()
        if fresh and all(p.exists() for p in bins.values()):
            return bins
        work = dest / "_work"
        env: dict[str, str] = b._go_env(work)
        gopath = env["GOPATH"].split(":")
        env["GOPATH"] = ":".join([gopath[0], str(GO_SRC), *gopath[2:]])
        gen = work / "gopath" / "src" / "tetherbench" / "gen" / "bench"
        gen.mkdir(parents=True, exist_ok=True)
        b._run(
            ["protoc", f"-I{HERE}", f"--go_out=plugins=grpc:{gen}", "bench.proto"],
            env=env,
            timeout=60,
        )
        packages = [f"tetherbench/{name}" for name in PROGRAMS]
        b._run(["go", "build", "-o", f"{dest}/", *packages], env=env, timeout=600)
        stamp.write_text(digest.hexdigest())
    except b.BuildError as exc:
        raise NotMeasured(f"Go build failed: {str(exc)[-400:]}") from exc
    return bins


class GoPlugin(Subject):
    """Each run of gohost spawns the plugin, so every round also yields spawn and RSS."""

    label = "go-plugin (Go host, Go plugin, gRPC)"
    kind = "go"
    quick = False
    callers = "goroutines"

    def __init__(self, pinned: bool = False) -> None:
        super().__init__(pinned)
        self.bins: dict[str, Path] = {}
        self.last: dict[str, Any] = {}
        self.per_caller = 1000

    def start(self) -> None:
        self.bins = build()

    def run_host(self, n: int) -> dict[str, Any]:
        cmd = [
            *pin_prefix(self.pinned),
            str(self.bins["gohost"]),
            str(self.bins["goplugin"]),
            str(n),
            str(self.per_caller),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise NotMeasured(f"gohost failed: {proc.stderr.strip()[-300:]}")
        self.last = json.loads(proc.stdout)
        return self.last

    def sequential(self, n: int) -> list[float]:
        samples: list[float] = self.run_host(n)["samples_us"]
        return samples
