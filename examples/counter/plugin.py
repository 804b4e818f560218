"""A counter plugin in Python that a go-plugin host (or tether) runs: go-plugin's bidirectional
example.

Each counter is stored in a file `kv_<key>` in the plugin's working directory as JSON
`{"Value": n}`, exactly as the Go counter plugin stores it, so the two can take turns on
the same files. Put does not add by itself: it dials the host's AddHelper through the
GRPCBroker (the id comes in `PutRequest.add_server`) and stores the host's sum.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from typing import NoReturn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "generated")]

import counter_pb2  # noqa: E402
import counter_pb2_grpc  # noqa: E402
import grpc  # noqa: E402
from shared import HANDSHAKE, PLUGIN_NAME, CounterPlugin  # noqa: E402

import tether  # noqa: E402

log = logging.getLogger("counter")


class FileCounter(counter_pb2_grpc.CounterServicer):
    def __init__(self, broker: tether.GRPCBroker) -> None:
        self.broker = broker
        self._lock = threading.Lock()  # one read-add-write at a time

    def Put(
        self, request: counter_pb2.PutRequest, context: grpc.ServicerContext
    ) -> counter_pb2.Empty:
        try:
            channel = self.broker.dial(request.add_server)
        except tether.TetherError as exc:
            _abort(context, grpc.StatusCode.UNAVAILABLE, str(exc))
        try:
            helper = counter_pb2_grpc.AddHelperStub(channel)  # type: ignore[no-untyped-call]
            with self._lock:
                old = _read(request.key)
                try:
                    reply: counter_pb2.SumResponse = helper.Sum(
                        counter_pb2.SumRequest(a=old, b=request.value), timeout=30
                    )
                except grpc.RpcError as exc:
                    _abort(context, exc.code(), f"AddHelper.Sum failed: {exc.details()}")
                _write(request.key, reply.r)
        finally:
            channel.close()
        log.info("counter put", extra={"key": request.key, "old": old, "new": reply.r})
        return counter_pb2.Empty()

    def Get(
        self, request: counter_pb2.GetRequest, context: grpc.ServicerContext
    ) -> counter_pb2.GetResponse:
        try:
            return counter_pb2.GetResponse(value=_read(request.key, strict=True))
        except ValueError as exc:
            _abort(context, grpc.StatusCode.DATA_LOSS, str(exc))


def _read(key: str, *, strict: bool = False) -> int:
    """The stored counter; 0 if there is none (or, unless `strict`, if it is unreadable,
    which is what the Go plugin's Put assumes)."""
    try:
        with open(f"kv_{key}", "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return 0
    try:
        value = json.loads(raw)["Value"]
        if type(value) is not int:
            raise TypeError(f"Value is a {type(value).__name__}")
    except (ValueError, KeyError, TypeError) as exc:
        if strict:
            raise ValueError(f"kv_{key} does not hold a counter: {exc}") from None
        return 0
    return value


def _write(key: str, value: int) -> None:
    # encoding/json's output for the Go plugin's `data{Value: n}`.
    with open(f"kv_{key}", "w") as f:
        f.write(json.dumps({"Value": value}, separators=(",", ":")))


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    context.abort(code, details)
    raise AssertionError("unreachable: abort raises")


if __name__ == "__main__":
    tether.serve(HANDSHAKE, plugins={PLUGIN_NAME: CounterPlugin(FileCounter)})
