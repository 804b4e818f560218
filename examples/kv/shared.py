"""What the KV host and plugin share: the handshake and the gRPC plugin contract.

Mirrors go-plugin's grpc example: protocol version 1, cookie BASIC_PLUGIN=hello, plugin
name `kv_grpc`, service `proto.KV` (proto/kv.proto; Python code in generated/).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "generated"))

import grpc
import kv_pb2_grpc

import tether

HANDSHAKE = tether.HandshakeConfig(
    protocol_version=1, magic_cookie_key="BASIC_PLUGIN", magic_cookie_value="hello"
)
PLUGIN_NAME = "kv_grpc"


class KVPlugin(tether.GRPCPlugin[kv_pb2_grpc.KVStub]):
    """The two halves: the servicer in the plugin, the stub in the host."""

    def __init__(self, servicer: kv_pb2_grpc.KVServicer | None = None) -> None:
        self.servicer = servicer

    def server(self, broker: tether.GRPCBroker, server: grpc.Server) -> None:
        assert self.servicer is not None, "the plugin side needs a servicer"
        kv_pb2_grpc.add_KVServicer_to_server(self.servicer, server)  # type: ignore[no-untyped-call]

    def client(self, broker: tether.GRPCBroker, channel: grpc.Channel) -> kv_pb2_grpc.KVStub:
        return kv_pb2_grpc.KVStub(channel)  # type: ignore[no-untyped-call]
