"""The floors: a raw Python Unix-socket ping-pong with struct-packed frames, and a C one.

The Python floor's server (floor_server.py) runs in its own process and imports only the
stdlib; the C floor (floor.c) is compiled with gcc at run time into .cache/bench and times
its own calls, printing them as JSON.
"""

from __future__ import annotations

import array
import hashlib
import json
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

from common import (
    CACHE,
    HERE,
    PY,
    NotMeasured,
    Subject,
    cleanup_socket,
    connect_unix,
    pin_prefix,
    private_socket_path,
    rss_kib,
    spawn_server,
    stop_server,
)

HDR = struct.Struct(">IB")
ADD_FRAME = HDR.pack(16, 0) + struct.pack(">dd", 1.0, 2.0)
ANSWER = struct.Struct(">Id")


def _recv_answer(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    while len(data) < 12:
        more = sock.recv(65536)
        if not more:
            raise EOFError("floor server closed")
        data += more
    return data


class RawPython(Subject):
    label = "raw Python Unix-socket ping-pong"
    kind = "floor"

    def __init__(self, pinned: bool = False) -> None:
        super().__init__(pinned)
        self.proc: subprocess.Popen[str] | None = None
        self.sock: socket.socket | None = None
        self.path = ""

    def _open(self) -> tuple[subprocess.Popen[str], socket.socket, str]:
        path = private_socket_path("floor.sock")
        cmd = [*pin_prefix(self.pinned), PY, str(HERE / "floor_server.py"), path]
        proc = spawn_server(cmd)
        return proc, connect_unix(path), path

    def start(self) -> None:
        self.proc, self.sock, self.path = self._open()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        stop_server(self.proc)
        if self.path:
            cleanup_socket(self.path)

    def call(self) -> float:
        assert self.sock is not None
        self.sock.sendall(ADD_FRAME)
        return float(ANSWER.unpack_from(_recv_answer(self.sock))[1])

    def throughput(self, per_caller: int) -> float:
        raise NotMeasured("one connection, one caller: a latency floor")

    def bulk(self, values: list[float]) -> float:
        # The floor carries the same 800,000 packed bytes; packing them is part of the call.
        assert self.sock is not None
        body = array.array("d", values).tobytes()
        self.sock.sendall(HDR.pack(len(body), 1))
        self.sock.sendall(body)
        return float(ANSWER.unpack_from(_recv_answer(self.sock))[1])

    def blob(self, data: bytes) -> int:
        assert self.sock is not None
        self.sock.sendall(HDR.pack(len(data), 2))
        self.sock.sendall(data)
        return int(struct.unpack_from(">IQ", _recv_answer(self.sock))[1])

    def spawn(self) -> tuple[float, float]:
        t0 = time.perf_counter()
        proc, sock, path = self._open()
        try:
            sock.sendall(ADD_FRAME)
            _recv_answer(sock)
            elapsed = (time.perf_counter() - t0) * 1000
            time.sleep(0.2)
            return elapsed, rss_kib(proc.pid)
        finally:
            sock.close()
            stop_server(proc)
            cleanup_socket(path)


def build_c_floor() -> Path:
    """Compile floor.c with gcc into the cache (skipped when the source is unchanged)."""
    if shutil.which("gcc") is None:
        raise NotMeasured("gcc not found")
    source = HERE / "floor.c"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    binary = CACHE / f"floor-{digest}"
    if not binary.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = binary.with_suffix(".tmp")
        proc = subprocess.run(
            ["gcc", "-O2", "-o", str(tmp), str(source)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise NotMeasured(f"gcc failed: {proc.stderr.strip()[-300:]}")
        tmp.rename(binary)
    return binary


class RawC(Subject):
    label = "C Unix-socket ping-pong (physical floor)"
    kind = "floor"

    def __init__(self, pinned: bool = False) -> None:
        super().__init__(pinned)
        self.binary: Path | None = None

    def start(self) -> None:
        self.binary = build_c_floor()

    def sequential(self, n: int) -> list[float]:
        assert self.binary is not None
        cmd = [*pin_prefix(self.pinned), str(self.binary), str(n)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120)
        samples: list[float] = json.loads(out.stdout)["samples_us"]
        return samples

    def throughput(self, per_caller: int) -> float:
        raise NotMeasured("the C floor measures sequential latency only")

    def bulk(self, values: list[float]) -> float:
        raise NotMeasured("the C floor measures sequential latency only")

    def blob(self, data: bytes) -> int:
        raise NotMeasured("the C floor measures sequential latency only")

    def spawn(self) -> tuple[float, float]:
        raise NotMeasured("the C floor measures sequential latency only")
