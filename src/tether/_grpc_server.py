"""The plugin side of go-plugin's gRPC protocol: the services a Go host expects.

Health (`"plugin"` = SERVING, which go-plugin's Ping uses), GRPCController (Shutdown),
GRPCStdio (the plugin's later stdout/stderr writes, forwarded in chunks of at most 1 KiB),
GRPCBroker, and the application's own services registered by each `GRPCPlugin`.
"""

from __future__ import annotations

import collections
import io
import logging
import sys
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final

from . import _handshake as hs
from ._errors import HandshakeError
from ._grpc_broker import GRPC_OPTIONS, GRPCBroker, GRPCPlugin
from ._transport import make_socket_dir, remove_socket_dir

if TYPE_CHECKING:
    import grpc

    from ._grpc_tls import GRPCTLS
    from ._tlsrelay import ServerRelay

__all__ = ["GRPCServe"]

log = logging.getLogger("tether.server")

_STDIO_CHUNK: Final = 1024  # go-plugin's grpcStdioBuffer
_STDIO_BACKLOG: Final = 1 << 20  # bytes kept while no host reads the stdio stream


class _StdioQueue:
    """Chunks written to the plugin's stdout/stderr, waiting for the host's StreamStdio."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._chunks: collections.deque[tuple[int, bytes]] = collections.deque()
        self._size = 0
        self.closed = False

    def put(self, channel: int, data: bytes) -> None:
        with self._cond:
            for start in range(0, len(data), _STDIO_CHUNK):
                chunk = data[start : start + _STDIO_CHUNK]
                self._chunks.append((channel, chunk))
                self._size += len(chunk)
            # Without a reader (go-plugin 1.0.1 hosts have no GRPCStdio) keep only the tail,
            # so a chatty plugin neither blocks nor grows without bound.
            while self._size > _STDIO_BACKLOG:
                self._size -= len(self._chunks.popleft()[1])
            self._cond.notify_all()

    def get(self, timeout: float) -> tuple[int, bytes] | None:
        with self._cond:
            if not self._chunks:
                self._cond.wait(timeout)
            if not self._chunks:
                return None
            channel, chunk = self._chunks.popleft()
            self._size -= len(chunk)
            return channel, chunk

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class _StdioWriter(io.TextIOBase):
    """Replaces sys.stdout / sys.stderr after the handshake: text goes to GRPCStdio."""

    def __init__(self, queue: _StdioQueue, channel: int, encoding: str = "utf-8") -> None:
        super().__init__()
        self._queue = queue
        self._channel = channel
        self._encoding = encoding

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if text:
            self._queue.put(self._channel, text.encode(self._encoding, "replace"))
        return len(text)

    def flush(self) -> None:
        pass


class GRPCServe:
    """One plugin process's gRPC server and the go-plugin services around the app's."""

    def __init__(
        self,
        plugins: Mapping[str, GRPCPlugin[Any]],
        version: int,
        *,
        host_cert_pem: str | None,
        stop: threading.Event,
    ) -> None:
        self.plugins = dict(plugins)
        self.version = version
        self._host_pem = host_cert_pem
        self._stop = stop
        self._stdio = _StdioQueue()
        self._dirs: list[str] = []
        self._server: grpc.Server | None = None
        self._relay: ServerRelay | None = None
        self.broker: GRPCBroker | None = None
        # AutoMTLS (None without): native grpcio TLS or the relay, see _grpc_tls.
        self.tls: GRPCTLS | None = None

    def start(self, environ: Mapping[str, str], tcp: bool) -> hs.HandshakeLine:
        import grpc
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc

        from ._gen import (
            grpc_broker_pb2_grpc,
            grpc_controller_pb2_grpc,
            grpc_stdio_pb2_grpc,
        )

        cert_b64 = ""
        if self._host_pem is not None:
            from ._grpc_tls import GRPCTLS
            from ._mtls import encode_server_cert, generate_certificate, grpcio_compatible

            # A host whose certificate grpcio can verify (a tether host) gets one grpcio can
            # present, and grpcio's own TLS; a P-521 host (Go) gets go-plugin's profile, and
            # the relay, since grpcio could not verify its certificate anyway.
            compatible = grpcio_compatible(self._host_pem)
            cert = generate_certificate("P-256" if compatible else "P-521")
            self.tls = GRPCTLS.between(cert, self._host_pem)
            cert_b64 = encode_server_cert(cert.cert_der)
        self.broker = GRPCBroker(tls=self.tls)
        server = grpc.server(ThreadPoolExecutor(max_workers=32), options=GRPC_OPTIONS)
        health_servicer = health.HealthServicer()
        health_servicer.set("plugin", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        grpc_controller_pb2_grpc.add_GRPCControllerServicer_to_server(  # type: ignore[no-untyped-call]
            _Controller(self), server
        )
        grpc_stdio_pb2_grpc.add_GRPCStdioServicer_to_server(  # type: ignore[no-untyped-call]
            _Stdio(self._stdio), server
        )
        grpc_broker_pb2_grpc.add_GRPCBrokerServicer_to_server(  # type: ignore[no-untyped-call]
            _Broker(self.broker), server
        )
        for plugin in self.plugins.values():
            plugin.server(self.broker, server)
        network, address = self._bind(server, environ, tcp)
        server.start()
        self._server = server
        return hs.HandshakeLine(
            hs.CORE_PROTOCOL_VERSION, self.version, network, address, hs.PROTOCOL_GRPC, cert_b64
        )

    def _bind(self, server: grpc.Server, environ: Mapping[str, str], tcp: bool) -> tuple[str, str]:
        from ._grpc_tls import serve_tcp, serve_unix

        if tcp:
            if self.tls is None:
                raise HandshakeError("refusing to serve gRPC over TCP without TLS (AutoMTLS)")
            address, self._relay, backend_dir = serve_tcp(server, *hs.port_range(environ), self.tls)
            network = "tcp"
        else:
            directory = environ.get(hs.ENV_UNIX_SOCKET_DIR) or self._own_dir()
            address, self._relay, backend_dir = serve_unix(server, directory, self.tls)
            network = "unix"
        if backend_dir is not None:
            self._dirs.append(backend_dir)
        return network, address

    def _own_dir(self) -> str:
        directory = make_socket_dir()
        self._dirs.append(directory)
        return directory

    def capture_stdio(self) -> None:
        """After the handshake line: later prints travel over GRPCStdio, as in go-plugin."""
        sys.stdout = _StdioWriter(self._stdio, 1)
        sys.stderr = _StdioWriter(self._stdio, 2)

    def wait(self) -> None:
        self._stop.wait()

    def stop(self) -> None:
        self._stdio.close()
        if self.broker is not None:
            self.broker.close()
        if self._server is not None:
            self._server.stop(0.5).wait(2.0)
        if self._relay is not None:
            self._relay.close()
        for directory in self._dirs:
            remove_socket_dir(directory)


class _Controller:
    def __init__(self, serve: GRPCServe) -> None:
        self._serve = serve

    def Shutdown(self, request: Any, context: Any) -> Any:
        from ._gen import grpc_controller_pb2

        log.debug("shutdown requested by the host")
        # Stop after this reply leaves: the host then sees OK (a Go plugin answers
        # UNAVAILABLE because it stops first; go-plugin hosts accept both).
        threading.Timer(0.01, self._serve._stop.set).start()
        return grpc_controller_pb2.Empty()


class _Stdio:
    def __init__(self, queue: _StdioQueue) -> None:
        self._queue = queue

    def StreamStdio(self, request: Any, context: Any) -> Iterator[Any]:
        from ._gen import grpc_stdio_pb2

        while context.is_active() and not self._queue.closed:
            item = self._queue.get(0.25)
            if item is not None:
                yield grpc_stdio_pb2.StdioData(channel=item[0], data=item[1])  # type: ignore[arg-type]


class _Broker:
    def __init__(self, broker: GRPCBroker) -> None:
        self._broker = broker

    def StartStream(self, request_iterator: Any, context: Any) -> Iterator[Any]:
        self._broker.start_consuming(request_iterator)
        yield from self._broker.outgoing()
