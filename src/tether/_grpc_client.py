"""The host side of go-plugin's gRPC protocol: channel, broker stream, stdio, ping, shutdown."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, TypeVar

from . import _handshake as hs
from ._errors import ConnectionClosedError, HandshakeError, TetherError
from ._grpc_broker import GRPC_OPTIONS, GRPCBroker, GRPCPlugin
from ._grpc_tls import dial

if TYPE_CHECKING:
    import grpc

    from ._grpc_tls import GRPCTLS

__all__ = ["GRPCConnection"]

log = logging.getLogger("tether.client")
_Stub = TypeVar("_Stub")


class GRPCConnection:
    """What a go-plugin host does after the handshake (grpc_client.go), in Python."""

    def __init__(
        self,
        line: hs.HandshakeLine,
        *,
        name: str,
        logger: logging.Logger,
        tls: GRPCTLS | None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        import grpc

        self.name = name
        self.logger = logger
        self._stdout = stdout
        self._stderr = stderr
        self._partial: dict[int, bytes] = {}
        self._closed = False
        # Held while a stub is made on the channel and while it is closed: grpcio's C core
        # crashes (SIGSEGV) when one thread registers a method on a channel that another is
        # closing, and a quick host closes its client while a health check or a relay
        # thread may be starting a call.
        self._lock = threading.Lock()
        self.broker = GRPCBroker(tls=tls)
        self._broker_call: Any = None
        self._stdio_call: Any = None
        # grpcio's TLS between two tether processes; a relay when the plugin is Go (P-521).
        self.dialed = dial(line.network, line.address, tls, GRPC_OPTIONS)
        self.target = self.dialed.target
        self.channel: grpc.Channel = self.dialed.channel
        try:
            grpc.channel_ready_future(self.channel).result(timeout=connect_timeout)
        except grpc.FutureTimeoutError:
            self.close()
            raise HandshakeError(
                f"cannot connect to gRPC plugin {name!r} at {line.address} within "
                f"{connect_timeout:g} s"
            ) from None
        self._start_broker()
        self._start_stdio()

    def _stub(self, make: Callable[[grpc.Channel], _Stub]) -> _Stub:
        """A stub on the channel, made under the lock that close() takes."""
        with self._lock:
            if self._closed:
                raise ConnectionClosedError(f"the connection to plugin {self.name!r} is closed")
            return make(self.channel)

    def _start_broker(self) -> None:
        from ._gen import grpc_broker_pb2_grpc

        # A Go plugin's Accept blocks until this stream exists, so it is opened at once.
        stub = self._stub(grpc_broker_pb2_grpc.GRPCBrokerStub)
        self._broker_call = stub.StartStream(self.broker.outgoing())
        self.broker.start_consuming(self._broker_call)

    def _start_stdio(self) -> None:
        from google.protobuf import empty_pb2

        from ._gen import grpc_stdio_pb2_grpc

        # Opened here, the relay thread only reads it: see _lock.
        stub = self._stub(grpc_stdio_pb2_grpc.GRPCStdioStub)
        self._stdio_call = stub.StreamStdio(empty_pb2.Empty())
        threading.Thread(
            target=self._stdio,
            args=(self._stdio_call,),
            name=f"tether-{self.name}-stdio",
            daemon=True,
        ).start()

    def _stdio(self, call: Any) -> None:
        import grpc

        try:
            for data in call:
                self._relay_stdio(data.channel, data.data)
            self._flush_stdio()
        except grpc.RpcError as exc:
            self._flush_stdio()
            code = exc.code() if hasattr(exc, "code") else None
            if code in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNAVAILABLE):
                # go-plugin before 1.1.0 has no GRPCStdio; its plugins still work.
                log.debug("plugin %s does not stream stdio (%s)", self.name, code)
            elif not self._closed and code != grpc.StatusCode.CANCELLED:
                log.debug("stdio stream of plugin %s ended: %s", self.name, exc)

    def _relay_stdio(self, channel: int, data: bytes) -> None:
        sink = self._stdout if channel == 1 else self._stderr
        if sink is not None:
            sink.write(data.decode("utf-8", "replace"))
        # Chunks are cut at 1 KiB and at every write, not at line ends: log whole lines.
        pending = self._partial.get(channel, b"") + data
        *lines, rest = pending.split(b"\n")
        self._partial[channel] = rest
        for line in lines:
            self._log_line(channel, line)

    def _flush_stdio(self) -> None:
        for channel, rest in list(self._partial.items()):
            if rest:
                self._log_line(channel, rest)
        self._partial.clear()

    def _log_line(self, channel: int, line: bytes) -> None:
        text = line.decode("utf-8", "replace").removesuffix("\r")
        stream = "stdout" if channel == 1 else "stderr"
        self.logger.info("%s", text, extra={"plugin_stream": stream})

    def dispense(self, plugin: GRPCPlugin[Any] | type[GRPCPlugin[Any]]) -> Any:
        instance = plugin() if isinstance(plugin, type) else plugin
        if not isinstance(instance, GRPCPlugin):
            raise TetherError(
                f"plugin {self.name!r} speaks gRPC: dispense a tether.GRPCPlugin, "
                f"not {type(instance).__qualname__}"
            )
        if self._closed:
            raise ConnectionClosedError(f"the connection to plugin {self.name!r} is closed")
        # Not under _lock: client() is the plugin author's code and may make calls.
        return instance.client(self.broker, self.channel)

    def ping(self, timeout: float | None) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = self._stub(health_pb2_grpc.HealthStub)
        try:
            reply = stub.Check(  # type: ignore[attr-defined]
                health_pb2.HealthCheckRequest(service="plugin"), timeout=timeout
            )
        except grpc.RpcError as exc:
            raise ConnectionClosedError(
                f"plugin {self.name!r} did not answer ping: {exc}"
            ) from None
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise TetherError(f"plugin {self.name!r} is not serving (health status {reply.status})")

    def shutdown(self, timeout: float) -> None:
        """GRPCController.Shutdown; UNAVAILABLE (a Go plugin stops before replying) is success."""
        import grpc

        from ._gen import grpc_controller_pb2, grpc_controller_pb2_grpc

        try:
            stub = self._stub(grpc_controller_pb2_grpc.GRPCControllerStub)
        except ConnectionClosedError:
            return  # nothing left to shut down over
        try:
            stub.Shutdown(grpc_controller_pb2.Empty(), timeout=timeout)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                log.debug("plugin %s: Shutdown failed: %s", self.name, exc)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.broker.close()
        for call in (self._broker_call, self._stdio_call):
            if call is not None:
                call.cancel()
        with self._lock:  # no stub is being made now, and none will be (_closed)
            self.channel.close()
        if self.dialed.relay is not None:
            self.dialed.relay.close()
