"""Running Go interop peers from tests: isolated cwd/TMPDIR, captured output, parsed markers."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

RUN_TIMEOUT = 30.0
COOKIE_TEXT = (
    "This binary is a plugin. These are not meant to be executed directly.\n"
    "Please execute the program that consumes these plugins, which will\n"
    "load any plugins automatically\n"
)
# Variables of ours or of go-plugin that must not leak in from the calling environment.
# PYTHONUNBUFFERED would hide a Python plugin that forgets to flush its handshake line.
_ENV_PREFIXES = ("KV_", "COUNTER_", "PLUGIN_", "BASIC_PLUGIN", "PYTHONUNBUFFERED")


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def field(self, name: str) -> str:
        """Value of the last `NAME=value` line the host printed to stderr."""
        values = [
            line.split("=", 1)[1]
            for line in self.stderr.splitlines()
            if line.startswith(f"{name}=")
        ]
        assert values, f"{name}= not in stderr:\n{self.stderr}"
        return values[-1]

    @property
    def kill_ms(self) -> int:
        return int(self.field("KILL_DURATION_MS"))


@dataclass(frozen=True)
class Peers:
    """Where a test runs its Go peers: cwd (holds the kv_<key> files) and TMPDIR (sockets)."""

    cwd: Path
    tmpdir: Path

    def run(self, binary: Path, *args: str, **env: str) -> Run:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(_ENV_PREFIXES)}
        full_env.update(TMPDIR=str(self.tmpdir), **env)
        start = time.perf_counter()
        proc = subprocess.run(
            [str(binary), *args],
            cwd=self.cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start)

    def leftovers(self) -> list[str]:
        """Files left in TMPDIR; a graceful shutdown removes every plugin socket."""
        return sorted(p.name for p in self.tmpdir.iterdir())


def relayed(run: Run, prefix: str, *fields: str) -> bool:
    """Whether the host logged a line with prefix and all fields (their order is random:
    the host iterates a Go map of the plugin's hclog JSON keys). The logger is named after
    the plugin command's basename, here always "sh"."""
    return any(
        prefix in line and all(f" {field}" in line for field in fields)
        for line in run.stderr.splitlines()
    )
