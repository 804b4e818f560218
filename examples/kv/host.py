"""A KV host in Python: `host.py put KEY VALUE` / `host.py get KEY`, like go-plugin's grpc example.

The plugin command comes from the KV_PLUGIN environment variable and runs through `sh -c`,
so it can be a Go plugin built with go-plugin or a Python one (`python3 plugin.py`).
KV_AUTOMTLS=1 turns on go-plugin's AutoMTLS.
"""

from __future__ import annotations

import logging
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "generated")]

import grpc  # noqa: E402
import kv_pb2  # noqa: E402
from shared import HANDSHAKE, PLUGIN_NAME, KVPlugin  # noqa: E402

import tether  # noqa: E402


def main(argv: list[str]) -> int:
    logging.basicConfig(
        level=os.environ.get("KV_LOG_LEVEL", "WARNING").upper(),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    command = os.environ.get("KV_PLUGIN")
    if not command:
        print("set KV_PLUGIN to the plugin command", file=sys.stderr)
        return 2
    if len(argv) < 2 or argv[0] not in ("get", "put") or (argv[0] == "put") != (len(argv) == 3):
        print("usage: host.py put KEY VALUE | host.py get KEY", file=sys.stderr)
        return 2
    try:
        with tether.Client(
            ["sh", "-c", command],
            handshake=HANDSHAKE,
            name="kv",
            auto_mtls=os.environ.get("KV_AUTOMTLS") == "1",
        ) as client:
            client.ping()
            kv = client.dispense(PLUGIN_NAME, KVPlugin)
            if argv[0] == "put":
                kv.Put(kv_pb2.PutRequest(key=argv[1], value=argv[2].encode()))
            else:
                print(kv.Get(kv_pb2.GetRequest(key=argv[1])).value.decode())
    except (tether.TetherError, grpc.RpcError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
