"""The built-in demo plugin behind `tether demo`: a tiny calculator.

Run by a host as `python -m tether._demo`; it ships inside the package, so the tour works
from a plain `pip install` without a checkout of the repository.
"""

# Interface methods are declarations with `...` bodies:
# mypy: disable-error-code="empty-body"

from __future__ import annotations

import os

from ._handshake import HandshakeConfig
from ._interface import Interface

__all__ = ["DEMO_HANDSHAKE", "DemoCalculator", "main"]

DEMO_HANDSHAKE = HandshakeConfig(
    protocol_version=1,
    magic_cookie_key="TETHER_DEMO_PLUGIN",
    magic_cookie_value="b7e4c2a9-tether-demo",
)


class DemoCalculator(Interface):
    """A tiny calculator, served by `python -m tether._demo`."""

    def add(self, a: float, b: float) -> float:
        """a + b"""

    def divide(self, a: float, b: float) -> float:
        """a / b; dividing by zero raises ZeroDivisionError in the plugin."""

    def pid(self) -> int:
        """The plugin process's id (shows which instance answered)."""


class _Calculator(DemoCalculator):
    def add(self, a: float, b: float) -> float:
        return a + b

    def divide(self, a: float, b: float) -> float:
        return a / b

    def pid(self) -> int:
        return os.getpid()


def main() -> None:
    from ._server import serve

    serve(DEMO_HANDSHAKE, plugins={"demo": _Calculator()})


if __name__ == "__main__":
    main()
