# mypy: disable-error-code="empty-body"
"""The plugin of the pool tests: a worker that reports its pid, sleeps on request and keeps
the config its `initialize` was given.

Run as ``python pool_worker.py [MODE]``. Modes: ``ok`` (default); ``bad-init`` (initialize
raises); ``no-start`` (exits with code 3 before the handshake).
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import tether

HANDSHAKE = tether.HandshakeConfig(
    protocol_version=1,
    magic_cookie_key="TETHER_POOL_COOKIE",
    magic_cookie_value="2f6d3c1a-pool",
)
INIT_ERROR = "pool_worker: initialize refused the config"


class Worker(tether.Interface):
    def initialize(self, config: dict[str, Any]) -> None: ...
    def config(self) -> dict[str, Any]: ...
    def whoami(self) -> dict[str, Any]: ...
    def pid(self) -> int: ...
    def work(self, seconds: float) -> int: ...
    def exit(self, code: int) -> None: ...


class WorkerImpl(Worker):
    def __init__(self, mode: str) -> None:
        self._mode = mode
        self._config: dict[str, Any] = {}

    def initialize(self, config: dict[str, Any]) -> None:
        if self._mode == "bad-init":
            raise ValueError(INIT_ERROR)
        self._config = dict(config)

    def config(self) -> dict[str, Any]:
        return self._config

    def whoami(self) -> dict[str, Any]:
        """This process's pid and config, in one call."""
        return {"pid": os.getpid(), "config": self._config}

    def pid(self) -> int:
        return os.getpid()

    def work(self, seconds: float) -> int:
        """Sleep (unless the host cancels the call) and return the pid."""
        tether.current_call().cancelled.wait(seconds)
        return os.getpid()

    def exit(self, code: int) -> None:
        # Exit after the reply is on its way, so the call itself succeeds.
        threading.Timer(0.05, os._exit, (code,)).start()


def main(mode: str) -> None:
    if mode == "no-start":
        sys.stderr.write("pool_worker: refusing to start\n")
        sys.stderr.flush()
        sys.exit(3)
    tether.serve(HANDSHAKE, plugins={"worker": WorkerImpl(mode)})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "ok")
