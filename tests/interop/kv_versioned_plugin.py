"""A tether KV plugin with versioned plugin sets, for go-plugin's negotiated example host.

Serves examples/kv's KVPlugin as "kv" at protocol version 3 only (negotiatedhost offers
2 over net/rpc and 3 over gRPC). Every Get also logs a WARNING with the key, so tests see a
warning cross into a Go host's log.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tether
from interop.pyside import kv_servicer_class, kv_shared, write_pidfile

log = logging.getLogger("kv_versioned")

shared = kv_shared()
BaseKV = kv_servicer_class()


class LoudKV(BaseKV):  # type: ignore[misc,valid-type]
    def Get(self, request: Any, context: Any) -> Any:
        log.warning("kv get", extra={"key": request.key})
        return super().Get(request, context)


if __name__ == "__main__":
    write_pidfile()
    tether.serve(shared.HANDSHAKE, versioned_plugins={3: {"kv": shared.KVPlugin(LoudKV())}})
