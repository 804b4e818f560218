"""What the gRPC calculator's host and plugin share: the handshake and the gRPC plugin contract.

The service is `calculator.Calculator` (calculator.proto; Python code in generated/). The
handshake is the native calculator's (examples/calculator/interface.py) value for value;
it is spelled out here so that hosts need neither `interface` nor tether's native protocol.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "generated"))

# The repository-wide mypy run cannot import generated code (the Makefile's lint target
# checks this directory again with generated/ on MYPYPATH), hence the ignores below.

import calculator_pb2_grpc
import grpc

import tether

HANDSHAKE = tether.HandshakeConfig(
    protocol_version=1,
    magic_cookie_key="CALCULATOR_PLUGIN",
    magic_cookie_value="6f3c9e1a58d24b7f8a0e2c4d71b5a9e3",
)
PLUGIN_NAME = "calculator"


class CalculatorPlugin(tether.GRPCPlugin[calculator_pb2_grpc.CalculatorStub]):
    """The two halves: the servicer in the plugin, the stub in the host.

    The stub works on both kinds of channel: `tether.Client` gives a blocking one,
    `tether.AsyncClient` a `grpc.aio` one (whose calls are awaited).
    """

    def __init__(self, servicer: calculator_pb2_grpc.CalculatorServicer | None = None) -> None:
        self.servicer = servicer

    def server(self, broker: tether.GRPCBroker, server: grpc.Server) -> None:
        assert self.servicer is not None, "the plugin side needs a servicer"
        calculator_pb2_grpc.add_CalculatorServicer_to_server(  # type: ignore[no-untyped-call, unused-ignore]
            self.servicer, server
        )

    def client(
        self, broker: tether.GRPCBroker, channel: grpc.Channel
    ) -> calculator_pb2_grpc.CalculatorStub:
        return calculator_pb2_grpc.CalculatorStub(channel)  # type: ignore[no-untyped-call, unused-ignore]
