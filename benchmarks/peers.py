"""The peers a user would pick instead of tether, each server in its own process.

grpcio (sync client and sync server; aio client and aio server) over a Unix socket, Pyro5,
RPyC and multiprocessing.connection. All serve the same add/total/size calls.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from typing import Any

from common import (
    CALLERS,
    HERE,
    PY,
    Subject,
    cleanup_socket,
    pin_prefix,
    private_socket_path,
    rss_kib,
    spawn_server,
    stop_server,
)


class Peer(Subject):
    """A server process (peers_server.py KIND) and one client connection to it."""

    server_kind = "?"

    def __init__(self, pinned: bool = False) -> None:
        super().__init__(pinned)
        self.proc: subprocess.Popen[str] | None = None
        self.path = ""
        self.conn: Any = None

    # What each peer defines.
    def connect(self, path: str) -> Any:
        raise NotImplementedError

    def disconnect(self, conn: Any) -> None:
        conn.close()

    def add(self, conn: Any) -> Any:
        raise NotImplementedError

    def _open(self) -> tuple[subprocess.Popen[str], str, Any]:
        path = private_socket_path("peer.sock")
        cmd = [*pin_prefix(self.pinned), PY, str(HERE / "peers_server.py"), self.server_kind, path]
        proc = spawn_server(cmd)
        try:
            return proc, path, self.connect(path)
        except BaseException:
            stop_server(proc)
            raise

    def start(self) -> None:
        self.proc, self.path, self.conn = self._open()

    def close(self) -> None:
        if self.conn is not None:
            self.disconnect(self.conn)
        stop_server(self.proc)
        if self.path:
            cleanup_socket(self.path)

    def call(self) -> Any:
        return self.add(self.conn)

    def spawn(self) -> tuple[float, float]:
        t0 = time.perf_counter()
        proc, path, conn = self._open()
        try:
            self.add(conn)
            elapsed = (time.perf_counter() - t0) * 1000
            time.sleep(0.2)
            return elapsed, rss_kib(proc.pid)
        finally:
            self.disconnect(conn)
            stop_server(proc)
            cleanup_socket(path)


class GrpcSync(Peer):
    label = "grpcio, sync client + server"
    server_kind = "grpc"

    def connect(self, path: str) -> Any:
        import grpc
        from grpc_gen import GRPC_OPTIONS, generated

        self.pb2, pb2_grpc = generated()
        self.request = self.pb2.AddRequest(a=1.0, b=2.0)
        channel = grpc.insecure_channel(f"unix:{path}", options=GRPC_OPTIONS)
        return channel, pb2_grpc.BenchStub(channel)

    def disconnect(self, conn: Any) -> None:
        conn[0].close()

    def add(self, conn: Any) -> Any:
        return conn[1].Add(self.request)

    def bulk(self, values: list[float]) -> float:
        return float(self.conn[1].Total(self.pb2.Floats(values=values)).value)

    def blob(self, data: bytes) -> int:
        return int(self.conn[1].Length(self.pb2.Blob(data=data)).value)


class GrpcAio(Peer):
    """grpc.aio client on one event loop (run until complete per measurement), aio server."""

    label = "grpcio, asyncio client + server"
    server_kind = "grpc-aio"
    callers = "tasks"

    def __init__(self, pinned: bool = False) -> None:
        super().__init__(pinned)
        self.loop = asyncio.new_event_loop()

    def connect(self, path: str) -> Any:
        import grpc
        from grpc_gen import GRPC_OPTIONS, generated

        self.pb2, pb2_grpc = generated()
        self.request = self.pb2.AddRequest(a=1.0, b=2.0)

        async def make() -> Any:
            channel = grpc.aio.insecure_channel(f"unix:{path}", options=GRPC_OPTIONS)
            return channel, pb2_grpc.BenchStub(channel)

        return self.loop.run_until_complete(make())

    def disconnect(self, conn: Any) -> None:
        self.loop.run_until_complete(conn[0].close())

    def _open(self) -> tuple[subprocess.Popen[str], str, Any]:
        if self.loop.is_closed():
            self.loop = asyncio.new_event_loop()
        return super()._open()

    def close(self) -> None:
        super().close()
        self.loop.close()

    def spawn(self) -> tuple[float, float]:
        try:
            return super().spawn()
        finally:
            self.loop.close()

    def add(self, conn: Any) -> Any:
        return self.loop.run_until_complete(conn[1].Add(self.request))

    def sequential(self, n: int) -> list[float]:
        stub = self.conn[1]

        async def go() -> list[float]:
            clock = time.perf_counter_ns
            out: list[float] = []
            for _ in range(n):
                t0 = clock()
                await stub.Add(self.request)
                out.append((clock() - t0) / 1000)
            return out

        return self.loop.run_until_complete(go())

    def throughput(self, per_caller: int) -> float:
        stub = self.conn[1]

        async def worker() -> None:
            for _ in range(per_caller):
                await stub.Add(self.request)

        async def go() -> float:
            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(CALLERS)))
            return CALLERS * per_caller / (time.perf_counter() - t0)

        return self.loop.run_until_complete(go())

    def bulk(self, values: list[float]) -> float:
        reply = self.loop.run_until_complete(self.conn[1].Total(self.pb2.Floats(values=values)))
        return float(reply.value)

    def blob(self, data: bytes) -> int:
        reply = self.loop.run_until_complete(self.conn[1].Length(self.pb2.Blob(data=data)))
        return int(reply.value)


class Pyro5Peer(Peer):
    """Pyro5 proxies belong to one thread: each of the 16 caller threads opens its own."""

    label = "Pyro5"
    server_kind = "pyro5"
    quick = False

    def connect(self, path: str) -> Any:
        import Pyro5.api  # type: ignore[import-untyped]

        proxy = Pyro5.api.Proxy(f"PYRO:calc@./u:{path}")
        proxy._pyroBind()
        return proxy

    def disconnect(self, conn: Any) -> None:
        conn._pyroRelease()

    def add(self, conn: Any) -> Any:
        return conn.add(1.0, 2.0)

    def make_caller(self) -> Callable[[], object]:
        import Pyro5.api

        proxy = Pyro5.api.Proxy(f"PYRO:calc@./u:{self.path}")
        proxy._pyroBind()
        proxy._pyroClaimOwnership()
        owned = [False]

        def call() -> object:
            if not owned[0]:
                proxy._pyroClaimOwnership()
                owned[0] = True
            return proxy.add(1.0, 2.0)

        return call

    def bulk(self, values: list[float]) -> float:
        return float(self.conn.total(values))

    def blob(self, data: bytes) -> int:
        return int(self.conn.size(data))


class RPyCPeer(Peer):
    """One RPyC connection shared by the 16 threads; the list travels as a tuple (by value)."""

    label = "RPyC"
    server_kind = "rpyc"
    quick = False

    def connect(self, path: str) -> Any:
        import rpyc  # type: ignore[import-untyped]

        return rpyc.utils.factory.unix_connect(path)

    def add(self, conn: Any) -> Any:
        return conn.root.add(1.0, 2.0)

    def bulk(self, values: list[float]) -> float:
        return float(self.conn.root.total(tuple(values)))

    def blob(self, data: bytes) -> int:
        return int(self.conn.root.size(data))


class MPConn(Peer):
    """multiprocessing.connection (pickle frames); one connection per caller thread."""

    label = "multiprocessing.connection"
    server_kind = "mpconn"

    def connect(self, path: str) -> Any:
        from multiprocessing.connection import Client

        return Client(path, family="AF_UNIX")

    def add(self, conn: Any) -> Any:
        conn.send(("add", (1.0, 2.0)))
        return conn.recv()

    def make_caller(self) -> Callable[[], object]:
        conn = self.connect(self.path)
        return lambda: self.add(conn)

    def bulk(self, values: list[float]) -> float:
        self.conn.send(("total", (values,)))
        return float(self.conn.recv())

    def blob(self, data: bytes) -> int:
        self.conn.send(("size", (data,)))
        return int(self.conn.recv())
