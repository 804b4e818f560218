"""go-plugin's health service asked over a gRPC channel: the probe the TLS tests make."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

TIMEOUT = 10.0


def health_check(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = stub.Check(  # type: ignore[attr-defined]
        health_pb2.HealthCheckRequest(service="plugin"), timeout=TIMEOUT
    )
    return int(reply.status)


def refused(channel: grpc.Channel, *, close: bool = False) -> bool:
    """Whether the server turns the channel away (as it must a wrong or missing certificate)."""
    try:
        health_check(channel)
    except grpc.RpcError as exc:
        return exc.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        if close:
            channel.close()
    return False
