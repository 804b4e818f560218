"""A KV plugin in Python that a go-plugin host (or tether) runs: go-plugin's grpc example.

Each value is stored in a file `kv_<key>` in the plugin's working directory, with a line
saying who wrote it, as go-plugin's own example plugins do.
"""

from __future__ import annotations

import logging
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "generated")]

import grpc  # noqa: E402
import kv_pb2  # noqa: E402
import kv_pb2_grpc  # noqa: E402
from shared import HANDSHAKE, PLUGIN_NAME, KVPlugin  # noqa: E402

import tether  # noqa: E402

log = logging.getLogger("kv")


class KV(kv_pb2_grpc.KVServicer):
    def Put(self, request: kv_pb2.PutRequest, context: grpc.ServicerContext) -> kv_pb2.Empty:
        with open(f"kv_{request.key}", "wb") as f:
            f.write(request.value + b"\n\nWritten from plugin-python")
        log.info("put", extra={"key": request.key, "bytes": len(request.value)})
        return kv_pb2.Empty()

    def Get(self, request: kv_pb2.GetRequest, context: grpc.ServicerContext) -> kv_pb2.GetResponse:
        try:
            with open(f"kv_{request.key}", "rb") as f:
                return kv_pb2.GetResponse(value=f.read())
        except FileNotFoundError:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no value for key {request.key!r}")
            raise  # abort raises; this line only satisfies the type checker


if __name__ == "__main__":
    tether.serve(HANDSHAKE, plugins={PLUGIN_NAME: KVPlugin(KV())})
