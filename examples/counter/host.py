"""A counter host in Python: `host.py put KEY VALUE` / `host.py get KEY`, like go-plugin's
bidirectional example.

The plugin command comes from the COUNTER_PLUGIN environment variable and runs through
`sh -c`, so it can be a Go plugin built with go-plugin or a Python one (`python3 plugin.py`).
COUNTER_AUTOMTLS=1 turns on go-plugin's AutoMTLS; COUNTER_LOG_LEVEL sets this process's log
level (default WARNING; the plugin's log lines are relayed into it).

For `put` this host serves AddHelper through the GRPCBroker and the plugin calls it back to
add the value. Like the Go host, it prints `SUM_CALLS=<n>` to stderr at the end: how often
the plugin called back.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "generated")]

import counter_pb2  # noqa: E402
import counter_pb2_grpc  # noqa: E402
import grpc  # noqa: E402
from shared import HANDSHAKE, PLUGIN_NAME, CounterPlugin  # noqa: E402

import tether  # noqa: E402

log = logging.getLogger("counter.host")


class AddHelper(counter_pb2_grpc.AddHelperServicer):
    """What the plugin calls back: adds two numbers, and counts how often it was asked."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0

    def Sum(
        self, request: counter_pb2.SumRequest, context: grpc.ServicerContext
    ) -> counter_pb2.SumResponse:
        with self._lock:
            self.calls += 1
        log.debug("sum called back", extra={"a": request.a, "b": request.b})
        return counter_pb2.SumResponse(r=request.a + request.b)


def main(argv: list[str]) -> int:
    logging.basicConfig(
        level=os.environ.get("COUNTER_LOG_LEVEL", "WARNING").upper(),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not ((len(argv) == 2 and argv[0] == "get") or (len(argv) == 3 and argv[0] == "put")):
        print("usage: host.py put KEY VALUE | host.py get KEY", file=sys.stderr)
        return 2
    value = 0
    if argv[0] == "put":
        try:
            value = int(argv[2])
        except ValueError:
            print(f"error: VALUE must be an integer, got {argv[2]!r}", file=sys.stderr)
            return 2
    command = os.environ.get("COUNTER_PLUGIN")
    if not command:
        print("set COUNTER_PLUGIN to the plugin command", file=sys.stderr)
        return 2
    helper = AddHelper()
    code = 0
    try:
        with tether.Client(
            ["sh", "-c", command],
            handshake=HANDSHAKE,
            name="counter",
            auto_mtls=os.environ.get("COUNTER_AUTOMTLS") == "1",
        ) as client:
            counter = client.dispense(PLUGIN_NAME, CounterPlugin)
            if argv[0] == "put":
                counter.put(argv[1], value, helper)
            else:
                print(counter.get(argv[1]))
    except (tether.TetherError, grpc.RpcError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    print(f"SUM_CALLS={helper.calls}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
