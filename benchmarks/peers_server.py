"""The peers' servers, each run in its own process: `peers_server.py KIND SOCKET_PATH`.

KIND: grpc (grpcio sync server, 32 worker threads like tether's), grpc-aio, pyro5, rpyc,
mpconn (multiprocessing.connection). Each prints `ready` once it listens on the Unix socket.
"""

from __future__ import annotations

import sys
from typing import Any


def ready() -> None:
    sys.stdout.write("ready\n")
    sys.stdout.flush()


def serve_grpc(path: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import grpc
    from grpc_gen import GRPC_OPTIONS, generated, servicer

    _, pb2_grpc = generated()
    server = grpc.server(ThreadPoolExecutor(max_workers=32), options=GRPC_OPTIONS)
    pb2_grpc.add_BenchServicer_to_server(servicer(), server)
    server.add_insecure_port(f"unix:{path}")
    server.start()
    ready()
    server.wait_for_termination()


def serve_grpc_aio(path: str) -> None:
    import asyncio

    import grpc
    from grpc_gen import GRPC_OPTIONS, aio_servicer, generated

    _, pb2_grpc = generated()

    async def main() -> None:
        server = grpc.aio.server(options=GRPC_OPTIONS)
        pb2_grpc.add_BenchServicer_to_server(aio_servicer(), server)
        server.add_insecure_port(f"unix:{path}")
        await server.start()
        ready()
        await server.wait_for_termination()

    asyncio.run(main())


class Calc:
    def add(self, a: float, b: float) -> float:
        return a + b

    def total(self, values: Any) -> float:
        return float(sum(values))

    def size(self, data: Any) -> int:
        if isinstance(data, dict):  # Pyro5's serpent serializer sends bytes as base64
            import base64

            return len(base64.b64decode(data["data"]))
        return len(data)


def serve_pyro5(path: str) -> None:
    import Pyro5  # type: ignore[import-untyped]
    import Pyro5.api  # type: ignore[import-untyped]

    Pyro5.config.SERVERTYPE = "thread"
    Pyro5.config.THREADPOOL_SIZE = 64
    daemon = Pyro5.api.Daemon(unixsocket=path)
    daemon.register(Pyro5.api.expose(Calc), "calc")
    ready()
    daemon.requestLoop()


def serve_rpyc(path: str) -> None:
    import rpyc  # type: ignore[import-untyped]
    from rpyc.utils.server import ThreadedServer  # type: ignore[import-untyped]

    class CalcService(rpyc.Service):  # type: ignore[misc]
        def exposed_add(self, a: float, b: float) -> float:
            return a + b

        def exposed_total(self, values: Any) -> float:
            return float(sum(values))

        def exposed_size(self, data: bytes) -> int:
            return len(data)

    server = ThreadedServer(
        CalcService, socket_path=path, protocol_config={"allow_public_attrs": False}
    )
    ready()
    server.start()


def serve_mpconn(path: str) -> None:
    import threading
    from multiprocessing.connection import Connection, Listener

    calc = Calc()

    def handle(conn: Connection) -> None:
        try:
            while True:
                method, args = conn.recv()
                conn.send(getattr(calc, method)(*args))
        except EOFError:
            return

    listener = Listener(path, family="AF_UNIX")
    ready()
    while True:
        conn = listener.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


SERVERS = {
    "grpc": serve_grpc,
    "grpc-aio": serve_grpc_aio,
    "pyro5": serve_pyro5,
    "rpyc": serve_rpyc,
    "mpconn": serve_mpconn,
}

if __name__ == "__main__":
    SERVERS[sys.argv[1]](sys.argv[2])
