"""The tether gRPC-protocol plugin the gRPC benchmarks call (go-plugin's protocol)."""

from __future__ import annotations

from typing import Any

import grpc
from grpc_gen import generated, servicer

import tether

HANDSHAKE = tether.HandshakeConfig(
    protocol_version=1, magic_cookie_key="TETHER_BENCH_GRPC", magic_cookie_value="bench"
)
PLUGIN_NAME = "bench"


class BenchPlugin(tether.GRPCPlugin[Any]):
    def __init__(self, impl: Any = None) -> None:
        self.impl = impl

    def server(self, broker: tether.GRPCBroker, server: grpc.Server) -> None:
        _, pb2_grpc = generated()
        pb2_grpc.add_BenchServicer_to_server(self.impl, server)

    def client(self, broker: tether.GRPCBroker, channel: grpc.Channel) -> Any:
        _, pb2_grpc = generated()
        return pb2_grpc.BenchStub(channel)


if __name__ == "__main__":
    tether.serve(HANDSHAKE, plugins={PLUGIN_NAME: BenchPlugin(servicer())})
