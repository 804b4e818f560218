"""What the counter host and plugin share: the handshake and the gRPC plugin contract.

Mirrors go-plugin's bidirectional example: protocol version 1, cookie BASIC_PLUGIN=hello,
plugin name `counter`, services `proto.Counter` (served by the plugin) and `proto.AddHelper`
(served by the host through the GRPCBroker; proto/counter.proto, Python code in generated/).

For each `put` the host serves its AddHelper under a fresh broker id and sends that id in
`PutRequest.add_server`; the plugin dials the id back and asks the host for the sum.

Regenerate generated/ from this directory with `python -m grpc_tools.protoc -I proto
--python_out=generated --pyi_out=generated --grpc_python_out=generated proto/counter.proto`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "generated"))

import counter_pb2
import counter_pb2_grpc
import grpc

import tether

HANDSHAKE = tether.HandshakeConfig(
    protocol_version=1, magic_cookie_key="BASIC_PLUGIN", magic_cookie_value="hello"
)
PLUGIN_NAME = "counter"

# The plugin's Counter servicer needs the broker to dial the host back, so the plugin side
# gives a factory that builds it once the broker exists.
ServicerFactory = Callable[[tether.GRPCBroker], counter_pb2_grpc.CounterServicer]


class Counter:
    """The host's view of the plugin (go-plugin's example `GRPCClient`)."""

    def __init__(self, broker: tether.GRPCBroker, stub: counter_pb2_grpc.CounterStub) -> None:
        self._broker = broker
        self._stub = stub

    def put(
        self,
        key: str,
        value: int,
        add_helper: counter_pb2_grpc.AddHelperServicer,
        timeout: float | None = 30.0,
    ) -> None:
        """Add `value` to counter `key`; the plugin calls `add_helper.Sum` back to do it."""
        servers: list[grpc.Server] = []

        def register(server: grpc.Server) -> None:
            counter_pb2_grpc.add_AddHelperServicer_to_server(  # type: ignore[no-untyped-call]
                add_helper, server
            )
            servers.append(server)

        service_id = self._broker.next_id()
        self._broker.accept_and_serve(service_id, register)
        try:
            self._stub.Put(
                counter_pb2.PutRequest(add_server=service_id, key=key, value=value),
                timeout=timeout,
            )
        finally:
            # Like go-plugin's example: this AddHelper server only lives for one Put.
            for server in servers:
                server.stop(None)

    def get(self, key: str, timeout: float | None = 30.0) -> int:
        reply: counter_pb2.GetResponse = self._stub.Get(
            counter_pb2.GetRequest(key=key), timeout=timeout
        )
        return reply.value


class CounterPlugin(tether.GRPCPlugin[Counter]):
    """The two halves: the Counter servicer in the plugin, a `Counter` wrapper in the host."""

    def __init__(self, servicer: ServicerFactory | None = None) -> None:
        self.servicer = servicer

    def server(self, broker: tether.GRPCBroker, server: grpc.Server) -> None:
        assert self.servicer is not None, "the plugin side needs a servicer factory"
        counter_pb2_grpc.add_CounterServicer_to_server(  # type: ignore[no-untyped-call]
            self.servicer(broker), server
        )

    def client(self, broker: tether.GRPCBroker, channel: grpc.Channel) -> Counter:
        return Counter(broker, counter_pb2_grpc.CounterStub(channel))  # type: ignore[no-untyped-call]
