"""A tether KV plugin that prints to stdout and stderr after its handshake.

Serves examples/kv's KVPlugin as "kv_grpc" (so go-plugin's kvhost can use it). Put stores the
value like the example, then prints, depending on the value:

- ``flood:N``: N bytes to stdout, as lines of 1 KiB (a go-plugin 1.0.1 host never reads them);
- ``long:N``: one line of N "x" characters to stdout;
- anything else: ``stdout says: <value>`` to stdout and ``stderr says: <value>`` to stderr.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tether
from interop.pyside import kv_servicer_class, kv_shared, write_pidfile

log = logging.getLogger("kv_chatty")

shared = kv_shared()
BaseKV = kv_servicer_class()
LINE = "y" * 1023


class ChattyKV(BaseKV):  # type: ignore[misc,valid-type]
    def Put(self, request: Any, context: Any) -> Any:
        reply = super().Put(request, context)
        text = request.value.decode()
        if text.startswith("flood:"):
            total = int(text.removeprefix("flood:"))
            for _ in range(total // (len(LINE) + 1)):
                print(LINE)
            log.info("flooded", extra={"bytes": total})
        elif text.startswith("long:"):
            print("x" * int(text.removeprefix("long:")))
        else:
            print(f"stdout says: {text}")
            print(f"stderr says: {text}", file=sys.stderr)
        return reply


if __name__ == "__main__":
    write_pidfile()
    tether.serve(shared.HANDSHAKE, plugins={shared.PLUGIN_NAME: shared.KVPlugin(ChattyKV())})
