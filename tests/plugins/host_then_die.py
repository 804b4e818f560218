"""A host that starts three helper plugins, prints their pids, then waits or exits.

``python host_then_die.py wait``: block until killed (the test sends SIGKILL or SIGTERM).
``python host_then_die.py exit``: return normally without calling `kill()` (the atexit path).
"""

from __future__ import annotations

import os
import sys
import time

import tether

HERE = os.path.dirname(os.path.abspath(__file__))
HELPER = os.path.join(HERE, "helper.py")
sys.path.insert(0, os.path.dirname(HERE))

from plugins.helper import HANDSHAKE, Echo  # noqa: E402


def main(mode: str) -> None:
    clients = [
        tether.Client([sys.executable, HELPER, "healthy"], handshake=HANDSHAKE, name=f"p{i}")
        for i in range(3)
    ]
    for client in clients:
        client.start()
        assert client.dispense("echo", Echo).echo("up") == "up"
    print(" ".join(str(client.pid) for client in clients), flush=True)
    if mode == "wait":
        while True:
            time.sleep(1)


if __name__ == "__main__":
    main(sys.argv[1])
