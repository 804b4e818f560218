"""gRPC plugins: the two-part contract, and go-plugin's GRPCBroker for callbacks.

A `GRPCPlugin` registers its servicers on the plugin's gRPC server and builds the host's
client object (usually a generated stub) from the channel. The broker lets either side serve
an extra gRPC server under a numeric id and the other side dial it, which is how
go-plugin's bidirectional example calls back into the host.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from ._errors import ConnectionClosedError, TetherError
from ._grpc_tls import grpc_target
from ._transport import make_socket_dir, remove_socket_dir

if TYPE_CHECKING:
    import grpc

    from ._gen import grpc_broker_pb2
    from ._grpc_tls import GRPCTLS
    from ._tlsrelay import ClientRelay, ServerRelay

__all__ = ["GRPC_OPTIONS", "GRPCBroker", "GRPCPlugin", "grpc_target"]

S = TypeVar("S")

# go-plugin sets MaxInt32 both ways (v1.0.1, #117); grpcio's default receive limit is 4 MiB.
# so_reuseport off: two plugins must never share a port (go-plugin's Python example did).
GRPC_OPTIONS: Final = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    ("grpc.so_reuseport", 0),
]
_DIAL_TIMEOUT: Final = 5.0  # go-plugin's wait for a ConnInfo in Dial


class GRPCPlugin(Generic[S]):
    """A plugin served over gRPC, the way go-plugin's `GRPCPlugin` interface works.

    Subclass it and implement both halves::

        class KVPlugin(tether.GRPCPlugin[kv_pb2_grpc.KVStub]):
            def __init__(self, impl: KVServicer | None = None) -> None:
                self.impl = impl

            def server(self, broker, server):          # in the plugin process
                kv_pb2_grpc.add_KVServicer_to_server(self.impl, server)

            def client(self, broker, channel):          # in the host process
                return kv_pb2_grpc.KVStub(channel)

    The plugin serves instances (`tether.serve(HS, plugins={"kv": KVPlugin(impl)})`); the host
    dispenses with the class or an instance (`client.dispense("kv", KVPlugin)`).
    """

    def server(self, broker: GRPCBroker, server: grpc.Server) -> None:
        raise NotImplementedError(f"{type(self).__qualname__} does not implement server()")

    def client(self, broker: GRPCBroker, channel: grpc.Channel) -> S:
        raise NotImplementedError(f"{type(self).__qualname__} does not implement client()")


class GRPCBroker:
    """go-plugin's GRPCBroker: serve and dial extra gRPC servers by id, over one stream.

    `accept_and_serve(id, register)` starts a gRPC server on a new socket and tells the peer
    where; `dial(id)` waits (up to 5 s, as go-plugin does) for the peer's address for `id`
    and returns a channel to it. Ids are per side; pass them inside your own RPCs. With
    AutoMTLS (`tls`), brokered connections use the main connection's certificates, over
    grpcio's TLS or the relay by the same rule (see `_grpc_tls`).
    """

    def __init__(self, *, tls: GRPCTLS | None = None) -> None:
        self._tls = tls
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._known: dict[int, Any] = {}
        self._arrived = threading.Condition(self._lock)
        self._outbox: queue.Queue[Any] = queue.Queue()
        self._closed = False
        self._servers: list[grpc.Server] = []
        self._relays: list[ServerRelay | ClientRelay] = []
        self._channels: list[grpc.Channel] = []
        self._dirs: list[str] = []

    def next_id(self) -> int:
        return next(self._ids)

    # ----------------------------------------------------------------- the stream

    def outgoing(self) -> Iterator[grpc_broker_pb2.ConnInfo]:
        """The ConnInfos this side sends: the request stream (host) or response stream."""
        while True:
            item = self._outbox.get()
            if item is None:
                return
            yield item

    def consume(self, incoming: Iterator[grpc_broker_pb2.ConnInfo]) -> None:
        """Read the peer's ConnInfos until the stream ends (run in its own thread)."""
        try:
            for info in incoming:
                with self._arrived:
                    self._known[info.service_id] = info
                    self._arrived.notify_all()
        except Exception:
            pass  # the stream ends with the connection; dial() then times out clearly

    def start_consuming(self, incoming: Iterator[grpc_broker_pb2.ConnInfo]) -> None:
        threading.Thread(
            target=self.consume, args=(incoming,), name="tether-grpc-broker", daemon=True
        ).start()

    # ----------------------------------------------------------------- serving

    def accept_and_serve(self, service_id: int, register: Callable[[grpc.Server], None]) -> None:
        """Serve a new gRPC server under `service_id`; `register` adds its servicers."""
        from concurrent.futures import ThreadPoolExecutor

        import grpc

        from ._gen import grpc_broker_pb2

        if self._closed:
            raise ConnectionClosedError("the broker is closed")
        directory = make_socket_dir()
        self._dirs.append(directory)
        from ._grpc_tls import serve_unix

        server = grpc.server(ThreadPoolExecutor(max_workers=8), options=GRPC_OPTIONS)
        register(server)
        address, relay, backend_dir = serve_unix(server, directory, self._tls)
        if relay is not None:
            self._relays.append(relay)
        if backend_dir is not None:
            self._dirs.append(backend_dir)
        server.start()
        self._servers.append(server)
        self._outbox.put(
            grpc_broker_pb2.ConnInfo(service_id=service_id, network="unix", address=address)
        )

    # ----------------------------------------------------------------- dialing

    def dial(self, service_id: int, timeout: float = _DIAL_TIMEOUT) -> grpc.Channel:
        """A channel to the server the peer serves under `service_id`."""
        from ._grpc_tls import dial

        with self._arrived:
            if not self._arrived.wait_for(lambda: service_id in self._known, timeout):
                raise TetherError(f"timeout waiting for connection info for broker id {service_id}")
            info = self._known.pop(service_id)
        dialed = dial(info.network, info.address, self._tls, GRPC_OPTIONS)
        if dialed.relay is not None:
            self._relays.append(dialed.relay)
        self._channels.append(dialed.channel)
        return dialed.channel

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._outbox.put(None)
        for channel in self._channels:
            channel.close()
        for server in self._servers:
            server.stop(0)
        for relay in self._relays:
            relay.close()
        for directory in self._dirs:
            remove_socket_dir(directory)
