"""What every benchmark subject shares: the Subject contract, sampling, statistics, pinning."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = REPO / ".cache" / "bench"
PY = sys.executable

BULK_N = 100_000
BLOB_SIZE = 64 * 1024 * 1024
CALLERS = 16


class NotMeasured(Exception):
    """A subject cannot measure a figure (unsupported or a peer failed); the text says why."""


def pin_prefix(pinned: bool) -> list[str]:
    """`taskset -c 0` in front of a server command when pinned (children inherit it anyway)."""
    return ["taskset", "-c", "0"] if pinned else []


def sample(call: Callable[[], object], n: int) -> list[float]:
    """n sequential calls, each timed, in microseconds."""
    out: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        call()
        out.append((clock() - t0) / 1000)
    return out


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * 0.99), len(ordered) - 1)]


def threaded_throughput(make_caller: Callable[[], Callable[[], object]], per_thread: int) -> float:
    """CALLERS threads, each with the caller make_caller gives it; calls per second."""
    callers = [make_caller() for _ in range(CALLERS)]
    start = threading.Barrier(CALLERS + 1)
    errors: list[BaseException] = []

    def worker(call: Callable[[], object]) -> None:
        start.wait()
        try:
            for _ in range(per_thread):
                call()
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(c,)) for c in callers]
    for t in pool:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return CALLERS * per_thread / elapsed


def rss_kib(pid: int) -> float:
    """Resident set size of a process (VmRSS), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return float(line.split()[1])
    raise NotMeasured(f"no VmRSS for pid {pid}")


def private_socket_path(name: str) -> str:
    """A fresh Unix socket path in a private directory."""
    return os.path.join(tempfile.mkdtemp(prefix="tbench-"), name)


def spawn_server(cmd: list[str], timeout: float = 30.0) -> subprocess.Popen[str]:
    """Start a peer's server; it prints one line (`ready`) once it listens."""
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        _, err = proc.communicate(timeout=timeout)
        raise NotMeasured(f"server {cmd[-2:]} did not start: {line.strip()} {err.strip()[-400:]}")
    return proc


def stop_server(proc: subprocess.Popen[str] | None) -> None:
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def cleanup_socket(path: str) -> None:
    shutil.rmtree(os.path.dirname(path), ignore_errors=True)


def connect_unix(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock


class Subject:
    """One thing measured. Unsupported figures raise NotMeasured with the reason."""

    label = "?"
    #: floor | tether | peer | go
    kind = "peer"
    #: True when the subject needs no extra install (runs under --quick)
    quick = True
    #: "threads" or "tasks": how the 16 callers are made
    callers = "threads"

    def __init__(self, pinned: bool = False) -> None:
        self.pinned = pinned

    def start(self) -> None:
        """Start the server side (and connect), ready for calls."""

    def close(self) -> None:
        """Stop everything start() started."""

    def call(self) -> object:
        """One add(1.0, 2.0)."""
        raise NotMeasured("no sequential call")

    def sequential(self, n: int) -> list[float]:
        return sample(self.call, n)

    def make_caller(self) -> Callable[[], object]:
        """The call one of 16 concurrent threads uses (shares the client unless overridden)."""
        return self.call

    def throughput(self, per_caller: int) -> float:
        return threaded_throughput(self.make_caller, per_caller)

    def bulk(self, values: list[float]) -> float:
        """One call carrying values; returns its result."""
        raise NotMeasured("no bulk call")

    def blob(self, data: bytes) -> int:
        """One call carrying data; returns the length the server saw."""
        raise NotMeasured("no bytes call")

    def spawn(self) -> tuple[float, float]:
        """Spawn a fresh server, answer one call: (ms to first answer, idle RSS KiB)."""
        raise NotMeasured("no spawn measurement")
