# mypy: disable-error-code="empty-body"
"""A small plugin for the manager's tests; each test copies it into its own directory next to
a `tether.toml`, so several plugins with their own manifests (and files to sign or tamper
with) can run at once.

Run as ``python mgr_plugin.py [MODE]``. Before anything else it appends ``NAME PID`` to the
file named by ``MGR_SPAWNED`` (if set), so a test can tell whether the plugin was ever
executed and find its processes. MODE ``ok`` (default) serves `Greeter` under ``MGR_NAME``;
``exit`` exits with code 3 before the handshake.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import tether

HANDSHAKE = tether.HandshakeConfig(
    protocol_version=1,
    magic_cookie_key="TETHER_MGR_TEST_COOKIE",
    magic_cookie_value="4b1e9c2d-manager",
)
ENV_SPAWNED = "MGR_SPAWNED"
ENV_NAME = "MGR_NAME"


class Greeter(tether.Interface):
    def initialize(self, config: dict[str, Any]) -> None: ...
    def config(self) -> dict[str, Any]: ...
    def hello(self, who: str) -> str: ...
    def pid(self) -> int: ...
    def crash(self) -> None: ...


class GreeterImpl(Greeter):
    def __init__(self, name: str) -> None:
        self._name = name
        self._config: dict[str, Any] = {}

    def initialize(self, config: dict[str, Any]) -> None:
        self._config = dict(config)

    def config(self) -> dict[str, Any]:
        return self._config

    def hello(self, who: str) -> str:
        return f"{self._name}: hello {who}"

    def pid(self) -> int:
        return os.getpid()

    def crash(self) -> None:
        os._exit(3)


def main(mode: str) -> None:
    name = os.environ.get(ENV_NAME, "greeter")
    spawned = os.environ.get(ENV_SPAWNED)
    if spawned:
        with open(spawned, "a") as f:
            f.write(f"{name} {os.getpid()}\n")
    if mode == "exit":
        sys.stderr.write(f"{name}: failing on purpose\n")
        sys.exit(3)
    tether.serve(HANDSHAKE, plugins={name: GreeterImpl(name)})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "ok")
