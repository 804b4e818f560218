"""tether's side of the interop tests: the Python examples, loaded by path, and process checks.

The gRPC examples (examples/kv, examples/counter) are directories of scripts that import their
generated code and their `shared.py` by plain module name. Two examples both having a
`shared.py` cannot be imported by that name into one test process, so each module is loaded
from its file under a unique name instead. The results are typed `Any`: mypy cannot follow the
examples' sys.path-based imports.

The plugin scripts in this directory (`*_plugin.py`) import this module too, so it must not
import pytest.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from interop.peers import RUN_TIMEOUT, Peers, Run

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
KV_DIR = REPO / "examples" / "kv"
COUNTER_DIR = REPO / "examples" / "counter"

KV_PLUGIN_PY = KV_DIR / "plugin.py"
KV_HOST_PY = KV_DIR / "host.py"
COUNTER_PLUGIN_PY = COUNTER_DIR / "plugin.py"
COUNTER_HOST_PY = COUNTER_DIR / "host.py"
# Test plugins of our own (run as scripts).
VERSIONED_PLUGIN_PY = HERE / "kv_versioned_plugin.py"
CHATTY_PLUGIN_PY = HERE / "kv_chatty_plugin.py"

GRACEFUL_MS = 1500  # well under go-plugin's (and tether's) 2 s forced-kill fallback
# What go-plugin hosts log when Kill() falls back to SIGKILL (tether logs the same words).
FORCED_KILL = "plugin failed to exit gracefully"
# Variables that must not leak into a host run from the calling environment (see peers.py).
_ENV_PREFIXES = ("KV_", "COUNTER_", "PLUGIN_", "BASIC_PLUGIN", "PYTHONUNBUFFERED")

_loaded: dict[Path, Any] = {}


def load(path: Path) -> Any:
    """Import the example script at `path` (once) under a name unique to its directory."""
    path = path.resolve()
    if path in _loaded:
        return _loaded[path]
    directory = path.parent
    for extra in (directory / "generated", directory):
        if extra.is_dir() and str(extra) not in sys.path:
            sys.path.insert(0, str(extra))
    name = f"_tether_example_{directory.name}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None, path
    assert spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _loaded[path] = module
    return module


def kv_shared() -> Any:
    """examples/kv/shared.py: HANDSHAKE, PLUGIN_NAME ("kv_grpc"), KVPlugin."""
    return load(KV_DIR / "shared.py")


def kv_pb2() -> Any:
    load(KV_DIR / "shared.py")  # puts examples/kv/generated on sys.path
    import kv_pb2 as module  # type: ignore[import-not-found]

    return module


def kv_servicer_class() -> Any:
    """The `KV` servicer of examples/kv/plugin.py (files kv_<key> in the cwd)."""
    # plugin.py imports `shared` by plain name; that copy's KVPlugin is not the one tests
    # dispense with, which is fine: tether only checks for a tether.GRPCPlugin.
    return load(KV_PLUGIN_PY).KV


def pid_alive(pid: int) -> bool:
    """Whether `pid` is a live (non-zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def processes_in(cwd: Path) -> list[int]:
    """Live processes whose working directory is `cwd` (a test's private plugin cwd)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if Path(os.readlink(entry / "cwd")) == cwd and pid_alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    """Wait until `pid` has exited; True if it did within `timeout`."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


ENV_PIDFILE = "INTEROP_PIDFILE"


def write_pidfile() -> None:
    """In a test plugin: record this process's pid where INTEROP_PIDFILE says, if set."""
    path = os.environ.get(ENV_PIDFILE)
    if path:
        Path(path).write_text(str(os.getpid()))


def pid_cmd(pidfile: Path, command: str) -> str:
    """A `sh -c` command for go-plugin hosts that records the plugin's pid, then execs it."""
    return f"echo $$ > {pidfile}; exec {command}"


def python_cmd(script: Path) -> str:
    """A `sh -c` command running a Python script with this interpreter."""
    return f"{sys.executable} {script}"


def run_py_host(peers: Peers, script: Path, *args: str, **env: str) -> Run:
    """Run a Python example host the way `Peers.run` runs a Go one: the test's cwd and
    TMPDIR, no stdin, captured output, no leaked KV_/COUNTER_/PLUGIN_ variables."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(_ENV_PREFIXES)}
    # A crash of the host (grpcio's C core has segfaulted here, rarely) prints where each
    # thread was, so the failure says more than a bare -11.
    full_env.update(TMPDIR=str(peers.tmpdir), PYTHONFAULTHANDLER="1", **env)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=peers.cwd,
        env=full_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start)


def assert_graceful(run: Run) -> None:
    """A Go host's Kill() ended with the plugin exiting on GRPCController.Shutdown, not by
    the forced-kill fallback after 2 s."""
    assert FORCED_KILL not in run.stderr, run.stderr
    assert run.kill_ms < GRACEFUL_MS, run.stderr


def assert_ok(run: Run) -> None:
    assert run.returncode == 0, run.stderr
    assert_graceful(run)
